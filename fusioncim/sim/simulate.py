"""``fusioncim simulate``: generate the engine, run whole attention heads on it, check every bit against golden.

The run goes through the cocotb testbench ``tb/engine_tests.py`` (the same one
the regression uses) on a cached build (``fusioncim/sim/rtlsim.py``). The result
holds the RTL's counters beside golden's, the number of output elements that
differ, utilisation, and the error of the RTL's output against float64.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from . import program as host, rtlsim, workload
from ..golden import engine, reference
from ..accuracy import quant
from .checks import decode_outputs, read_observed, record
from ..core.config import EngineConfig

__all__ = ["simulate", "plan", "run_workloads", "format_result", "Planned"]


@dataclass
class Planned:
    """One workload made in the parent process: its inputs, golden's result, and the host's beats."""
    workload: workload.Workload
    golden: engine.EngineResult
    host: host.HostWorkload


def plan(cfg, specs, *, seed=1):
    """Make each workload spec, run golden once on it, and encode the host's beats (stall gaps seeded by ``seed``)."""
    planned = []
    for i, spec in enumerate(specs):
        w = workload.make(spec, cfg)
        z = w.z
        args = (z.q, z.k, z.v, z.c_mant, z.c_shift, cfg)
        gold = engine.run(*args, causal=w.causal, mode=w.mode, positions=w.positions, scales=z.scales)
        prog = host.program(*args, causal=w.causal, mode=w.mode, positions=w.positions, scales=z.scales)
        beats = host.encode(w.name, cfg, prog, gold.out, gold.counters.to_dict(), stall=w.stall,
                            seed=seed * 7919 + i)
        planned.append(Planned(w, gold, beats))
    return planned


def run_workloads(cfg, specs, *, sim="verilator", seed=1, waves=False, planned=None, testcase="workloads_bit_exact",
                  flat=False, native=False):
    """Run workload specs one after another through ``tb/engine_tests.py`` on a cached build.

    The workloads, golden's results and the host program are made here, once
    (:func:`plan`, or ``planned`` if given); the cocotb process only drives
    and compares. ``testcase`` None runs the module's directed tests too (they
    take the workloads named ``directed-small`` and ``directed-two-tiles``). Returns ``(results, outputs, test_dir, failed, seconds)``:
    the testbench's record per workload (RTL and golden counters, mismatches,
    errors), the RTL's output of each ``[H, Lq, d]``, the run's folder (its
    ``sim.log``, a trace, and ``program.txt``, the host program), the failed
    cocotb tests, and the seconds cocotb reports for its test cases (the
    simulation and the testbench, without the simulator's start-up).
    ``flat`` simulates the flattened netlist (``bench/build_speed.py``). ``native`` runs the program
    on the native Verilator harness instead of cocotb (:mod:`fusioncim.sim.native`); the records are the
    same, judged by the same rules (``fusioncim/sim/checks.py``), and the seconds are the harness's run.
    """
    planned = plan(cfg, specs, seed=seed) if planned is None else planned
    if native:
        return _run_native(cfg, planned)
    with tempfile.TemporaryDirectory(prefix="fusioncim-sim-") as tmp:
        prog = host.write_program(Path(tmp) / "program.txt", cfg, [p.host for p in planned])
        _, failed, xml = rtlsim.run("engine", cfg, sim, "fusioncim.tb.engine_tests", testcase=testcase,
                                    seed=seed, waves=waves, flat=flat,
                                    extra_env={"FUSIONCIM_PROGRAM": str(prog), "FUSIONCIM_RESULTS": tmp})
        shutil.copyfile(prog, xml.parent / "program.txt")
        path = Path(tmp) / "results.json"
        if not path.exists():
            raise RuntimeError(f"the simulation ended without results; see {xml.parent / 'sim.log'}")
        results = json.loads(path.read_text())
        words = read_observed(tmp, len(results))
    outputs = _judge(cfg, planned, results, words)
    return results, outputs, xml.parent, failed, _test_seconds(xml)


def _judge(cfg, planned, results, words):
    # Each workload's output words decoded once: its [H, Lq, d] array, and the elements that differ
    # from golden's added to its record.
    outputs = []
    for p, res, w in zip(planned, results, words):
        out, res["mismatches"] = decode_outputs(cfg, p.host, p.golden.out.shape, w)
        outputs.append(out)
    return outputs


