"""Float64 reference attention and the error metrics every accuracy figure uses.

>>> import numpy as np
>>> q = np.zeros((1, 2, 4)); k = np.zeros((1, 2, 4)); v = np.arange(8.).reshape(1, 2, 4)
>>> attention(q, k, v, causal=True)[0].tolist()      # row 0 sees key 0 only; row 1 averages
[[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["attention", "attention_from_scores", "causal_mask", "metrics", "query_positions"]


def query_positions(lq, lk):
    """Positions of ``lq`` queries against ``lk`` keys: the queries are the last ``lq`` tokens."""
    return np.arange(lk - lq, lk)


def causal_mask(lq, lk):
    """``[Lq, Lk]`` bool, True where the key is visible to the query."""
    return np.arange(lk)[None, :] <= query_positions(lq, lk)[:, None]


def attention_from_scores(logits, v, causal):
    """Softmax of natural-log ``logits [H, Lq, Lk]`` over keys, times ``v [H, Lk, d]``, in float64."""
    logits = np.asarray(logits, np.float64)
    if causal:
        logits = np.where(causal_mask(*logits.shape[-2:]), logits, -np.inf)
    logits = logits - logits.max(axis=-1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=-1, keepdims=True)
    return w @ np.asarray(v, np.float64)


def attention(q, k, v, *, causal, scale=None):
    """Float64 attention for ``q [H, Lq, d]``, ``k, v [Hkv, Lk, d]`` (GQA when Hkv < H)."""
    q = np.asarray(q, np.float64)
    H, _, d = q.shape
    group = H // k.shape[0]
    kk = np.repeat(np.asarray(k, np.float64), group, axis=0)
    vv = np.repeat(np.asarray(v, np.float64), group, axis=0)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    return attention_from_scores(q @ np.swapaxes(kk, -1, -2) * scale, vv, causal)


def metrics(out, ref):
    """Per-head errors of ``out`` against ``ref`` (both ``[H, L, d]``).

    Returns a dict of ``[H]`` arrays: ``rel_l2`` (Frobenius norm of the error
    over the reference's), ``max_abs``, ``cosine`` (of the flattened head) and
    ``argmax`` (fraction of rows whose largest output channel is the reference's).
    """
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    err = out - ref
    H = out.shape[0]
    e2 = np.sqrt((err ** 2).reshape(H, -1).sum(1))
    r2 = np.sqrt((ref ** 2).reshape(H, -1).sum(1))
    o2 = np.sqrt((out ** 2).reshape(H, -1).sum(1))
    dot = (out * ref).reshape(H, -1).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(r2 > 0, e2 / r2, np.where(e2 > 0, np.inf, 0.0))
        cos = np.where((r2 > 0) & (o2 > 0), dot / (r2 * o2), np.where((r2 == 0) & (o2 == 0), 1.0, 0.0))
    return {
        "rel_l2": rel,
        "max_abs": np.abs(err).reshape(H, -1).max(1),
        "cosine": cos,
        "argmax": (out.argmax(-1) == ref.argmax(-1)).mean(-1),
    }
