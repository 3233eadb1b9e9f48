"""Design-space sweeps: ``fusioncim explore`` (docs/energy.md, section "Sweeps").

Every point of the grid (the product of the ``--sweep KEY=V1,V2,...`` lists
applied to a base config) gets: energy per operation, TOPS/W, cycles and the
energy and speed ratios against the baseline on one workload
(:mod:`.report`); IP-CIM utilisation against sequence length (LLaMA-3-8B
prefill shapes, the engine's exact tile schedule); accuracy against float64
on a real attention file (golden model); and, unless ``--no-area``, the Yosys
area of the compute blocks (IP-CIM, softmax, OP-CIM) at the workload's
head_dim (cached, :mod:`synth.area`).

Points run in a local process pool (``jobs``) or on a Dask cluster
(``dask="local:N"`` starts a ``LocalCluster`` of N worker processes;
``dask="tcp://HOST:PORT"`` joins a running scheduler, e.g. one started by
``dask-jobqueue`` on a SLURM or LSF farm; docs/energy.md, "Sweeps on a
cluster"). Each point is one task, pure in its inputs; only this process
writes the output folder. Each finished point is appended to
``results.jsonl`` at once, so a sweep that is stopped and run again does only
the points it has not finished; a point that fails (its worker died more
often than Dask allows, or an exception) is appended to ``failed.jsonl`` with
its message and runs again next time. The plots are drawn from every finished
point.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
import importlib.metadata
import itertools
import json
import platform
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..core import config as config_mod
from ..core import configfile
from . import dataflow as df
from .executors import open_pool

__all__ = ["parse_sweeps", "grid", "run", "plot", "SEQ_LENS", "AREA_BLOCKS"]


SEQ_LENS = (128, 256, 512, 1024, 2048, 4096, 8192)
AREA_BLOCKS = ("ip_cim", "softmax", "op_cim")


def parse_sweeps(items):
    """``["rows=8,16", ...]`` -> ``{"rows": ["8", "16"], ...}``; keys checked against the config fields."""
    out = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise config_mod.ConfigError(f"--sweep {item!r} must be KEY=V1,V2,...")
        if key not in config_mod.EngineConfig.__dataclass_fields__:
            raise config_mod.ConfigError(f"--sweep: unknown key {key!r}; known keys: "
                                         f"{', '.join(config_mod.EngineConfig.__dataclass_fields__)}")
        if key in out:
            raise config_mod.ConfigError(f"--sweep {key} given twice")
        out[key] = [v.strip() for v in values.split(",")]
    return out


def grid(sweeps):
    """Every combination, as lists of ``KEY=VALUE`` overrides."""
    keys = list(sweeps)
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*sweeps.values())]


def _point_id(spec, sets, options):
    # Files count by name and content, not by path: a sweep resumes in another
    # checkout, and the ids in a tracked results file say nothing of one machine.
    portable = {**{k: v for k, v in options.items() if k != "version"},
                "accuracy_file": _file_id(options["accuracy_file"]),
                "patterns": [_file_id(f) for f in options["patterns"]] if options.get("patterns") else None}
    text = json.dumps([spec, sets, portable], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=64)
def _file_id(path):
    p = Path(path)
    try:
        return f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"
    except OSError:
        return p.name


def point_error(spec, sets, workload):
    """Why the point ``sets`` (on base ``spec``) cannot make an engine for ``workload``, or None."""
    try:
        cfg = configfile.load(spec, sets)
        wl = df.WORKLOADS[workload]
        cfg.fit(wl.head_dim, wl.tokens).check_engine()
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def versions(area):
    """The package and tool versions that make a point's figures (recorded in every result)."""
    names = ["numpy", "amaranth"] + (["pyosys"] if area else [])
    out = {"fusioncim": __version__, "python": platform.python_version()}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def evaluate_point(job):
    """One point (runs in a worker process): ``job`` is ``(spec, sets, options, point id)``, the id
    computed once by :func:`run`. Returns a JSON-ready dict; a config error is recorded, not raised."""
    spec, sets, opts, pid = job
    if opts.get("version", __version__) != __version__:
        raise RuntimeError(f"this worker has fusioncim {__version__}, the sweep's client {opts['version']}; "
                           f"install the same version on every worker")
    from ..accuracy import heads as accuracy, attnfile
    from . import report
    rec = {"id": pid, "sets": sets, "config": spec,
           "accuracy_file": Path(opts["accuracy_file"]).name, "versions": versions(opts["area"]),
           "host": platform.node()}
    why = point_error(spec, sets, opts["workload"])
    if why:
        rec["error"] = why
        return rec
    cfg = configfile.load(spec, sets)
    wl = df.WORKLOADS[opts["workload"]]
    wcfg = cfg.fit(opts.get("area_head_dim") or wl.head_dim, wl.tokens)
    t0 = time.perf_counter()
    # One source of rates for every point (run() picks it), so points compare like with like.
    if opts.get("patterns"):
        pats = report.patterns(cfg, opts["patterns"])
    elif opts.get("rates") == "stored":
        pats = report.stored_rates(cfg, wl.tokens)
    else:
        pats = report.shipped_rates(cfg)
    r = report.evaluate(cfg, wl, pats)
    rec["rates_note"] = r["rates_note"]
    f = r["variants"]["fusioncim"]
    rec.update(workload=wl.name, pj_per_op=f["energy_pj"] / r["ops"], tops_w=f["tops_w"], cycles=f["cycles"],
               energy_ratio=r["summary"]["energy_ratio"], speed_ratio=r["summary"]["speed_ratio"])
    util = []
    for n in SEQ_LENS:
        w = df.Workload(f"prefill-{n}", wl.heads, wl.kv_heads, wl.head_dim, "prefill", n)
        c = df.model_counters(cfg.fit(w.head_dim, w.tokens), w, pats["prefill"][0])
        util.append(c.ideal_cycles / c.cycles)
    rec["utilisation"] = dict(zip(map(str, SEQ_LENS), util))
    att = attnfile.load(opts["accuracy_file"])
    s = accuracy.summarise(accuracy.evaluate(att, cfg))
    rec["rel_l2_median"] = s["rel_l2"]["median"]
    rec["rel_l2_max"] = s["rel_l2"]["max"]
    rec["skip_frac"] = s["skip_frac"]["mean"]
    if opts["area"]:
        from ..synth import area
        per = {b: area.estimate(b, wcfg) for b in AREA_BLOCKS}
        rec["area"] = {b: {"transistors": a["transistors"], "flip_flops": a["flip_flops"],
                           "seconds": a["seconds"], "cached": a["cached"]} for b, a in per.items()}
        rec["transistors"] = sum(a["transistors"] for a in per.values())
        rec["flip_flops"] = sum(a["flip_flops"] for a in per.values())
        rec["area_mm2"] = sum(a["area_um2"] for a in per.values()) / 1e6      # logic mapped to generic45
        rec["area_head_dim"] = wcfg.head_dim
        rec["energy_head_dim"] = wl.head_dim
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def _bar(done, total, t0, width=30):
    el = time.perf_counter() - t0
    left = "" if not done else f", about {el / done * (total - done):.0f} s left"
    fill = int(width * done / max(total, 1))
    return f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} points, {el:.0f} s{left}   "


