"""Command line: ``fusioncim COMMAND ...`` (also ``python -m fusioncim``).

User errors (bad config, bad file, bad arguments) print one line
``fusioncim: error: ...`` on stderr and exit with status 2; nothing is
written to stdout or to output files in that case.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from . import config as config_mod
from .attnfile import AttnFileError

EXIT_USAGE = 2


class UserError(Exception):
    """An error the user can fix; reported in one line, exit status 2."""


def _progress(quiet):
    def say(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)
    return say


# -- accuracy --------------------------------------------------------------

def cmd_accuracy(args):
    from . import accuracy, attnfile
    cfg = config_mod.load(args.config, args.set)
    say = _progress(args.quiet)
    # Read and validate every file before computing or printing anything.
    atts = [(str(p), attnfile.load(p)) for p in args.files]
    records = []
    t0 = time.perf_counter()
    for i, (name, att) in enumerate(atts, 1):
        say(f"[{i}/{len(atts)}] {name}: {att.heads} heads, {att.k.shape[1]} keys, d={att.head_dim}")
        records += accuracy.evaluate(att, cfg, name=name, rotate=not args.no_rotate, v_anchor=args.v_anchor)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    summary = accuracy.summarise(records)
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        return 0
    if not args.summary:
        print(accuracy.format_table(records))
        print()
    print(accuracy.format_summary(summary, label=f"{len(atts)} file(s), "))
    return 0


# -- extract ---------------------------------------------------------------

def cmd_extract(args):
    from . import extract
    say = _progress(args.quiet)
    layers = None
    if args.layers:
        try:
            layers = [int(x) for x in args.layers.split(",")]
        except ValueError:
            raise UserError(f"--layers must be comma-separated integers, not {args.layers!r}") from None
    if args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    try:
        paths = extract.extract(args.model, args.out, tokens=args.tokens, layers=layers, progress=say,
                                dtype=np.dtype(args.dtype))
    except extract.ExtractError as exc:
        raise UserError(str(exc)) from None
    for p in paths:
        print(p)
    return 0


# -- config ----------------------------------------------------------------

DERIVED = ("score_bits", "x_bits", "prob_max", "p_bits", "acc_width", "sum_width", "out_bits",
           "ip_cycles_per_key", "op_cycles_per_key", "div_cycles", "softmax_latency")


def cmd_config(args):
    cfg = config_mod.load(args.config, args.set)
    doc = {"fields": cfg.to_dict(), "derived": {k: getattr(cfg, k) for k in DERIVED}}
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        for section, items in doc.items():
            print(f"[{section}]")
            for k, v in items.items():
                # TOML has no null: an unset width is derived, shown as a comment.
                print(f"# {k}: derived" if v is None else f"{k} = {json.dumps(v)}")
    return 0


# -- generate --------------------------------------------------------------

def cmd_generate(args):
    from . import generate
    cfg = config_mod.load(args.config, args.set)
    out = args.out or Path(f"{args.block}.v")
    generate.write_verilog(args.block, cfg, out)
    print(out)
    return 0


# -- demo ------------------------------------------------------------------

def cmd_demo(args):
    from . import demo
    return demo.main(quiet=args.quiet)


def build_parser():
    p = argparse.ArgumentParser(prog="fusioncim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fusioncim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, config=True):
        if config:
            sp.add_argument("--config", metavar="PRESET|FILE.toml",
                            help=f"engine config: a preset ({', '.join(config_mod.PRESETS)}) or a TOML file "
                                 f"(default: the default preset)")
            sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override one config field (repeatable), e.g. --set prob_bits=8")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    a = sub.add_parser("accuracy", help="engine numerics vs float64 on attention .npz files")
    a.add_argument("files", nargs="+", metavar="FILE.npz")
    a.add_argument("--json", action="store_true", help="print one JSON document (a list of per-head records)")
    a.add_argument("--summary", action="store_true", help="print the summary only, not every head")
    a.add_argument("--no-rotate", action="store_true", help="quantise without the Hadamard rotation of Q and K")
    a.add_argument("--v-anchor", choices=("sink", "mean"), default="sink", help="V per-channel offset")
    common(a)
    a.set_defaults(func=cmd_accuracy)

    e = sub.add_parser("extract", help="attention .npz files from a pretrained model (needs `make models`)")
    e.add_argument("model", choices=("smollm2", "minilm"))
    e.add_argument("--out", required=True, type=Path, help="output folder")
    e.add_argument("--tokens", type=int, default=256, help="sequence length (default 256)")
    e.add_argument("--layers", help="comma-separated layer numbers (default: all)")
    e.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    common(e, config=False)
    e.set_defaults(func=cmd_extract)

    c = sub.add_parser("config", help="show a config with its derived widths")
    c.add_argument("--json", action="store_true")
    common(c)
    c.set_defaults(func=cmd_config)

    from .generate import BLOCKS
    g = sub.add_parser("generate", help="write the Verilog of one block for a config")
    g.add_argument("block", choices=sorted(BLOCKS))
    g.add_argument("--out", type=Path, help="output file (default: BLOCK.v in the current folder)")
    common(g)
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("demo", help="the main job: golden-model accuracy and activity summary")
    common(d, config=False)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, config_mod.ConfigError, AttnFileError) as exc:
        print(f"fusioncim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        # Validation errors raised by the models on the user's data.
        print(f"fusioncim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("fusioncim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
