"""Design-space sweeps: ``fusioncim explore`` (docs/energy.md, section "Sweeps").

Every point of the grid (the product of the ``--sweep KEY=V1,V2,...`` lists
applied to a base config) gets: energy per operation, TOPS/W, cycles and the
energy and speed ratios against the baseline on one workload
(:mod:`.report`); IP-CIM utilisation against sequence length (LLaMA-3-8B
prefill shapes, the engine's exact tile schedule); accuracy against float64
on a real attention file (golden model); and, unless ``--no-area``, the Yosys
area of the compute blocks (IP-CIM, softmax, OP-CIM) at the workload's
head_dim (cached, :mod:`synth.area`).

Points run in a process pool. Each finished point is appended to
``results.jsonl`` in the output folder at once, so a sweep that is stopped
and run again does only the points it has not finished; the plots are drawn
from every finished point.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
from functools import lru_cache
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import config as config_mod
from . import dataflow as df

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
    portable = {**options, "accuracy_file": _file_id(options["accuracy_file"]),
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


def evaluate_point(job):
    """One point (runs in a worker process). Returns a JSON-ready dict; a config error is recorded, not raised."""
    spec, sets, opts = job
    from . import accuracy, attnfile, report
    rec = {"id": _point_id(spec, sets, opts), "sets": sets, "config": spec,
           "accuracy_file": Path(opts["accuracy_file"]).name}
    try:
        cfg = config_mod.load(spec, sets)
        wl = df.WORKLOADS[opts["workload"]]
        wcfg = cfg.fit(wl.head_dim, wl.tokens)
        wcfg.check_engine()
    except (ValueError, TypeError) as exc:
        rec["error"] = str(exc)
        return rec
    t0 = time.perf_counter()
    # Rates measured on the same files at every point, so points compare like with like.
    pats = report.patterns(cfg, opts.get("patterns") or sorted(report.REAL.glob("smollm2-*.npz")))
    r = report.evaluate(cfg, wl, pats)
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
        from .synth import area
        per = {b: area.estimate(b, wcfg) for b in AREA_BLOCKS}
        rec["area"] = {b: {"transistors": a["transistors"], "flip_flops": a["flip_flops"],
                           "seconds": a["seconds"], "cached": a["cached"]} for b, a in per.items()}
        rec["transistors"] = sum(a["transistors"] for a in per.values())
        rec["flip_flops"] = sum(a["flip_flops"] for a in per.values())
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def _bar(done, total, t0, width=30):
    el = time.perf_counter() - t0
    left = "" if not done else f", about {el / done * (total - done):.0f} s left"
    fill = int(width * done / max(total, 1))
    return f"\r[{'#' * fill}{'-' * (width - fill)}] {done}/{total} points, {el:.0f} s{left}   "


def run(spec, sweeps, out, *, workload, accuracy_file, area=True, jobs=2, patterns=None, progress=True):
    """Sweep the grid into ``out/results.jsonl`` (resuming), then draw the plots; returns the records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    opts = {"workload": workload, "accuracy_file": str(accuracy_file), "area": bool(area),
            "patterns": [str(p) for p in patterns] if patterns else None}
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
            jobs_todo.append((spec, sets, opts))
    say = (lambda m: print(m, end="", file=sys.stderr, flush=True)) if progress else (lambda m: None)
    if len(order) > len(jobs_todo):
        say(f"{len(order) - len(jobs_todo)} of {len(order)} points already in {results}\n")
    t0 = time.perf_counter()
    if jobs_todo:
        say(_bar(0, len(jobs_todo), t0))
        with cf.ProcessPoolExecutor(max_workers=max(1, jobs)) as pool, open(results, "a") as fh:
            futures = [pool.submit(evaluate_point, j) for j in jobs_todo]
            for n, fut in enumerate(cf.as_completed(futures), 1):
                rec = fut.result()
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                done[rec["id"]] = rec
                say(_bar(n, len(jobs_todo), t0))
        say("\n")
    records = [done[p] for p in order]
    plot(records, out, sweeps)
    return records


def _label(rec):
    return ", ".join(rec["sets"]) or "base"


def plot(records, out, sweeps):
    """Write ``pareto.png`` (with area), ``utilisation.png`` and ``accuracy.png`` into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in records if "error" not in r]
    out = Path(out)
    written = []
    if ok and all("transistors" in r for r in ok):
        fig, ax = plt.subplots(figsize=(7, 5))
        xs = np.array([r["transistors"] for r in ok], float)
        ys = np.array([r["pj_per_op"] for r in ok])
        ax.scatter(xs / 1e6, ys, color="tab:blue")
        for r, x, y in zip(ok, xs, ys):
            ax.annotate(_label(r), (x / 1e6, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = _pareto(xs, ys)
        ax.plot(xs[front] / 1e6, ys[front], color="tab:red", label="Pareto front")
        ax.set_xlabel("compute-block area (million transistors, Yosys stat -tech cmos, flip-flops excluded)")
        ax.set_ylabel("on-chip energy per operation (pJ/op)")
        ax.set_title(f"area vs energy/op, {ok[0]['workload']}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "pareto.png", dpi=120)
        plt.close(fig)
        written.append("pareto.png")
    if ok:
        fig, ax = plt.subplots(figsize=(7, 5))
        for r in ok:
            ax.plot(SEQ_LENS, [100 * r["utilisation"][str(n)] for n in SEQ_LENS], marker="o", label=_label(r))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length (LLaMA-3-8B prefill shape, causal)")
        ax.set_ylabel("IP-CIM utilisation, ideal / cycles (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "utilisation.png", dpi=120)
        plt.close(fig)
        written.append("utilisation.png")
        keys = list(sweeps) or ["(base)"]
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4), squeeze=False)
        for ax, key in zip(axes[0], keys):
            vals = sweeps.get(key, ["base"])
            for stat, style in (("rel_l2_median", "o-"), ("rel_l2_max", "s--")):
                ys = [np.mean([100 * r[stat] for r in ok if f"{key}={v}" in r["sets"] or key == "(base)"] or [np.nan])
                      for v in vals]
                ax.plot(range(len(vals)), ys, style, label=stat.replace("rel_l2_", "rel L2 "))
            ax.set_xticks(range(len(vals)), vals)
            ax.set_xlabel(key)
            ax.set_ylabel("rel L2 error vs float64 (%)")
            ax.legend(fontsize=7)
        fig.suptitle(f"accuracy on {Path(ok[0].get('accuracy_file', '')).name or 'real attention'} "
                     f"(golden model; mean over the other swept parameters)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "accuracy.png", dpi=120)
        plt.close(fig)
        written.append("accuracy.png")
    return written


def _pareto(xs, ys):
    # Indices of points no other point beats in both area and energy, in area order.
    idx = np.argsort(xs, kind="stable")
    front, best = [], np.inf
    for i in idx:
        if ys[i] < best:
            front.append(i)
            best = ys[i]
    return np.array(front, int)
