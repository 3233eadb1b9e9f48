"""Transistor estimates of the IP-CIM macro across configs (Yosys via pyosys, ``stat -tech cmos``).

Run: ``.venv/bin/python bench/ip_cim_area.py [--quick]``. The count excludes
flip-flops (Yosys has no CMOS model for them; it marks the figure with "+"),
so the flip-flop count is printed beside it.
"""

from __future__ import annotations

import argparse
import sys

from fusioncim.config import EngineConfig
from fusioncim.synth.area import estimate

SWEEP = [(bpc, 4, 64) for bpc in (1, 2, 4, 8)] + [(2, 1, 64), (2, 16, 64), (2, 4, 8), (2, 4, 128)]
QUICK = [(bpc, 2, 8) for bpc in (1, 2, 4, 8)] + [(2, 1, 8), (2, 4, 8)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small configs only (seconds)")
    args = ap.parse_args()
    print(f"{'bits/cycle':>10} {'rows':>5} {'head_dim':>8} {'transistors':>12} {'flip-flops':>10} "
          f"{'per row x d':>11} {'yosys s':>8}")
    for bpc, rows, d in (QUICK if args.quick else SWEEP):
        cfg = EngineConfig(ip_bits_per_cycle=bpc, rows=rows, head_dim=d)
        r = estimate("ip_cim", cfg)
        print(f"{bpc:>10} {rows:>5} {d:>8} {r['transistors']:>11,}{'+' if r['lower_bound'] else ' '} "
              f"{r['flip_flops']:>10,} {r['transistors'] / (rows * d):>11.0f} {r['seconds']:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
