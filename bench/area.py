"""Transistor estimates of a generated block across configs (Yosys via pyosys, ``stat -tech cmos``).

Run: ``.venv/bin/python bench/area.py ip_cim|softmax|op_cim|engine [--quick]``.
Yosys has no CMOS model for flip-flops, so the transistor count excludes them
(it prints "+"); the flip-flop count is printed beside it.
"""

from __future__ import annotations

import argparse
import sys

from fusioncim.core.config import PRESETS, EngineConfig
from fusioncim.synth.area import estimate


def _grid(field, points):
    return [(f"bits/cycle {b:>2}, rows {r:>2}, d {d:>3}", EngineConfig(**{field: b}, rows=r, head_dim=d))
            for b, r, d in points]


def _softmax_variants(base):
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


SWEEPS = {
    "ip_cim": (_grid("ip_bits_per_cycle", [(b, 4, 64) for b in (1, 2, 4, 8)]
                     + [(2, 1, 64), (2, 16, 64), (2, 4, 8), (2, 4, 128)]),
               _grid("ip_bits_per_cycle", [(b, 2, 8) for b in (1, 2, 4, 8)] + [(2, 1, 8), (2, 4, 8)])),
    # head_dim 16 keeps the sweep to minutes: the per-column dividers make the
    # OP-CIM the slowest block to synthesise (4 x 64 takes Yosys over two minutes).
    "op_cim": (_grid("op_bits_per_cycle", [(b, 4, 16) for b in (1, 3, 6, 12)]
                     + [(4, 1, 16), (4, 16, 16), (4, 4, 8), (4, 4, 64)]),
               _grid("op_bits_per_cycle", [(b, 2, 8) for b in (1, 4, 12)] + [(4, 1, 8)])),
    # The whole engine; the KV buffer is SRAM, reported in bits, not in the transistor count.
    # The default takes Yosys about a minute on the hierarchical netlist (bench/build_speed.py); the
    # double-buffering cost is shown on the test preset, where both variants take seconds.
    "engine": ([("default (16 x 64, double buffer)", PRESETS["default"])],
               [("test preset (4 x 16, double buffer)", PRESETS["test"]),
                ("test preset, single buffer", PRESETS["test"].replace(double_buffer=False))]),
    "softmax": (_softmax_variants(PRESETS["default"]),
                _softmax_variants(PRESETS["default"].replace(rows=4, head_dim=16))),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("block", choices=sorted(SWEEPS))
    ap.add_argument("--quick", action="store_true", help="small configs only (seconds each)")
    args = ap.parse_args()
    full, quick = SWEEPS[args.block]
    print(f"{args.block}: transistors without flip-flops, flip-flops, ratio to the first row, Yosys seconds")
    ref = None
    for label, cfg in (quick if args.quick else full):
        r = estimate(args.block, cfg)
        ref = ref or r["transistors"]
        sram = f"   + SRAM {r['sram_bits']:,} bits" if r["sram_bits"] else ""
        print(f"{label:<38} {r['transistors']:>11,}{'+' if r['lower_bound'] else ' '} {r['flip_flops']:>8,} "
              f"{r['transistors'] / ref:>6.2f} {r['seconds']:>7.1f}{sram}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
