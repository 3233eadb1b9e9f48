"""Golden model of the inner-product CIM macro (QK^T), docs/numerics.md §2.

The macro stores ``rows`` Q vectors; a key enters as bit-planes, most
significant group first, ``bits_per_cycle`` bits a cycle. Each cycle every row
sums (adder tree) the products of its Q elements with the key's current digit
and the shift-accumulator does ``acc = acc * 2**bits_per_cycle + partial``.
The top digit is signed (two's complement), the others unsigned, so the final
accumulator is exactly ``q . k``.

>>> import numpy as np
>>> q = np.array([[1, -2]]); k = np.array([[-128, 3]])
>>> scores(q, k).tolist()
[[-134]]
>>> digits(np.array([-128, 3]), 8, 4).tolist()   # MSB group first
[[-8, 0], [0, 3]]
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError

__all__ = ["scores", "digits", "bitserial", "check_range"]


def check_range(name, a, data_bits):
    """Raise ValueError unless ``a`` is integer and fits ``data_bits`` signed."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        raise InputError(f"{name} holds values outside the {data_bits}-bit signed range [{lo}, {hi}]")
    return a.astype(np.int64, copy=False)


def scores(q, k):
    """Exact integer scores ``q @ k.T`` for int8-like data, shape ``[..., R, N]``.

    Uses a BLAS float matmul where every partial sum is provably exact (all are
    integers below 2**24 for float32, 2**53 for float64, so the result is an
    integer with no rounding to do), integer matmul otherwise.
    """
    q = np.asarray(q, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    d = q.shape[-1]
    qmax = int(np.abs(q).max(initial=0))
    kmax = int(np.abs(k).max(initial=0))
    bound = d * qmax * kmax
    kt = np.swapaxes(k, -1, -2)
    if bound >= (1 << 53):
        return q @ kt
    ftype = np.float32 if bound < (1 << 24) else np.float64
    if k.ndim == 2:
        # One 2-D product for every row of q (BLAS is fastest at that form; a stacked one is not).
        s = q.reshape(-1, d).astype(ftype) @ kt.astype(ftype)
        return s.reshape(*q.shape[:-1], k.shape[0]).astype(np.int64)
    return (q.astype(ftype) @ kt.astype(ftype)).astype(np.int64)


def digits(k, data_bits, bits_per_cycle):
    """Split two's-complement ``k`` into ``data_bits // bits_per_cycle`` digits, MSB first.

    Returns ``[G, *k.shape]``; the first digit is signed, the rest unsigned, and
    ``k == sum(digit[g] << (bits_per_cycle * (G - 1 - g)))``.
    """
    k = np.asarray(k, dtype=np.int64)
    groups = data_bits // bits_per_cycle
    ku = k & ((1 << data_bits) - 1)
    mask = (1 << bits_per_cycle) - 1
    out = np.stack([(ku >> (bits_per_cycle * (groups - 1 - g))) & mask for g in range(groups)])
    top = out[0]
    out[0] = np.where(top >> (bits_per_cycle - 1), top - (1 << bits_per_cycle), top)
    return out


def bitserial(q, k, data_bits, bits_per_cycle):
    """The shift-accumulator after every cycle: ``[G, R, N]``; the last plane equals ``scores``.

    ``partial[g] = q @ digit[g].T`` is what the per-row adder trees produce in cycle g.
    """
    dg = digits(k, data_bits, bits_per_cycle)
    acc = np.zeros(np.asarray(q).shape[:-1] + (np.asarray(k).shape[0],), dtype=np.int64)
    trace = []
    for g in range(dg.shape[0]):
        acc = (acc << bits_per_cycle) + scores(q, dg[g])
        trace.append(acc)
    return np.stack(trace)
