"""``fusioncim extract``: attention .npz files from a pretrained model (needs `make models`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import add_model_arg, UserError, progress, output_path, finish_parser


def register(sub):
    e = sub.add_parser("extract", help="attention .npz files from a pretrained model (needs `make models`)")
    add_model_arg(e)
    e.add_argument("--out", required=True, type=Path, help="output folder")
    e.add_argument("--tokens", type=int, default=256, help="sequence length (default 256)")
    e.add_argument("--layers", help="comma-separated layer numbers (default: all)")
    e.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="how the tensors are stored (default float32; float16 halves the files)")
    e.add_argument("--text", type=Path, metavar="FILE.txt",
                   help="input text (default: fusioncim/data/passage.txt, about 500 tokens; "
                        "fusioncim/data/long.txt, this project's docs, more than 8,192)")
    finish_parser(e, run, config=False)


def run(args):
    from ..accuracy import extract
    say = progress(args.quiet)
    layers = None
    if args.layers:
        try:
            layers = [int(x) for x in args.layers.split(",")]
        except ValueError:
            raise UserError(f"--layers must be comma-separated integers, not {args.layers!r}") from None
    if args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    output_path("--out", args.out, folder=True)
    paths = extract.extract(args.model, args.out, tokens=args.tokens, layers=layers, progress=say, text=args.text,
                            dtype=np.dtype(args.dtype))
    for p in paths:
        print(p)
    return 0
