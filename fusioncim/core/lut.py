"""The exponent LUTs of the softmax unit: their contents and the rule a config must meet for them.

One home for both: ``fusioncim.core.config`` validates ``prob_bits`` with
:func:`distinct_entries_need`, ``golden.softmax`` computes with :func:`luts`,
and ``hw/softmax.py`` fills its ROMs from :func:`luts`. Contents:
docs/numerics.md section 4.

Entry i of a ``2**b``-entry LUT over ``F`` fraction bits is the mean of a
geometric series: ``pmax r**(n i) (1 - r**n) / (n (1 - r))`` with
``r = 2**-(1/2**F)`` and ``n = 2**(F - b)`` fractions a bin, rounded. For
``pmax = 255``, ``F = 8``, ``b = 2``: 234.45, 197.14, 165.78, 139.40:

>>> lut(8, 8, 2).tolist()
[234, 197, 166, 139]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import InputError

__all__ = ["lut", "luts", "distinct_entries_need", "check_luts"]


@lru_cache(maxsize=64)
def lut(prob_bits: int, frac_bits: int, index_bits: int) -> np.ndarray:
    """``2**index_bits`` entries; entry i serves every ``frac_bits``-bit fraction whose top bits are i.

    It holds the mean of 2**-f over exactly those fractions, rounded to
    ``prob_bits`` (p = 1 is ``2**prob_bits - 1``), so the LUT is unbiased for
    uniformly spread fractions. Read-only int64.
    """
    pmax = (1 << prob_bits) - 1
    per_bin = 1 << (frac_bits - index_bits)
    f = np.arange(1 << frac_bits, dtype=np.float64) / (1 << frac_bits)
    mean = np.exp2(-f).reshape(1 << index_bits, per_bin).mean(axis=1)
    table = np.floor(pmax * mean + 0.5).astype(np.int64)
    table.setflags(write=False)
    return table


def luts(cfg):
    """The fine and coarse exponent LUTs ``(fine, coarse)`` of a config."""
    return (lut(cfg.prob_bits, cfg.log_frac_bits, cfg.fine_lut_bits),
            lut(cfg.prob_bits, cfg.log_frac_bits, cfg.coarse_lut_bits))


def _distinct(table):
    return len(table) < 2 or bool((table[1:] < table[:-1]).all())


def distinct_entries_need(prob_bits: int, frac_bits: int, index_bits: int) -> int | None:
    """None if the LUT's neighbouring entries all differ at ``prob_bits``; else the least width at which they do.

    Equal neighbours mean the LUT has fewer distinct values than entries: the
    probability width is too small for it.
    """
    if _distinct(lut(prob_bits, frac_bits, index_bits)):
        return None
    return next(pb for pb in range(prob_bits + 1, 40) if _distinct(lut(pb, frac_bits, index_bits)))


def check_luts(cfg):
    """Raise ValueError unless ``prob_bits`` tells every neighbouring entry of both LUTs apart."""
    for name, bits in (("fine", cfg.fine_lut_bits), ("coarse", cfg.coarse_lut_bits)):
        need = distinct_entries_need(cfg.prob_bits, cfg.log_frac_bits, bits)
        if need is not None:
            raise InputError(
                f"prob_bits {cfg.prob_bits} cannot represent the {1 << bits}-entry {name} LUT "
                f"(neighbouring entries are equal); needs prob_bits >= {need}")