def rates_source(spec, sweeps, workload):
    """The sweep's one source of score-pattern rates when none are given: ``"stored"`` if every buildable
    point has stored rates for the workload's length (``report.stored_rates``), else ``"shipped"``
    (measured on the shipped 256-token files at every point). Mixing the two would compare points
    measured on different data."""
    from . import report
    tokens = df.WORKLOADS[workload].tokens
    points = [sets for sets in grid(sweeps) if point_error(spec, sets, workload) is None]
    stored = all(report.stored_rates(configfile.load(spec, sets), tokens) is not None for sets in points)
    return "stored" if points and stored else "shipped"


def rates_heading(records, sweeps, spec, workload):
    """The sweep's heading line about its rates (printed by ``fusioncim explore``)."""
    from . import report
    notes = {r["rates_note"] for r in records if "rates_note" in r}
    tokens = df.WORKLOADS[workload].tokens
    points = [sets for sets in grid(sweeps) if point_error(spec, sets, workload) is None]
    have = sum(report.stored_rates(configfile.load(spec, sets), tokens) is not None for sets in points)
    text = "; ".join(sorted(notes))
    if have and have < len(points):
        text += (f". Stored {tokens}-token rates exist for {have} of the {len(points)} points; a sweep takes its "
                 f"rates from one source for every point, so these figures differ from `fusioncim report` at those "
                 f"points")
    return text


