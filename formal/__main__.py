"""``python -m fusioncim.formal``: prove every property and show each one failing on its broken variant."""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from . import PROPERTIES, FormalToolError, check, config_of


def _row(prop, real, broken):
    verdict = "PROVEN" if prop.mode != "bmc" else "HOLDS"
    verdict = verdict if real.passed else "FAILED"
    caught = ("caught" + (f" at step {broken.failed_at}" if broken.failed_at is not None else "")
              if broken and not broken.passed else "NOT CAUGHT" if broken else "-")
    return verdict, caught


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fusioncim.formal", description=__doc__)
    ap.add_argument("--block", action="append", help="only this block (repeatable)")
    ap.add_argument("--only", action="append", help="only this property, BLOCK.NAME (repeatable)")
    ap.add_argument("--no-mutants", action="store_true", help="skip the broken variants")
    ap.add_argument("--jobs", type=int, default=2, help="SymbiYosys runs at once (default 2)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--quick", action="store_true", help="the regression's smaller configs (head_dim 1; "
                    "formal/configs.py quick) instead of the full ones")
    args = ap.parse_args(argv)
    props = [p for p in PROPERTIES if (not args.block or p.block in args.block)
             and (not args.only or p.key in args.only)]
    if not props:
        print("fusioncim formal: error: no property matches --block/--only", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"fusioncim formal: error: --jobs must be at least 1, not {args.jobs}", file=sys.stderr)
        return 2
    runs = [(p, False) for p in props] + ([] if args.no_mutants else [(p, True) for p in props])
    start = time.monotonic()
    done = {}
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(check, p, mutant=m, quick=args.quick): (p, m) for p, m in runs}
            for n, (key, fut) in enumerate(((futures[f], f) for f in futures), 1):
                res = fut.result()
                done[key] = res
                what = "broken variant" if key[1] else "property"
                print(f"[{n}/{len(runs)}] {key[0].key} ({what}): "
                      f"{'holds' if res.passed else 'fails'} in {res.seconds:.1f} s", file=sys.stderr, flush=True)
    except FormalToolError as e:
        print(f"fusioncim formal: error: {e}", file=sys.stderr)
        return 2
    print(f"{'property':<32} {'config':<34} {'result':<7} {'bound':<38} {'broken variant':<48} {'':<18}")
    ok = True
    records = []
    for p in props:
        real, broken = done[(p, False)], done.get((p, True))
        verdict, caught = _row(p, real, broken)
        ok &= real.passed and (broken is None or not broken.passed)
        cfg = config_of(p, quick=args.quick)
        cfg_text = (f"rows {cfg.rows}, d {cfg.head_dim}, {cfg.data_bits}-bit, {cfg.kv_keys} keys"
                    + (", Q preload" if cfg.q_double_buffer else ""))
        print(f"{p.key:<32} {cfg_text:<34} {verdict:<7} {p.bound:<38} {p.mutant_text:<48} {caught}")
        records.append({"property": p.key, "text": p.text, "mode": p.mode, "depth": p.depth, "bound": p.bound,
                        "holds": real.passed, "seconds": round(real.seconds, 2),
                        "config": cfg.to_dict(), "mutant": p.mutant_text,
                        "mutant_caught": None if broken is None else not broken.passed,
                        "mutant_step": None if broken is None else broken.failed_at})
    print(f"\n{sum(r['holds'] for r in records)} of {len(records)} properties hold"
          + ("" if args.no_mutants else
             f"; {sum(bool(r['mutant_caught']) for r in records)} of {len(records)} broken variants caught")
          + f" ({time.monotonic() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
