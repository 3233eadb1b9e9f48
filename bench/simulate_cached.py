"""Wall time of a cached ``fusioncim simulate`` of the demo workload, and what it spends it on.

Runs ``fusioncim simulate --npz fusioncim/data/real/smollm2-L12-T256.npz --heads 0,1``
(the demo's workload on the default engine) ``--repeat`` times after one
warm-up run that builds the model (not timed). Each timed run is a fresh
process, as a user's command is: interpreter start, imports, loading and
quantising the data, the golden model, the Verilog (generated or read from
its cache), the build check, the cocotb simulation and the comparison. The
figure printed beside it, ``sim_seconds``, is what the command itself reports
as simulation time.

Run: ``.venv/bin/python bench/simulate_cached.py [--repeat 3] [--python PY]``;
``--python`` runs another checkout's interpreter (a before/after ratio is
measured by running both in one shell command, one after the other).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(python, cwd, npz):
    cmd = [python, "-m", "fusioncim", "simulate", "--npz", npz, "--heads", "0,1", "--json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"simulate failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout)
    return wall, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="interpreter of the checkout to measure")
    ap.add_argument("--cwd", default=str(ROOT), help="checkout to run in")
    ap.add_argument("--npz", help="the workload's file, relative to --cwd (default: the demo's, "
                    "fusioncim/data/real/smollm2-L12-T256.npz, or data/real/... in a checkout from before it moved)")
    args = ap.parse_args()
    npz = args.npz or next((p for p in ("fusioncim/data/real/smollm2-L12-T256.npz", "data/real/smollm2-L12-T256.npz")
                            if (Path(args.cwd) / p).exists()), "fusioncim/data/real/smollm2-L12-T256.npz")
    print(f"warm-up (builds the model if needed) in {args.cwd} ...", flush=True)
    wall, r = run_once(args.python, args.cwd, npz)
    print(f"  warm-up {wall:.1f} s, bit_exact {r['bit_exact']}, {r['cycles']} cycles", flush=True)
    walls, sims = [], []
    for i in range(args.repeat):
        wall, r = run_once(args.python, args.cwd, npz)
        walls.append(wall)
        sims.append(r["sim_seconds"])
        print(f"  run {i + 1}: wall {wall:.1f} s, sim_seconds reported {r['sim_seconds']:.1f} s", flush=True)
    print(f"cached simulate of the demo workload ({r['cycles']} cycles): wall median {statistics.median(walls):.1f} s, "
          f"sim_seconds median {statistics.median(sims):.1f} s, over {args.repeat} runs")


if __name__ == "__main__":
    main()
