"""The main job (``make demo``): generate, simulate bit-exact, synthesise, report.

1. Generate the engine's Verilog for the config (default: the default preset).
2. Run a real attention head (SmolLM2-135M, layer 12, from ``fusioncim/data/real``) on
   it in Verilator, checked element by element and counter by counter
   against the golden model.
3. Synthesise the same engine with Yosys (in parallel with 2; cached, so a
   second run is quick): area in mm² at 45 nm and the estimated clock, and
   with it the simulated head's time.
4. Print the report: the simulated head with the RTL's own counters, and
   LLaMA-3-8B prefill 2048 and decode 8192 from the model (docs/energy.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
from pathlib import Path

from ..perf import dataflow as df
from ..perf import report
from ..sim import simulate, workload
from ..core.config import PRESETS
from ..core.files import cache_root
from ..ip.generate import write_verilog
from ..golden.engine import Counters

REAL = report.REAL
DEFAULT_FILE = REAL / "smollm2-L12-T256.npz"


def _synth(cfg):
    from ..synth import area
    return area.estimate("engine", cfg)


def main(cfg=None, *, npz=DEFAULT_FILE, heads=(0, 1), tokens=None, synth=True, out=None, quiet=False):
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    cfg = cfg or PRESETS["default"]
    npz = npz or DEFAULT_FILE
    spec = {"kind": "npz", "path": str(Path(npz).resolve()), "heads": list(heads), "mode": "prefill"}
    if tokens:
        spec["tokens"] = tokens
    ecfg = workload.config_for_spec(cfg, spec)
    ecfg.check_engine()
    w = workload.make(spec, ecfg)             # a bad file or head list fails here, before anything runs
    out = Path(out) if out else cache_root() / "demo"         # beside the RTL builds, not in the current folder
    out.mkdir(parents=True, exist_ok=True)
    verilog = write_verilog("engine", ecfg, out / "engine.v")
    step = iter(range(1, 5))
    print(f"{next(step)}. generated {verilog} ({ecfg.rows} rows x head_dim {ecfg.head_dim}, KV buffer "
          f"{ecfg.kv_keys} keys; {'; '.join(workload.fit_notes(cfg, ecfg, spec))})")
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(_synth, ecfg) if synth else None
        if synth:
            say("synthesising the engine with Yosys in the background (under a minute for the default "
                "config on this machine; cached afterwards) ...")
        r = simulate.simulate(ecfg, spec, sim="verilator", progress=say)
        print(f"{next(step)}. simulated on Verilator: {simulate.format_result(r).splitlines()[0].removeprefix('workload      ')}")
        e = r["error_vs_float64"]
        print(f"   {r['cycles']:,} cycles (ideal {r['ideal_cycles']:,}, IP-CIM busy {r['utilisation']['ip_cim']:.1%}); "
              f"{r['mismatching_elements']} of {r['elements']} output elements and "
              f"{len(r['counter_mismatches'])} of {len(r['counters_rtl'])} counters differ from golden"
              + (f"; rel L2 vs float64 median {e['rel_l2_median']:.2%}" if e else ""))
        if synth:
            say("waiting for Yosys ...")
            a = fut.result()
            from . import area_lines
            print(f"{next(step)}. synthesised (Yosys, hierarchical: each distinct cell once)")
            for line in area_lines("engine", a):
                print("   " + line)
    say(f"(simulation{' and synthesis' if synth else ''}: {time.perf_counter() - t0:.0f} s)")
    if not r["bit_exact"]:
        print("MISMATCH between RTL and golden: no report", file=sys.stderr)
        return 1
    # The simulated head, priced from the RTL's own counters.
    rtl = r["counters_rtl"]
    c = Counters(**{**r["counters_golden"], **rtl, "ideal_cycles": r["ideal_cycles"]})
    wl = df.Workload(f"{Path(npz).stem} heads {','.join(map(str, heads))}", w.z.q.shape[0], w.z.k.shape[0],
                     ecfg.head_dim, "prefill", w.z.k.shape[1])
    results = [report.evaluate(ecfg, wl, report.patterns(ecfg, [npz]), counters=c,
                               counters_source=f"RTL (Verilator) counters of the simulated engine, equal to the "
                                               f"golden model's on all {len(rtl)}")]
    names, notes = report.default_workloads(cfg)
    for note in notes:
        say(f"note: {note}")
    results += [report.evaluate(cfg, df.WORKLOADS[n], report.patterns(cfg, tokens=df.WORKLOADS[n].tokens))
                for n in names]
    if synth:
        # The simulated heads at the estimated clock; operations counted as the report counts them.
        secs = r["cycles"] * a["clock_ns"] * 1e-9
        print(f"   at the estimated clock the simulated heads take {secs * 1e6:,.1f} µs ({r['cycles']:,} cycles x "
              f"{a['clock_ns']:.2f} ns): {results[0]['ops'] / secs / 1e12:.2f} TOPS on the report's "
              f"{results[0]['ops']:,} operations")
    print(f"{next(step)}. report (docs/energy.md)\n")
    print("\n\n".join(report.format_table(x) for x in results))
    return 0
