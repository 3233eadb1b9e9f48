"""Transistor estimates of the softmax unit: default config, each pattern-aware mechanism off, LUT sizes, lanes.

Run: ``.venv/bin/python bench/softmax_area.py [--rows N]`` (Yosys via pyosys,
``stat -tech cmos``; flip-flops are not in the transistor count, so their
number is printed beside it).
"""

from __future__ import annotations

import argparse
import sys

from fusioncim.config import PRESETS
from fusioncim.synth.area import estimate


def variants(base):
    return [
        ("default (all mechanisms on)", base),
        ("precision tiers off", base.replace(tiers=False)),
        ("skip threshold and key skipping off", base.replace(skip_threshold=None, key_skip=False)),
        ("lazy rescale, threshold 2", base.replace(lazy_threshold=2, op_bits_per_cycle=2)),
        ("fine LUT 8 entries", base.replace(fine_lut_bits=3, coarse_lut_bits=2)),
        ("fine LUT 128 entries", base.replace(fine_lut_bits=7)),
        ("coarse LUT 4 entries", base.replace(coarse_lut_bits=2)),
        (f"{max(1, base.rows // 4)} exponent lanes", base.replace(softmax_lanes=max(1, base.rows // 4))),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=PRESETS["default"].rows)
    args = ap.parse_args()
    base = PRESETS["default"].replace(rows=args.rows)
    print(f"softmax unit, default preset with rows={base.rows}, head_dim={base.head_dim}")
    print(f"{'variant':<38} {'transistors':>12} {'flip-flops':>10} {'vs default':>10} {'yosys s':>8}")
    ref = None
    for name, cfg in variants(base):
        r = estimate("softmax", cfg)
        ref = ref or r["transistors"]
        print(f"{name:<38} {r['transistors']:>11,}{'+' if r['lower_bound'] else ' '} {r['flip_flops']:>10,} "
              f"{r['transistors'] / ref:>10.2f} {r['seconds']:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
