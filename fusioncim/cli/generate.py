"""``fusioncim generate``: write the Verilog of one block for a config."""

from __future__ import annotations

from pathlib import Path

from .common import UserError, output_path, write_error, require_cache, block_config, finish_parser, add_block_args


def register(sub):
    g = sub.add_parser("generate", help="write the Verilog of one block for a config")
    add_block_args(g)
    g.add_argument("--out", type=Path, help="output file (default: BLOCK.v, or BLOCK-flat.v, in the current folder)")
    g.add_argument("--fusesoc", type=Path, metavar="DIR", help="write the Verilog, its waiver file and a "
                   "FuseSoC core (CAPI2, lint and sim targets) into DIR")
    g.add_argument("--flat", action="store_true", help="one flattened module (default: one module per distinct "
                                                       "cell, instantiated where it is used); not with --bus axi")
    g.add_argument("--sdc", nargs="?", const="estimate", metavar="NS",
                   help="also write FILE.sdc beside the Verilog: one clock of period NS (default: the estimated "
                        "clock of `fusioncim area`, synthesised now unless cached), reset and I/O constraints")
    g.add_argument("--prefix", default="", metavar="P", help="start every module name with P (and the FuseSoC "
                   "core's name), so designs of two configs, or a module of yours named like one of ours, live "
                   "in one build (default: none)")
    finish_parser(g, run)


def run(args):
    from ..ip import generate
    from ..sim import verilator
    from ..core.files import atomic_write
    cfg = block_config(args)
    generate.check_prefix(args.prefix)
    period = _period(args)
    if args.fusesoc is not None:
        return _generate_core(args, cfg)
    out = output_path("--out", args.out or Path(f"{args.block}{'-flat' if args.flat else ''}.v"))
    require_cache()
    vlt, sdc_path = out.with_suffix(".vlt"), out.with_suffix(".sdc")
    if out in (vlt, sdc_path):
        raise UserError(f"--out {str(out)!r}: the Verilog file cannot end in .vlt or .sdc (the waiver and "
                        f"constraint files' names)")
    sdc_text = None if period is None else _sdc(args, cfg, period)
    try:
        generate.write_verilog(args.block, cfg, out, flat=args.flat, prefix=args.prefix)
        # Beside the Verilog: its Verilator waivers, scoped to it, so `verilator --lint-only -Wall X.v X.vlt`
        # is clean and waives nothing in other files.
        atomic_write(vlt, lambda f: f.write(verilator.waiver_text(out.name)))
        if sdc_text is not None:
            atomic_write(sdc_path, lambda f: f.write(sdc_text))
    except OSError as exc:
        for path in (out, vlt):
            path.unlink(missing_ok=True)
        raise write_error("--out", out, exc) from None
    for path in (out, vlt) + ((sdc_path,) if sdc_text is not None else ()):
        print(path)
    return 0


def _period(args):
    # --sdc NS: a positive number of ns, checked before anything runs; --sdc alone: None (the estimate).
    if args.sdc is None or args.sdc == "estimate":
        return args.sdc
    try:
        ns = float(args.sdc)
    except ValueError:
        ns = float("nan")
    if not 0 < ns < 1e6:
        raise UserError(f"--sdc {args.sdc!r} must be a clock period in ns, more than 0")
    return ns


def _sdc(args, cfg, period):
    # The SDC's text, made before anything is written (an estimate may synthesise).
    from ..ip import sdc
    if period != "estimate":
        return sdc.sdc_text(args.block, period, f"given (--sdc {period:g})", prefix=args.prefix)
    from ..synth import area
    if args.flat:
        raise UserError("--sdc without a period estimates the clock of the hierarchical design; give a "
                        "period with --flat")
    r = area.cached_result(args.block, cfg) or area.estimate(args.block, cfg)
    if r["clock_ns"] is None:
        raise UserError("the bundled library gave no clock estimate; give the period: --sdc NS")
    source = (f"the estimate of `fusioncim area {args.block}` (the longest logic path inside one module, "
              f"{r['logic_ns']:.3f} ns in {r['critical_module']}, plus flip-flop clock-to-Q and setup)")
    return sdc.sdc_text(args.block, r["clock_ns"], source, prefix=args.prefix)


def _generate_core(args, cfg):
    from ..ip import fusesoc, generate
    from ..sim import verilator
    if args.out is not None:
        raise UserError("--out and --fusesoc cannot be used together: --fusesoc DIR names the files itself")
    if args.sdc is not None:
        raise UserError("--sdc goes with --out (the FuseSoC core carries no constraints yet); run generate "
                        "--out FILE.v --sdc beside it")
    folder = output_path("--fusesoc", args.fusesoc, folder=True)
    require_cache()
    try:
        text = generate.verilog_text(args.block, cfg, flat=args.flat, prefix=args.prefix)
        written = fusesoc.write_core(folder, args.block, cfg, text, verilator.waiver_text, args.prefix)
    except OSError as exc:
        raise write_error("--fusesoc", folder, exc) from None
    for path in written:
        print(path)
    print(f"fusesoc --cores-root {folder} run --target lint {fusesoc.core_name(args.block, args.prefix)}")
    return 0
