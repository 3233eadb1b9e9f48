"""``fusioncim area``: Yosys area of a block or the engine: µm² at 45 nm, an estimated clock, transistors and flip-flops."""

from __future__ import annotations

import sys
from pathlib import Path

from .common import UserError, progress, require_cache, block_config, finish_parser, add_block_args, print_json


def register(sub):
    ar = sub.add_parser("area", help="Yosys area of a block or the engine: µm² at 45 nm, an estimated clock, "
                                     "transistors and flip-flops")
    add_block_args(ar)
    ar.add_argument("--liberty", type=Path, metavar="FILE.lib",
                    help="map to this cell library instead of the bundled generic 45 nm one")
    ar.add_argument("--no-cache", action="store_true", help="synthesise even if a cached result exists")
    ar.add_argument("--breakdown", action="store_true",
                    help="engine only: also where the OP-CIM column's and IP-CIM row's area goes, function by "
                         "function (each synthesised alone on the bundled library; JSON field 'breakdown')")
    ar.add_argument("--json", action="store_true", help="print the full result as one JSON document (area, "
                    "transistors, flip-flops, cells, clock, SRAM, per-module figures)")
    finish_parser(ar, run)


def run(args):
    from ..synth import area
    cfg = block_config(args)
    if args.liberty is not None and not args.liberty.is_file():
        raise UserError(f"--liberty {str(args.liberty)!r} is not a file")
    if args.liberty is not None:
        area.check_liberty(args.liberty)         # a library lacking a cell: one line, before anything runs
    if args.breakdown and args.block != "engine":
        raise UserError(f"--breakdown is for the engine (its OP-CIM columns and IP-CIM rows), not {args.block}")
    if args.breakdown and args.liberty is not None:
        raise UserError("--breakdown maps to the bundled library only; leave out --liberty")
    require_cache()
    say = progress(args.quiet)
    say(f"synthesising {args.block} with Yosys (results cached in {area.cache_dir()}) ...")
    try:
        r = area.estimate(args.block, cfg, liberty=args.liberty, cache=not args.no_cache)
    except area.AreaError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1
    if args.block == "engine" and args.bus == "none":
        r = {**r, "efficiency": engine_efficiency(cfg, r)}
    if args.breakdown:
        from ..synth import breakdown
        r = {**r, "breakdown": breakdown.breakdown(cfg, progress=say)}
    if args.json:
        print_json(r)
        return 0
    for line in area_lines(args.block, r):
        print(line)
    if "efficiency" in r:
        from ..perf import efficiency
        for line in efficiency.lines(r["efficiency"]):
            print(line)
    if "breakdown" in r:
        from ..synth import breakdown
        for line in breakdown.lines(r["breakdown"], r.get("modules")):
            print(line)
    return 0


def engine_efficiency(cfg, r):
    """:func:`fusioncim.perf.efficiency.figures` of the engine's area ``r``, its utilisation and TOPS/W from the
    report's first workload this config runs (the report's cycle and energy models)."""
    from ..perf import dataflow, efficiency, report
    names, _ = report.runnable_workloads(cfg)
    if not names:
        return efficiency.figures(cfg, r)
    wl = dataflow.WORKLOADS[names[0]]
    first = report.evaluate(cfg, wl, report.patterns(cfg, tokens=wl.tokens))
    return efficiency.figures(cfg, r, **efficiency.from_report(cfg, first))



def area_lines(block, r):
    """The area report of :func:`synth.area.estimate`'s result, as printed by ``fusioncim area`` and the demo."""
    lines = [f"{block}: {r['area_um2']:,.0f} µm² = {r['area_um2'] / 1e6:.3f} mm² of logic, mapped to {r['liberty']} "
             f"({sum(r['lib_cells'].values()):,} cells)",
             f"{block}: {r['transistors']:,}{'+' if r['lower_bound'] else ''} transistors "
             f"(Yosys stat -tech cmos; flip-flops excluded), {r['flip_flops']:,} flip-flops"]
    if r["sram_bits"]:
        lines.append(f"{block}: KV buffer {r['sram_bits']:,} bits of SRAM, estimated {r['sram_um2'] / 1e6:.3f} mm² "
                     f"(45 nm bit cell / array efficiency); total {(r['area_um2'] + r['sram_um2']) / 1e6:.3f} mm²")
    if r["clock_mhz"] is None:
        lines.append(f"{block}: no clock estimate: the liberty file gives no delays")
    else:
        lines.append(f"{block}: estimated clock {r['clock_mhz']:,.0f} MHz ({r['clock_ns']:.2f} ns: the longest "
                     f"logic path inside one module, {r['logic_ns']:.2f} ns in {r['critical_module']}, plus "
                     f"flip-flop clock-to-Q and setup; paths across module ports are not timed whole)")
        others = sorted(r.get("module_ns", {}).items(), key=lambda kv: -kv[1])
        if len(others) > 1:
            lines.append(f"{block}: longest logic path per module: "
                         + ", ".join(f"{name} {ns:.2f} ns" for name, ns in others))
    cells = ", ".join(f"{m['instances']} x {name}" for name, m in sorted(r.get("modules", {}).items()))
    took = "result from the cache" if r["cached"] else f"{r['seconds']:.1f} s"
    lines.append(f"Yosys: {took}" + (f"; cells synthesised once each: {cells}" if cells else ""))
    return lines
