"""Why the exponent unit rounds the way it does: accuracy of two rejected variants.

Compares, on attention files, the contract's exponent (LUT entries at the mean
of their bins, round-half-up right shift; docs/numerics.md section 4) with
(a) LUT entries at the left edge of their bins and (b) a truncating shift.
The variants are made by swapping the golden model's LUT and exponent
functions inside this process only.

Run: ``.venv/bin/python bench/numerics_variants.py [FILE.npz ...]``
(default: the files in fusioncim/data/real; ``make real-data`` gives every layer).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from fusioncim.core.files import data_path
from fusioncim.accuracy import heads as accuracy, attnfile
from fusioncim.core import lut
from fusioncim.core.config import PRESETS
from fusioncim.golden import softmax

CONTRACT_LUT = lut.lut
CONTRACT_EXP = softmax.exp2_neg_direct


@lru_cache(maxsize=64)
def edge_lut(prob_bits, frac_bits, index_bits):
    i = np.arange(1 << index_bits) / (1 << index_bits)
    return np.floor(((1 << prob_bits) - 1) * np.exp2(-i) + 0.5).astype(np.int64)


def truncating_exp(d, cfg):
    # As the contract, but p = LUT >> n truncates instead of rounding.
    p, tier = CONTRACT_EXP(d, cfg)
    fine, coarse = softmax.luts(cfg)
    F = cfg.log_frac_bits
    d = np.asarray(d, np.int64)
    n = np.clip(d >> F, 0, cfg.prob_bits + 1)
    f = d & ((1 << F) - 1)
    base = np.where(tier == softmax.COARSE, coarse[f >> (F - cfg.coarse_lut_bits)], fine[f >> (F - cfg.fine_lut_bits)])
    return np.where((tier == softmax.SKIPPED) | (d < 0), p, base >> n), tier


def measure(files, label):
    softmax._exp2_table.cache_clear()
    records = []
    for f in files:
        records += accuracy.evaluate(attnfile.load(f), PRESETS["default"], name=str(f))
    s = accuracy.summarise(records)
    add = s["rel_l2"]["median"] - s["rel_l2_exact_softmax"]["median"]
    print(f"  {label:<34} median {100 * s['rel_l2']['median']:.2f}%  max {100 * s['rel_l2']['max']:.2f}%  "
          f"softmax numerics add {100 * add:+.2f} points")


def main():
    files = [Path(a) for a in sys.argv[1:]] or sorted(data_path("real").glob("*.npz"))
    for model in sorted({f.name.split("-")[0] for f in files}):
        group = [f for f in files if f.name.startswith(model + "-")]
        print(f"{model}: {len(group)} file(s), default config")
        measure(group, "contract (bin mean, round half up)")
        lut.lut = edge_lut
        measure(group, "LUT entries at bin edge")
        lut.lut = CONTRACT_LUT
        softmax.exp2_neg_direct = truncating_exp
        measure(group, "truncating shift")
        softmax.exp2_neg_direct = CONTRACT_EXP


if __name__ == "__main__":
    main()
