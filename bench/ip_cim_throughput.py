"""Measured steady-state cycles per key of the generated IP-CIM Verilog, from cocotb simulation.

Runs the ``throughput`` test of ``fusioncim.tb.ip_cim_tests`` (keys back to
back, output always ready) for each config and prints the measured spacing of
consecutive outputs next to the configured ``data_bits / ip_bits_per_cycle``, and
"first out": cycles from presenting the first key to receiving its scores.

Run: ``.venv/bin/python bench/ip_cim_throughput.py [--sim verilator|icarus] [--keys N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from fusioncim import rtlsim
from fusioncim.config import EngineConfig

CONFIGS = [(1, 1, 8), (2, 4, 64), (4, 16, 128), (8, 4, 8), (1, 16, 64), (8, 1, 128)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", choices=rtlsim.SIMULATORS, default="verilator")
    ap.add_argument("--keys", type=int, default=200)
    args = ap.parse_args()
    print(f"{'bits/cycle':>10} {'rows':>5} {'head_dim':>8} {'configured':>10} {'measured':>9} {'first out':>9}  ({args.sim}, "
          f"{args.keys} keys back to back)")
    ok = True
    for bpc, rows, d in CONFIGS:
        cfg = EngineConfig(ip_bits_per_cycle=bpc, rows=rows, head_dim=d)
        with tempfile.TemporaryDirectory() as tmp:
            res = Path(tmp) / "throughput.json"
            total, failed, xml = rtlsim.run("ip_cim", cfg, args.sim, "fusioncim.tb.ip_cim_tests",
                                            testcase="throughput",
                                            extra_env={"FUSIONCIM_KEYS": str(args.keys), "FUSIONCIM_RESULTS": str(res)})
            r = json.loads(res.read_text())
        ok &= failed == 0 and r["cycles_per_key"] == cfg.ip_cycles_per_key
        print(f"{bpc:>10} {rows:>5} {d:>8} {cfg.ip_cycles_per_key:>10} {r['cycles_per_key']:>9.3f} "
              f"{r['first_output_cycle']:>9}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
