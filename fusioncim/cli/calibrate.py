"""``fusioncim calibrate``: static K/V scales of a model from a calibration text (needs `make models`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_model_arg, check_texts, UserError, progress, output_path, finish_parser


def register(sub):
    from ..accuracy.calibration import HEADROOM
    cb = sub.add_parser("calibrate", help="static K/V scales of a model from a calibration text (needs `make models`)")
    add_model_arg(cb)
    cb.add_argument("--text", type=Path, action="append", required=True, metavar="FILE.txt",
                    help="calibration text (repeatable); use other text than you evaluate")
    cb.add_argument("--tokens", type=int, default=4096, help="first tokens of each text (default 4096)")
    cb.add_argument("--window", type=int, default=512,
                    help="tokens per calibration sequence, each from position 0 (default 512: cover the lengths you evaluate)")
    cb.add_argument("--headroom", type=float, default=HEADROOM,
                    help=f"widen every calibrated range by this factor when it is used (default {HEADROOM})")
    cb.add_argument("--out", required=True, type=Path, help="calibration file to write (.npz)")
    finish_parser(cb, run, config=False)


def run(args):
    from ..accuracy import calibration
    say = progress(args.quiet)
    if args.tokens < 1:
        raise UserError(f"--tokens must be a positive integer, not {args.tokens}")
    if args.window < 2:
        raise UserError(f"--window must be at least 2 tokens, not {args.window}")
    calibration.check_headroom(args.headroom)
    check_texts("--text", args.text)
    output_path("--out", args.out)
    t0 = time.perf_counter()

    def windows(i, n):
        if not args.quiet:
            print(f"\r{args.model}: window {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
    cal = calibration.calibrate(args.model, args.text, tokens=args.tokens, window=args.window,
                                headroom=args.headroom, progress=windows, quiet=args.quiet)
    calibration.save(args.out, cal)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    print(f"{args.out}: {args.model}, {len(cal.layers)} layers, {cal.heads} query heads, {cal.kv_heads} KV heads, "
          f"head_dim {cal.head_dim}; calibrated on {cal.tokens:,} tokens ({cal.source}); headroom {cal.headroom}")
    if cal.tokens < calibration.MIN_TOKENS:
        print(f"fusioncim: warning: only {cal.tokens:,} calibration tokens; below {calibration.MIN_TOKENS:,} the "
              f"held-out error rises (SmolLM2's median 1.86% at 512 tokens against 1.61% at 2,739) and 15-40x "
              f"more K and V values clip: calibrate on more text (docs/accuracy.md, bench/calibration_tokens.py)",
              file=sys.stderr)
    return 0
