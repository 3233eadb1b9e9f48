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
    if args.fusesoc is not None:
        return _generate_core(args, cfg)
    out = output_path("--out", args.out or Path(f"{args.block}{'-flat' if args.flat else ''}.v"))
    require_cache()
    vlt = out.with_suffix(".vlt")
    if vlt == out:
        raise UserError(f"--out {str(out)!r}: the Verilog file cannot end in .vlt (the waiver file's name)")
    try:
        generate.write_verilog(args.block, cfg, out, flat=args.flat, prefix=args.prefix)
        # Beside the Verilog: its Verilator waivers, scoped to it, so `verilator --lint-only -Wall X.v X.vlt`
        # is clean and waives nothing in other files.
        atomic_write(vlt, lambda f: f.write(verilator.waiver_text(out.name)))
    except OSError as exc:
        out.unlink(missing_ok=True)
        raise write_error("--out", out, exc) from None
    print(out)
    print(vlt)
    return 0


def _generate_core(args, cfg):
    from ..ip import fusesoc, generate
    from ..sim import verilator
    if args.out is not None:
        raise UserError("--out and --fusesoc cannot be used together: --fusesoc DIR names the files itself")
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
