"""``fusioncim regmap``: the AXI top's register map (generate engine --bus axi): a table, or SystemRDL, a C header and HTML docs made from it with PeakRDL."""

from __future__ import annotations

from pathlib import Path

from ..core import configfile
from .common import UserError, output_path, finish_parser


def register(sub):
    rm = sub.add_parser("regmap", help="the AXI top's register map (generate engine --bus axi): a table, or "
                                       "SystemRDL, a C header and HTML docs made from it with PeakRDL")
    rm.add_argument("--rdl", type=Path, metavar="FILE.rdl", help="write the SystemRDL description")
    rm.add_argument("--c", type=Path, metavar="FILE.h", help="write a C header (peakrdl-cheader)")
    rm.add_argument("--html", type=Path, metavar="DIR", help="write HTML register docs into DIR (peakrdl-html)")
    rm.add_argument("--prefix", default="", metavar="P", help="name the map P + fusioncim_engine, so the C struct "
                    "and macros start with it (as `generate --prefix` does the modules); default none")
    finish_parser(rm, run)


def run(args):
    from ..hw import regmap
    cfg = configfile.load(args.config, args.set)
    cfg.check_engine()
    from ..ip.generate import check_prefix
    check_prefix(args.prefix)
    outputs = {"--rdl": args.rdl, "--c": args.c, "--html": args.html}
    for option, path in outputs.items():
        if path is not None:
            output_path(option, path, folder=option == "--html")
    if not any(outputs.values()):
        print(regmap.markdown(cfg), end="")
        return 0
    try:
        written = regmap.write_outputs(cfg, rdl_path=args.rdl, c_path=args.c, html_dir=args.html,
                                       prefix=args.prefix)
    except OSError as exc:
        raise UserError(f"the register map outputs cannot be written ({exc.strerror or exc})") from None
    for path in written:
        print(path)
    return 0
