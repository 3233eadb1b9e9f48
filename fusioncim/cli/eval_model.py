"""``fusioncim eval-model``: a model's loss with every attention layer on the engine's numerics (needs `make models`)."""

from __future__ import annotations

import time
from pathlib import Path

from ..core import configfile
from .common import (add_model_arg, check_texts, check_per_key_config, UserError, progress, calibration_for,
                     finish_parser, add_front_end_args, print_json, quant_mode)


def register(sub):
    em = sub.add_parser("eval-model", help="a model's loss with every attention layer on the engine's numerics "
                                           "(needs `make models`)")
    add_model_arg(em)
    em.add_argument("--text", type=Path, action="append", metavar="FILE.txt",
                    help="text to evaluate (repeatable; default: the three in fusioncim/data/texts)")
    em.add_argument("--tokens", type=int, help="first tokens of each text (default: all, up to the model's limit)")
    em.add_argument("--json", action="store_true", help="print one JSON document: {source, texts, mean}")
    add_front_end_args(em, both=False)
    finish_parser(em, run)


def run(args):
    from ..accuracy import evalmodel
    cfg = configfile.load(args.config, args.set)
    say = progress(args.quiet)
    if args.tokens is not None and args.tokens < 2:
        raise UserError(f"--tokens must be at least 2 (one prediction needs two tokens), not {args.tokens}")
    quant = quant_mode(args, cfg, both=False)
    if args.calibration and quant == "dynamic":
        raise UserError("--calibration gives static scales and the per-key mode's K centre and V shape; it does "
                        "not apply with --quant dynamic")
    if quant == "per-key":
        check_per_key_config(cfg)
    cal = calibration_for(args.calibration, args.model, required=quant == "static") if quant != "dynamic" else None
    if cal is not None:
        cal.check(args.model, None, None, None, None)     # the model now; its shape once it is loaded
    texts = args.text or list(evalmodel.TEXTS)
    check_texts("--text", texts)
    t0 = time.perf_counter()
    records, source = evalmodel.evaluate(args.model, texts, cfg, tokens=args.tokens, quant_mode=quant,
                                         cal=cal, rotate=not args.no_rotate, v_anchor=args.v_anchor, quiet=args.quiet)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    if args.json:
        print_json({"source": source, "texts": records, "mean": evalmodel.summary(records)})
    else:
        print(evalmodel.format_table(records, source))
    return 0
