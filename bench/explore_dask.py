"""A sweep on 1 and on 2 Dask workers: wall time and speed-up (issue 21).

The same 8-point sweep with area (Yosys, blocks at head_dim 16) on the test preset, first on a Dask
LocalCluster of one worker process, then of two, each with a fresh, empty
cache folder (``FUSIONCIM_CACHE``) so the second run synthesises as much as the
first. The wall time is the whole ``explore.run``: starting the cluster, every
point (report, utilisation, accuracy, area) and the plots. It also checks the two
runs give the same figures. Two workers on a 2-core machine cannot give more than
2x.

Run: ``.venv/bin/python bench/explore_dask.py [--workload NAME]`` (needs the cluster extra).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fusioncim.perf import explore, report

SWEEP = {"rows": ["2", "4"], "tiers": ["true", "false"], "coarse_lut_bits": ["3", "4"]}      # 8 points


def one(workers, workload, tmp):
    cache = Path(tmp) / f"cache-{workers}"
    os.environ["FUSIONCIM_CACHE"] = str(cache)            # the workers inherit it
    t0 = time.perf_counter()
    records, summary = explore.run("test", SWEEP, Path(tmp) / f"out-{workers}", workload=workload,
                                   accuracy_file=report.REAL / "smollm2-L00-T256.npz", area=True,
                                   dask=f"local:{workers}", progress=True, area_head_dim=16)
    wall = time.perf_counter() - t0
    syn = sum(a["seconds"] for r in records for a in r.get("area", {}).values() if not a["cached"])
    return wall, syn, records, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="llama3-8b-prefill-2048",
                    help="workload of the energy figures (default llama3-8b-prefill-2048)")
    args = ap.parse_args()
    saved = os.environ.get("FUSIONCIM_CACHE")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            w1, s1, r1, sum1 = one(1, args.workload, tmp)
            w2, s2, r2, sum2 = one(2, args.workload, tmp)
    finally:
        if saved is None:
            os.environ.pop("FUSIONCIM_CACHE", None)
        else:
            os.environ["FUSIONCIM_CACHE"] = saved
    drop = ("seconds", "host", "area")
    same = all({k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
               and a.get("transistors") == b.get("transistors") for a, b in zip(r1, r2))
    print(f"sweep: {len(r1)} points ({' x '.join(f'{k}={len(v)}' for k, v in SWEEP.items())}) on the test preset "
          f"on {args.workload}, area at head_dim 16; fresh cache each run")
    print(f"1 worker : {w1:7.1f} s wall ({s1:.0f} s of synthesis); {sum1}")
    print(f"2 workers: {w2:7.1f} s wall ({s2:.0f} s of synthesis); {sum2}")
    print(f"speed-up : {w1 / w2:.2f}x (wall time of the whole sweep, cluster start and plots included); "
          f"same figures: {same}")


if __name__ == "__main__":
    main()