def _test_seconds(xml):
    # cocotb's results file: each test case's own wall time.
    return sum(float(case.get("time", "nan")) for case in ElementTree.parse(xml).getroot().iter("testcase"))


def _run_native(cfg, planned):
    from . import native
    folder = Path(tempfile.mkdtemp(prefix="fusioncim-native-"))
    try:
        prog = host.write_program(folder / "program.txt", cfg, [p.host for p in planned])
        records, observed, seconds = native.run(cfg, planned, prog)
    finally:
        keep = rtlsim.build_dir("engine", cfg, "native") / "last-run"
        shutil.rmtree(keep, ignore_errors=True)
        if keep.parent.exists():
            shutil.copytree(folder, keep)
        shutil.rmtree(folder, ignore_errors=True)
    results = [{**record(cfg, p.host, rec["rtl"], rec["err"], words, rec["wall_cycles"]), "index": i}
               for i, (p, rec, words) in enumerate(zip(planned, records, observed))]
    outputs = _judge(cfg, planned, results, observed)
    failed = sum(bool(r["errors"]) or r["mismatches"] > 0 for r in results)
    return results, outputs, keep, failed, seconds


NATIVE_FROM_CYCLES = 200_000
"""``path="auto"`` runs a workload on the native harness when golden's schedule is longer than this."""


def choose_path(path, sim, waves, golden_cycles):
    """``"cocotb"`` or ``"native"`` for ``path`` (``auto``, ``cocotb``, ``native``)."""
    if path != "auto":
        return path
    long_run = golden_cycles > NATIVE_FROM_CYCLES
    return "native" if long_run and sim == "verilator" and not waves and native_available() is None else "cocotb"


def native_available():
    from .native import available
    return available()


def simulate(cfg, spec, *, sim="verilator", waves=None, progress=print, seed=1, path="auto"):
    """Run one workload spec on the generated engine; returns a JSON-ready dict.

    ``path`` picks cocotb or the native harness (:func:`choose_path`); the result says which ran.

    Raises ValueError for a config that cannot make an engine or a workload
    that does not fit it (before anything is built).
    """
    spec = workload.Spec.from_dict(spec)
    given, cfg = cfg, workload.config_for_spec(cfg, spec)
    cfg.check_engine()
    (planned,) = plan(cfg, [spec], seed=seed)            # checks the workload against the config
    w, gold = planned.workload, planned.golden
    z = w.z
    why = rtlsim.available(sim)
    if why:
        raise RuntimeError(f"cannot simulate on {sim}: {why}")
    path = choose_path(path, sim, waves, gold.counters.cycles)
    t0 = time.perf_counter()
    if path == "native":
        from . import native
        progress(f"building the native model (C++ harness, Verilator -O2; cached in "
                 f"{rtlsim.build_dir('engine', cfg, 'native')}) ...")
        native.build(cfg)
    else:
        progress(f"building the engine for {sim} (cached in {rtlsim.build_dir('engine', cfg, sim, waves=bool(waves))}) "
                 f"...")
        rtlsim.build("engine", cfg, sim, waves=bool(waves))
    progress(f"built in {time.perf_counter() - t0:.1f} s; simulating {gold.counters.keys} keys over "
             f"{gold.counters.tiles} tiles ({gold.counters.cycles} cycles in golden's schedule) on the "
             f"{path} path ...")
    (res,), (out,), test_dir, failed, sim_seconds = run_workloads(cfg, [spec], sim=sim, seed=seed,
                                                                  waves=bool(waves), planned=[planned],
                                                                  native=path == "native")
    if waves:
        dump = rtlsim.wave_file(test_dir, sim)
        shutil.copyfile(dump, waves)
    rtl = res["rtl"]
    ideal = rtl["keys"] * cfg.ip_cycles_per_key
    m = reference.metrics(quant.dequantise(out, z, cfg), w.reference)
    err = {"rel_l2_median": float(np.median(m["rel_l2"])), "rel_l2_max": float(np.max(m["rel_l2"])),
           "max_abs": float(np.max(m["max_abs"])), "cosine_min": float(np.min(m["cosine"]))}
    return {
        "workload": spec.to_dict(), "simulator": sim, "path": path, "config": cfg.to_dict(),
        "config_notes": workload.fit_notes(given, cfg, spec),
        "heads": int(z.q.shape[0]), "kv_heads": int(z.k.shape[0]), "queries": int(z.q.shape[1]),
        "keys_per_head": int(z.k.shape[1]), "mode": w.mode, "positions": w.positions,
        "causal": w.causal, "cycles": rtl["cycles"], "ideal_cycles": ideal,
        "utilisation": {"ip_cim": rtl["ip_busy"] / max(rtl["cycles"], 1),
                        "softmax": rtl["softmax_busy"] / max(rtl["cycles"], 1),
                        "op_cim": rtl["op_busy"] / max(rtl["cycles"], 1),
                        "normaliser": rtl["norm_busy"] / max(rtl["cycles"], 1),
                        "ideal_over_cycles": ideal / max(rtl["cycles"], 1)},
        "counters_rtl": rtl, "counters_golden": res["golden"],
        "counter_mismatches": res["errors"],
        "mismatching_elements": res["mismatches"], "elements": res["elements"],
        "error_vs_float64": err, "bit_exact": res["mismatches"] == 0 and not res["errors"] and failed == 0,
        "sim_seconds": sim_seconds,
        "waves": str(waves) if waves else None,
    }


