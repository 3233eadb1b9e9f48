"""Measured steady-state cycles per key of a generated block, from cocotb simulation.

Runs the ``throughput`` test of the block's cocotb module (keys back to back,
output always ready) for each config of the block's sweep and prints the
measured figure next to the configured one.

Run: ``.venv/bin/python bench/throughput.py ip_cim|op_cim [--sim verilator|icarus] [--keys N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from fusioncim.sim import rtlsim
from fusioncim.core.config import EngineConfig

# (label, config, configured cycles per key)
SWEEPS = {
    "ip_cim": [(f"bits/cycle {b}, rows {r}, d {d}", EngineConfig(ip_bits_per_cycle=b, rows=r, head_dim=d))
               for b, r, d in [(1, 1, 8), (2, 4, 64), (4, 16, 128), (8, 4, 8), (1, 16, 64), (8, 1, 128)]],
    "op_cim": [(f"bits/cycle {b}, rows {r}, d {d}", EngineConfig(op_bits_per_cycle=b, rows=r, head_dim=d,
                                                                  max_seq_len=64))
               for b, r, d in [(1, 1, 8), (4, 4, 64), (12, 16, 8), (3, 4, 128), (6, 16, 64)]],
}
CONFIGURED = {"ip_cim": lambda c: c.ip_cycles_per_key, "op_cim": lambda c: c.op_cycles_per_key}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("block", choices=sorted(SWEEPS))
    ap.add_argument("--sim", choices=rtlsim.SIMULATORS, default="verilator")
    ap.add_argument("--keys", type=int, default=200)
    args = ap.parse_args()
    print(f"{args.block}: {args.keys} keys back to back on {args.sim}")
    print(f"{'config':<32} {'configured':>10} {'measured':>9} {'extra':>24}")
    ok = True
    for label, cfg in SWEEPS[args.block]:
        with tempfile.TemporaryDirectory() as tmp:
            res = Path(tmp) / "throughput.json"
            _, failed, _ = rtlsim.run(args.block, cfg, args.sim, f"fusioncim.tb.{args.block}_tests",
                                      testcase="throughput",
                                      extra_env={"FUSIONCIM_KEYS": str(args.keys), "FUSIONCIM_RESULTS": str(res)})
            r = json.loads(res.read_text())
        want = CONFIGURED[args.block](cfg)
        ok &= failed == 0 and r["cycles_per_key"] == want
        extra = (f"first out after {r['first_output_cycle']}" if "first_output_cycle" in r
                 else f"{r['with_rescale']:.3f} with a rescale")
        print(f"{label:<32} {want:>10} {r['cycles_per_key']:>9.3f} {extra:>24}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
