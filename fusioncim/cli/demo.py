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
from ..core.counters import Counters
from ..core import configfile
from .common import UserError, finish_parser, check_head_dim, int_list, require_cache

REAL = report.REAL
DEFAULT_FILE = REAL / "smollm2-L12-T256.npz"


def _synth(cfg):
    from ..synth import area
    return area.estimate("engine", cfg)


def main(cfg=None, *, npz=DEFAULT_FILE, heads=(0, 1), tokens=None, synth=True, out=None, quiet=False):
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    cfg = cfg or PRESETS["default"]
    npz = npz or DEFAULT_FILE
    spec = workload.Spec(kind="npz", path=str(Path(npz).resolve()), heads=list(heads), tokens=tokens or None)
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
            from .area import area_lines
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
    names, notes = report.runnable_workloads(cfg)
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
        from ..perf import efficiency
        util = results[0]["ops"] / (r["cycles"] * efficiency.peak_ops_per_cycle(ecfg))
        fig = efficiency.figures(ecfg, a, utilisation=util, utilisation_source="the simulated heads on the RTL",
                                 tops_w=results[0]["summary"]["tops_w"],
                                 tops_w_source="the simulated heads, the report's energy model on the RTL's counters")
        for line in efficiency.lines(fig):
            print("   " + line)
    print(f"{next(step)}. report (docs/energy.md)\n")
    print("\n\n".join(report.format_table(x) for x in results))
    # The verdict, last, where a reader of a long output looks first.
    summary = results[0]["summary"]
    print(f"\nverdict: the RTL is bit-exact with golden ({r['elements']:,} output elements and "
          f"{len(r['counters_rtl'])} counters equal)" + (", synthesised" if synth else "")
          + f"; on the simulated heads, FusionCIM against the pipelined baseline: "
            f"{summary['energy_ratio_pipelined']:.2f}x energy efficiency, {summary['speed_ratio_pipelined']:.2f}x speed")
    return 0


# -- the command -----------------------------------------------------------------

def register(sub):
    d = sub.add_parser("demo", help="the main job: generate the engine, simulate a real head bit-exact on "
                                    "Verilator, synthesise it, print the report")
    d.add_argument("--npz", type=Path, default=None, metavar="FILE.npz",
                   help="real attention to simulate (default fusioncim/data/real/smollm2-L12-T256.npz)")
    d.add_argument("--heads", default="0,1", help="comma-separated heads of the file (default 0,1)")
    d.add_argument("--tokens", type=int, help="keep the first N tokens (default: all)")
    d.add_argument("--no-synth", action="store_true", help="skip Yosys")
    finish_parser(d, run)


def run(args):
    cfg = configfile.load(args.config, args.set)
    heads = int_list("--heads", args.heads)
    if args.tokens is not None and args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    check_head_dim(args.set, args.npz or DEFAULT_FILE)
    require_cache()                                 # the demo's Verilog goes into the cache folder
    try:
        return main(cfg, npz=args.npz, heads=heads, tokens=args.tokens, synth=not args.no_synth,
                         quiet=args.quiet)
    except RuntimeError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1
