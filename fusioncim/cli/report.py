"""``fusioncim report``: FusionCIM vs a non-fused CIM baseline and ablations: cycles, energy, TOPS/W, beside the paper's claims."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core import configfile
from .common import UserError, progress, positive, finish_parser, print_json


def register(sub):
    r = sub.add_parser("report", help="FusionCIM vs a non-fused CIM baseline and ablations: cycles, energy, "
                                      "TOPS/W, beside the paper's claims")
    r.add_argument("--workload", action="append", metavar="NAME",
                   help="a LLaMA-3 attention workload (repeatable; 'all' for every one the config's rows can "
                        "run; default: llama3-8b-prefill-2048, llama3-8b-decode-8192 and "
                        "llama3-8b-decode-8192-p4, decode at 4 query positions per step, left out with a note "
                        "when rows cannot hold them)")
    r.add_argument("--energy", type=Path, metavar="FILE.toml", help="per-event energy table "
                   "(default: synth/energy.toml, Horowitz ISSCC 2014 at 45 nm)")
    r.add_argument("--node", type=float, metavar="NM", help="process node to scale the table to (default 45)")
    r.add_argument("--vdd", type=float, metavar="V", help="supply voltage to scale the table to (default 0.9)")
    r.add_argument("--kv-buffer", metavar="KEYS", help="keys the KV buffer holds, for every dataflow; a longer "
                   "sequence is fetched again per Q tile (default: the config's kv_depth, raised to the sequence)")
    r.add_argument("--sp-buffer", metavar="KIB", help="S/P buffer of the baselines and no_fusion in KiB, or none "
                      "(always fits); a tile's scores that do not fit go to DRAM and back (default 64)")
    r.add_argument("--qo-buffer", metavar="KIB", help="Q/O buffer (partial O, running max and sum) in KiB, or none "
                      "(default 128)")
    r.add_argument("--patterns", type=Path, nargs="+", metavar="FILE",
                   help="score-pattern rates: .npz attention files to measure them on, or one .json rates file from "
                        "`fusioncim patterns --out` (default: the stored rates in fusioncim/data/patterns for the "
                        "workload's length when the config matches them, else measured on the shipped 256-token "
                        "files fusioncim/data/real/smollm2-*.npz); the output's heading says which")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON document (a list, one entry per workload)")
    out.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs)")
    finish_parser(r, run)


def _buffer_size(name, text, scale):
    # "none": the working set always fits; else a positive integer (KiB or keys).
    if text is None or text == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{name} must be a positive integer or none, not {text!r}")
    return value * scale


def _buffers(args, default):
    from ..perf.dataflow import Buffers
    return Buffers(
        kv_keys=_buffer_size("--kv-buffer", args.kv_buffer, 1) if args.kv_buffer is not None else default.kv_keys,
        sp_bytes=_buffer_size("--sp-buffer", args.sp_buffer, 1024) if args.sp_buffer is not None else default.sp_bytes,
        qo_bytes=_buffer_size("--qo-buffer", args.qo_buffer, 1024) if args.qo_buffer is not None else default.qo_bytes)


def run(args):
    from ..perf import dataflow, report
    from ..synth import energy
    cfg = configfile.load(args.config, args.set)
    say = progress(args.quiet)
    names = args.workload
    if not names or names == ["all"]:
        # The default set and 'all' leave out, with a note, what the config's rows cannot run.
        names, notes = report.runnable_workloads(cfg, list(dataflow.WORKLOADS) if names else report.DEFAULT_WORKLOADS)
        for note in notes:
            print(f"fusioncim: note: {note}", file=sys.stderr)
        if not names:
            raise UserError("no workload fits this config's rows; name one with --workload")
    else:
        # A workload named on its own is run or refused, before anything runs.
        for n in names:
            if n not in dataflow.WORKLOADS:
                raise UserError(f"--workload {n!r} is not one of: all, {', '.join(dataflow.WORKLOADS)}")
        _, notes = report.runnable_workloads(cfg, names)
        if notes:
            raise UserError(f"--workload {notes[0].replace(' left out:', ':', 1)}")
    buffers = _buffers(args, report.DEFAULT_BUFFERS)
    positive("--node", args.node)
    positive("--vdd", args.vdd)
    try:
        table = energy.load_table(args.energy)
    except energy.EnergyTableError as exc:
        raise UserError(str(exc)) from None
    for f in args.patterns or []:
        if not f.is_file():
            raise UserError(f"--patterns file {str(f)!r} does not exist")
    if args.patterns:
        report.check_rates_file(cfg, args.patterns)
    results = []
    pats = {}
    for i, n in enumerate(names, 1):
        say(f"[{i}/{len(names)}] {n}")
        wl = dataflow.WORKLOADS[n]
        if wl.tokens not in pats:
            pats[wl.tokens] = report.patterns(cfg, args.patterns, tokens=wl.tokens)
        results.append(report.evaluate(cfg, wl, pats[wl.tokens], table=table, node_nm=args.node, vdd=args.vdd,
                                       buffers=buffers))
    if args.json:
        print_json(results)
    else:
        fmt = report.format_markdown if args.markdown else report.format_table
        print("\n\n".join(fmt(r) for r in results))
        print()
        print(_area_note(cfg, results[0]))
    return 0


def _area_note(cfg, first=None):
    # The engine's area, clock and efficiency (its utilisation and TOPS/W from the report result `first`,
    # when given) if `fusioncim area engine` has synthesised this config; never synthesises.
    from ..perf import efficiency
    from ..synth import area
    r = area.cached_result("engine", cfg)
    if r is None:
        return ("Area and clock of this config: not synthesised yet, so no TOPS/mm²; `fusioncim area engine` (with "
                "the same --config/--set) makes them, under a minute for the default config.")
    head = (f"Area of this config's engine (cached from `fusioncim area engine`): {r['area_um2'] / 1e6:.3f} mm² of "
            f"logic at 45 nm plus {r['sram_um2'] / 1e6:.3f} mm² of KV SRAM (estimate); estimated clock "
            f"{r['clock_mhz']:,.0f} MHz.")
    use = {} if first is None else efficiency.from_report(cfg, first)
    return "\n".join([head, *efficiency.lines(efficiency.figures(cfg, r, **use))])