def run(spec, sweeps, out, *, workload, accuracy_file, area=True, jobs=2, patterns=None, progress=True, dask=None,
        evaluate=None, area_head_dim=None):
    """Sweep the grid into ``out/results.jsonl`` (resuming), then draw the plots.

    Returns ``(records, summary)``: one record per point of the grid in grid order (a point that failed
    this time is ``{"id", "sets", "config", "failed": message}``), and the counts ``done`` (this run),
    ``failed`` and ``skipped`` (already in ``results.jsonl``). ``evaluate`` replaces
    :func:`evaluate_point` (tests). ``area_head_dim`` synthesises the blocks at that head_dim instead
    of the workload's (a quick study; the energy and accuracy figures do not change).
    """
    out = Path(out)
    results = out / "results.jsonl"
    opts = {"workload": workload, "accuracy_file": str(accuracy_file), "area": bool(area),
            "patterns": [str(p) for p in patterns] if patterns else None,
            "rates": None if patterns else rates_source(spec, sweeps, workload)}
    if area_head_dim:
        opts["area_head_dim"] = int(area_head_dim)      # only when given: the ids of other sweeps stay as they were
    done = {}
    if results.exists():
        for line in results.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["id"]] = rec
            except (ValueError, KeyError):
                continue                      # a line cut short by a stopped run: that point runs again
    jobs_todo = []
    order = []
    for sets in grid(sweeps):
        pid = _point_id(spec, sets, opts)
        order.append(pid)
        if pid not in done:
            jobs_todo.append((pid, (spec, sets, {**opts, "version": __version__}, pid)))
    say = (lambda m: print(m, end="", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    summary = {"points": len(order), "skipped": len(order) - len(jobs_todo), "done": 0, "failed": 0}
    failed = {}
    with open_pool(jobs, dask) as pool:               # a scheduler that does not answer fails here, before any write
        out.mkdir(parents=True, exist_ok=True)
        if summary["skipped"]:
            say(f"{summary['skipped']} of {len(order)} points already in {results}\n")
        t0 = time.perf_counter()
        if jobs_todo:
            say(f"{len(jobs_todo)} points on {pool.label}\n")
            say(_bar(0, len(jobs_todo), t0))
            with open(results, "a") as fh:
                futures = {pool.submit(evaluate or evaluate_point, job, pid): (pid, job) for pid, job in jobs_todo}
                for n, fut in enumerate(pool.completed(list(futures)), 1):
                    rec, why = pool.outcome(fut)
                    if rec is None:
                        pid, (spec_j, sets_j, _, _) = futures[fut]
                        rec = {"id": pid, "sets": sets_j, "config": spec_j, "failed": why}
                        failed[rec["id"]] = rec
                        with open(out / "failed.jsonl", "a") as ff:
                            ff.write(json.dumps(rec) + "\n")
                        summary["failed"] += 1
                    else:
                        fh.write(json.dumps(rec) + "\n")
                        fh.flush()
                        done[rec["id"]] = rec
                        summary["done"] += 1
                    say(_bar(n, len(jobs_todo), t0))
            say("\n")
    say(f"{summary['done']} done, {summary['failed']} failed, {summary['skipped']} skipped (already done)\n")
    records = [done.get(p) or failed[p] for p in order]
    plot([r for r in records if "failed" not in r], out, sweeps)
    return records, summary


def _label(rec):
    return ", ".join(rec["sets"]) or "base"


def plot(records, out, sweeps):
    """Write ``pareto.png`` (with area), ``utilisation.png`` and ``accuracy.png`` into ``out``."""
    import matplotlib.pyplot as plt
    written = []
    for name, fig in figures(records, sweeps).items():
        fig.savefig(Path(out) / name, dpi=120)
        plt.close(fig)
        written.append(name)
    return written


SAME_WITHIN = 0.005
"""A metric whose values across a sweep stay within this fraction of their size is said in a caption, not plotted."""


def _same(values):
    """True when a metric does not vary across the points (within ``SAME_WITHIN``): a flat plot would say nothing."""
    values = np.asarray(values, float)
    if values.size < 2 or not np.all(np.isfinite(values)):
        return False
    return bool(np.ptp(values) <= SAME_WITHIN * max(np.max(np.abs(values)), 1e-12))


def _caption(ax, text):
    # In place of a flat or overlapping plot: the value, said once, inside the axes.
    ax.text(0.5, 0.5, textwrap.fill(text, 48), ha="center", va="center", transform=ax.transAxes, fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "whitesmoke", "edgecolor": "grey"})


def _title(fig, text, width_in):
    # Wrapped to the figure's width (about 13 characters per inch at this size) so it never runs off.
    fig.suptitle(textwrap.fill(text, max(30, int(13 * width_in))), fontsize=10)


def figures(records, sweeps):
    """The sweep's figures by file name (``pareto.png``, ``utilisation.png``, ``accuracy.png``).

    Titles are wrapped inside the figure and legends sit outside the axes (constrained layout makes
    room); a metric that is the same at every point is said in a caption instead of being drawn flat.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in records if "error" not in r]
    figs = {}
    if not ok:
        return figs
    swept = ", ".join(sweeps) or "the base config"
    change = f"{swept} {'does' if len(sweeps) < 2 else 'do'} not change"
    if all("transistors" in r for r in ok):
        figs["pareto.png"] = _pareto_figure(plt, ok, change)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    curves = np.array([[100 * r["utilisation"][str(n)] for n in SEQ_LENS] for r in ok])
    if len(ok) > 1 and all(_same(curves[:, j]) for j in range(len(SEQ_LENS))):
        ax.plot(SEQ_LENS, curves[0], marker="o", color="tab:blue")
        _caption(ax, f"the same at every point of the sweep (within {SAME_WITHIN:.1%}): {change} utilisation")
    else:
        for r, ys in zip(ok, curves):
            ax.plot(SEQ_LENS, ys, marker="o", label=_label(r))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (LLaMA-3-8B prefill shape, causal)")
    ax.set_ylabel("IP-CIM utilisation, ideal / cycles (%)")
    ax.set_ylim(0, 100)
    _title(fig, f"IP-CIM utilisation against sequence length, sweeping {swept}", 8)
    figs["utilisation.png"] = fig
    keys = list(sweeps) or ["(base)"]
    width = max(6.0, 4.5 * len(keys))
    fig, axes = plt.subplots(1, len(keys), figsize=(width, 4.5), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys):
        vals = sweeps.get(key, ["base"])
        stats = {stat: [np.mean([100 * r[stat] for r in ok if f"{key}={v}" in r["sets"] or key == "(base)"]
                                or [np.nan]) for v in vals] for stat in ("rel_l2_median", "rel_l2_max")}
        if len(vals) > 1 and all(_same(ys) for ys in stats.values()):
            ax.set_yticks([])
            _caption(ax, f"{key} does not change the accuracy (by less than {SAME_WITHIN:.1%} of it): rel L2 median "
                         f"{np.mean(stats['rel_l2_median']):.2f}%, max {np.mean(stats['rel_l2_max']):.2f}% at every "
                         f"value")
        else:
            for (stat, ys), style in zip(stats.items(), ("o-", "s--")):
                ax.plot(range(len(vals)), ys, style, label=stat.replace("rel_l2_", "rel L2 "))
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.set_xticks(range(len(vals)), vals)
        ax.set_xlabel(key)
        ax.set_ylabel("rel L2 error vs float64 (%)")
    _title(fig, f"accuracy on {Path(ok[0].get('accuracy_file', '')).name or 'real attention'} (golden model; mean "
                f"over the other swept parameters)", width)
    figs["accuracy.png"] = fig
    return figs


def _pareto_figure(plt, ok, change):
    # Logic area in mm² (records from before it was kept: transistors), against energy per operation, and
    # the head_dim of each where they differ (a quick study synthesises at a smaller one).
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    mm2 = all("area_mm2" in r for r in ok)
    xs = np.array([r["area_mm2"] if mm2 else r["transistors"] / 1e6 for r in ok], float)
    ys = np.array([r["pj_per_op"] for r in ok])
    ax.scatter(xs, ys, color="tab:blue")
    for r, x, y in zip(ok, xs, ys):
        ax.annotate(_label(r), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if len(ok) > 1 and not (_same(xs) or _same(ys)):
        front = _pareto(xs, ys)
        ax.plot(xs[front], ys[front], color="tab:red", label="Pareto front")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    elif _same(ys):
        _caption(ax, f"energy per operation is {np.mean(ys):.3f} pJ/op at every point (within {SAME_WITHIN:.1%}): "
                     f"{change} it")
    area_d, energy_d = ok[0].get("area_head_dim"), ok[0].get("energy_head_dim")
    at = f", synthesised at head_dim {area_d}" if area_d else ""
    ax.set_xlabel("IP-CIM + softmax + OP-CIM logic (mm² at 45 nm, generic library" + at + ")"
                  if mm2 else "compute-block area (million transistors, Yosys stat -tech cmos, flip-flops excluded)")
    ax.set_ylabel("on-chip energy per operation (pJ/op)" + (f", head_dim {energy_d}" if energy_d else ""))
    note = ""
    if area_d and energy_d and area_d != energy_d:
        note = (f"; area synthesised at head_dim {area_d} (--area-head-dim), energy for the workload's head_dim "
                f"{energy_d}: compare the points with each other, not with a full-size engine's area")
    _title(fig, f"area vs energy per operation, {ok[0]['workload']}{note}", 8)
    return fig


def _pareto(xs, ys):
    # Indices of points no other point beats in both area and energy, in area order.
    idx = np.argsort(xs, kind="stable")
    front, best = [], np.inf
    for i in idx:
        if ys[i] < best:
            front.append(i)
            best = ys[i]
    return np.array(front, int)
