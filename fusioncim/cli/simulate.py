"""``fusioncim simulate``: run attention heads on the generated engine (Verilator or Icarus), bit-exact check against golden, cycles and counters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core import configfile
from .common import UserError, progress, output_path, int_list, check_head_dim, finish_parser, print_json


def register(sub):
    from ..sim.workload import RANDOM_DEFAULTS
    s = sub.add_parser("simulate", help="run attention heads on the generated engine (Verilator or Icarus), bit-exact "
                                        "check against golden, cycles and counters")
    s.add_argument("--npz", type=Path, metavar="FILE.npz", help="real attention (accuracy file format); "
                   "default: random data")
    s.add_argument("--heads", help=f"query heads: a count for random data (default {RANDOM_DEFAULTS['heads']}), or comma-separated "
                   "head numbers of the file (default 0,1)")
    s.add_argument("--tokens", type=int, help="keep the first N tokens of the --npz file (default: all)")
    s.add_argument("--kv-heads", type=int, help=f"KV heads of random data (default {RANDOM_DEFAULTS['kv_heads']})")
    s.add_argument("--queries", type=int, help=f"query tokens of random data (default {RANDOM_DEFAULTS['queries']})")
    s.add_argument("--keys", type=int, help="key tokens of random data (default: --queries)")
    s.add_argument("--mode", choices=("prefill", "decode"), default="prefill",
                   help="how query rows form tiles (decode: the GQA group's heads at --positions positions)")
    s.add_argument("--positions", type=int, metavar="P", default=None,
                   help="decode: query positions per tile, each row masked by its own position (multi-token "
                        "decode, speculative verification); P x the GQA group must fit rows (default 1)")
    s.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                   help="causal masking (default: the file's, else the config's)")
    s.add_argument("--seed", type=int, default=1, help="random data and stall pattern seed (default 1)")
    s.add_argument("--stall", type=float, default=0.0,
                   help="probability that each external stream stalls in a cycle (default 0)")
    s.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                   help="the simulator (default verilator)")
    s.add_argument("--path", choices=("auto", "cocotb", "native"), default="auto",
                   help="cocotb drives the model cycle by cycle from Python; native runs a C++ harness on a "
                        "Verilator model (no Python per cycle, about 10x faster, built at -O2 once). auto: native "
                        "for workloads over 200,000 cycles on Verilator without --waves (default)")
    s.add_argument("--waves", type=Path, metavar="FILE", help="write a trace: a .vcd file with Verilator, a .fst file with Icarus (its folder must exist)")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    finish_parser(s, run)


def run(args):
    from ..sim import simulate, workload
    cfg = configfile.load(args.config, args.set)
    say = progress(args.quiet)
    if not 0 <= args.stall < 1:
        raise UserError(f"--stall must be a probability in [0, 1), not {args.stall}")
    if args.path == "native" and (args.sim != "verilator" or args.waves is not None):
        raise UserError("--path native runs Verilator without a trace: it takes neither --sim icarus nor --waves")
    if args.waves is not None:
        # Each simulator writes one format: Verilator VCD, Icarus FST (cocotb's runner); the suffix must say it.
        suffix = {"verilator": ".vcd", "icarus": ".fst"}[args.sim]
        if args.waves.suffix != suffix:
            raise UserError(f"--waves {str(args.waves)!r}: {args.sim} writes {suffix[1:].upper()} traces; name a "
                            f"{suffix} file (Verilator writes .vcd, Icarus .fst)")
        output_path("--waves", args.waves)
    if args.npz:
        # A bad file fails in simulate(), before anything is built.
        for name in ("queries", "keys", "kv_heads"):
            if getattr(args, name) is not None:
                raise UserError(f"--{name.replace('_', '-')} sets random data; with --npz the file gives them "
                                f"(--tokens keeps its first N tokens, --heads picks its heads)")
        check_head_dim(args.set, args.npz)
        spec = dict(kind="npz", path=str(args.npz.resolve()), heads=int_list("--heads", args.heads or "0,1"),
                    tokens=args.tokens)
    else:
        if args.heads is not None and not args.heads.strip().lstrip("-").isdigit():
            raise UserError(f"--heads must be a positive integer for random data, not {args.heads!r}")
        # Left out, each takes its default (workload.RANDOM_DEFAULTS; keys: the queries).
        spec = dict(kind="random", heads=None if args.heads is None else int(args.heads), kv_heads=args.kv_heads,
                    queries=args.queries, keys=args.keys, seed=args.seed)
        spec = {k: (v if v is not None else workload.Spec(kind="random").value(k)) for k, v in spec.items()}
        spec["keys"] = args.keys if args.keys is not None else spec["queries"]
    # The spec checks itself (a rule broken names the option's field and the numbers).
    spec = workload.Spec(**spec, mode=args.mode, positions=args.positions, causal=args.causal,
                         stall=args.stall or None)
    try:
        r = simulate.simulate(cfg, spec, sim=args.sim, waves=args.waves, progress=say, seed=args.seed, path=args.path)
    except RuntimeError as exc:
        print(f"fusioncim: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(r)
    else:
        print(simulate.format_result(r))
    return 0 if r["bit_exact"] else 1