def _count(n, one, many=None):
    return f"{n} {one if n == 1 else many or one + 's'}"


def format_result(r):
    lines = []
    sp = r["workload"]
    src = sp.get("path") or f"random (seed {sp.get('seed', 1)})"
    lines.append(f"workload      {src}: {_count(r['heads'], 'query head')}, {_count(r['kv_heads'], 'KV head')}, "
                 f"{_count(r['queries'], 'query', 'queries')}, {_count(r['keys_per_head'], 'key')}, {r['mode']}"
                 f"{', %d positions per tile' % r['positions'] if r.get('positions', 1) > 1 else ''}, {'causal' if r['causal'] else 'non-causal'}")
    if r.get("config_notes"):
        lines.append("config        " + "; ".join(r["config_notes"]))
    lines.append(f"simulator     {r['simulator']} ({'native C++ harness' if r['path'] == 'native' else 'cocotb'}), "
                 f"{r['sim_seconds']:.1f} s, {r['cycles'] / max(r['sim_seconds'], 1e-9):,.0f} cycles/s")
    cpk = EngineConfig(**r["config"]).ip_cycles_per_key
    lines.append(f"cycles        {r['cycles']}   ideal {r['ideal_cycles']} (keys x {cpk} cycles per key)"
                 f"   ideal/cycles {r['utilisation']['ideal_over_cycles']:.1%}")
    u = r["utilisation"]
    lines.append(f"busy          IP-CIM {u['ip_cim']:.1%}   softmax {u['softmax']:.1%}   OP-CIM {u['op_cim']:.1%}   "
                 f"normaliser {u['normaliser']:.1%}")
    lines.append("counters      RTL / golden")
    stalls = r["workload"].get("stall", 0) > 0
    for k, v in r["counters_rtl"].items():
        g = r["counters_golden"].get(k)
        if k == "cycles" and stalls:
            mark = "" if v == g else "   (host stalls; golden assumes none, so only >= is checked)"
        else:
            mark = "" if v == g else "   <-- differs"
        lines.append(f"  {k:<16} {v:>12} {g:>12}{mark}")
    lines.append(f"outputs       {r['mismatching_elements']} of {r['elements']} elements differ from golden")
    e = r["error_vs_float64"]
    if e:
        lines.append(f"vs float64    rel L2 median {e['rel_l2_median']:.2%}, max {e['rel_l2_max']:.2%}; "
                     f"max abs {e['max_abs']:.4f}; min cosine {e['cosine_min']:.5f}")
    if r["waves"]:
        lines.append(f"waves         {r['waves']}")
    lines.append("result        " + ("bit-exact: outputs and counters equal golden" if r["bit_exact"] else
                                     "MISMATCH: " + "; ".join(r["counter_mismatches"][:3])))
    return "\n".join(lines)
