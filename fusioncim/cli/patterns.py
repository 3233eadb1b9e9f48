"""``fusioncim patterns``: measure the softmax's data-dependent rates on attention files (the report's LLaMA-3 workloads use them at the same length)."""

from __future__ import annotations

from pathlib import Path

from ..core import configfile
from .common import UserError, progress, output_path, write_error, finish_parser


def register(sub):
    pt = sub.add_parser("patterns", help="measure the softmax's data-dependent rates on attention files "
                                         "(the report's LLaMA-3 workloads use them at the same length)")
    pt.add_argument("files", nargs="+", type=Path, metavar="FILE.npz")
    pt.add_argument("--out", type=Path, required=True, metavar="FILE.json",
                    help="the rates file to write (report --patterns and explore --patterns read it)")
    finish_parser(pt, run)


def run(args):
    from ..accuracy import attnfile
    from ..perf import report
    cfg = configfile.load(args.config, args.set)
    say = progress(args.quiet)
    lengths = {}
    for f in args.files:
        lengths[str(f)] = attnfile.load(f).k.shape[1]     # a bad file fails here, before anything is written
    if len(set(lengths.values())) != 1:
        raise UserError("the files must all have the same number of tokens; got "
                        + ", ".join(f"{k}: {v}" for k, v in lengths.items()))
    if args.out.suffix != ".json":
        raise UserError(f"--out must name a .json file, not {str(args.out)!r}")
    output_path("--out", args.out)
    tokens = next(iter(lengths.values()))
    say(f"measuring on {len(args.files)} file(s) of {tokens} tokens (golden model) ...")
    pats = report.measure(cfg, sorted(args.files))
    try:
        report.save_rates(args.out, cfg, sorted(args.files), pats, tokens)
    except OSError as exc:
        raise write_error("--out", args.out, exc) from None
    for mode, (p, q) in pats.items():
        print(f"{mode:<8} keys skipped {p.key_skip:.1%}; entries fine {p.fine:.1%}, coarse {p.coarse:.1%}, "
              f"skipped {p.skipped:.1%}; rescales per entry {p.rescale:.4f} (no pattern-aware softmax: {q.rescale:.4f})")
    print(args.out)
    return 0
