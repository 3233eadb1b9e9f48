"""Golden model of the outer-product CIM macro and the final normalisation, docs/numerics.md §5.

Per key the macro does ``O[r, :] = (O[r, :] >> shift[r]) + p[r] * v`` and the
softmax unit does ``l[r] = (l[r] >> shift[r]) + p[r]``; ``>>`` is an
arithmetic (floor) shift, so a chain of them collapses into one floor:

    O_final = floor(sum_n p_n * v_n * 2**-s_n),   s_n = total shift after key n.

:func:`accumulate` evaluates that closed form in one matmul; :func:`update` is
the per-key step. Both give the same bits.

>>> O, l = update(np.zeros((1, 2), np.int64), np.zeros(1, np.int64), np.array([255]),
...               np.array([0]), np.array([-128, 5]))
>>> O.tolist(), l.tolist()
([[-32640, 1275]], [255])
>>> update(O, l, np.array([100]), np.array([1]), np.array([1, 1]))[0].tolist()
[[-16220, 737]]
>>> normalise(np.array([[-32640, 1275]]), np.array([255]), out_frac_bits=4, out_bits=12).tolist()
[[-2048, 80]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["update", "accumulate", "take_keys", "exact_rows", "normalise"]


def update(O, l, p, shift, v):
    """One key: rescale by ``2**-shift`` (floor) then add ``p * v``. ``O [R, d]``, ``l, p, shift [R]``, ``v [d]``."""
    shift = np.asarray(shift, np.int64)
    O = (np.asarray(O, np.int64) >> shift[:, None]) + np.asarray(p, np.int64)[:, None] * np.asarray(v, np.int64)[None, :]
    l = (np.asarray(l, np.int64) >> shift) + np.asarray(p, np.int64)
    return O, l


def accumulate(p, s, v, *, v_bits, slot=None, exact=None):
    """Final ``O [..., R, d]`` and ``l [..., R]`` from per-key ``p`` and total shifts ``s`` ``[..., R, N]``.

    ``v`` is ``[N, d]``. Computes ``floor(sum p * v * 2**-s)`` with one float64
    matmul when every partial sum is a dyadic rational that float64 holds
    exactly, and with Python integers for the (rare) rows where it is not.

    ``p`` and ``s`` may come in any order of the keys (the order they streamed
    in): ``slot [..., N]`` then says where key ``n`` sits along their last axis
    (None: key ``n`` at ``n``). ``exact`` is :func:`exact_rows` of ``p`` and ``s``
    when the caller has it already.
    """
    p = np.asarray(p, np.int64)
    s = np.where(p != 0, np.asarray(s, np.int64), 0)
    v = np.asarray(v, np.int64)
    exact = exact_rows(p, s, v_bits=v_bits) if exact is None else exact
    w = np.ldexp(p.astype(np.float64), -np.minimum(s, 1000).astype(np.int32))
    w = np.where(exact[..., None], w, 0.0)
    if slot is not None:
        w = take_keys(w, slot)                # into key order; the sums below are exact, so order cannot matter
    # One 2-D product over every row at once (BLAS is fastest at that form; a stacked [..., R, N] @ [N, d]
    # measured several times slower): every partial sum is exact, so the order of the sums cannot matter.
    O = np.floor((w.reshape(-1, w.shape[-1]) @ v.astype(np.float64)).reshape(*w.shape[:-1], v.shape[1]))
    O = O.astype(np.int64)
    l = np.floor(w.sum(axis=-1)).astype(np.int64)
    if not exact.all():
        for ix in zip(*np.nonzero(~exact)):
            keys = slice(None) if slot is None else slot[ix[:-1]]
            O[ix], l[ix] = _exact_row(p[ix][keys], s[ix][keys], v)
    return O, l


def take_keys(a, index):
    """``a [..., R, N]`` with the last axis of each ``a[i]`` taken in the order ``index[i]`` ``[..., N]``.

    What ``np.take_along_axis(a, index[..., None, :], -1)`` gives, one ``np.take`` per leading index
    (several times faster here: no index array the size of ``a`` is built).
    """
    index = np.asarray(index)
    out = np.empty(a.shape[:-1] + index.shape[-1:], a.dtype)
    for i in np.ndindex(index.shape[:-1]):
        np.take(a[i], index[i], axis=-1, out=out[i])
    return out


def exact_rows(p, s, *, v_bits):
    """``[..., R]`` bool: rows whose closed form float64 evaluates exactly.

    ``|p v| < 2**(pbits + v_bits - 1)``, N terms, each scaled by up to
    ``2**-smax``: every partial sum is a multiple of ``2**-smax`` below
    ``2**(pbits + v_bits - 1 + bit_length(N - 1))``, exact while that spans at most 52 bits.
    """
    p = np.asarray(p, np.int64)
    smax = np.where(p != 0, np.asarray(s, np.int64), 0).max(axis=-1, initial=0)
    head = int(p.max(initial=0)).bit_length() + v_bits - 1 + max(p.shape[-1] - 1, 0).bit_length()
    return head + smax <= 52


def _exact_row(p, s, v):
    top = int(s.max())
    nz = np.nonzero(p)[0]
    w = [int(p[i]) << (top - int(s[i])) for i in nz]
    O = np.array([sum(wi * int(v[i, j]) for wi, i in zip(w, nz)) >> top for j in range(v.shape[1])],
                 dtype=np.int64)
    return O, sum(w) >> top


def normalise(O, l, *, out_frac_bits, out_bits):
    """``out = sat(round_half_away(O * 2**out_frac_bits / l))``; rows with ``l == 0`` give 0. docs §5.

    ``O [..., d]``, ``l [...]``. The division is exact integer arithmetic.
    """
    O = np.asarray(O, np.int64)
    l = np.asarray(l, np.int64)[..., None]
    den = 2 * np.maximum(l, 1)
    mag = ((np.abs(O) << (out_frac_bits + 1)) + np.maximum(l, 1)) // den
    out = np.where(O < 0, -mag, mag)
    out = np.where(l == 0, 0, out)
    lim = 1 << (out_bits - 1)
    return np.clip(out, -lim, lim - 1)
