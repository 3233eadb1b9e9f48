"""Golden model of the pattern-aware online softmax unit, docs/numerics.md §3-§5.

Per key and per row: x = log-domain score (fixed point, F fraction bits), the
running max m is kept as an integer number of log2 units (``ceil`` of the
largest x seen), so every rescale factor alpha = 2**-(m_new - m_old) is a pure
right shift. p = 2**(x - m) = LUT[fraction of (m - x)] >> integer part.

>>> from fusioncim.core.config import EngineConfig
>>> cfg = EngineConfig(prob_bits=8, op_bits_per_cycle=2, fine_lut_bits=5, coarse_lut_bits=4)   # p = 1 is 255
>>> p, tier = exp2_neg(np.array([0, 256, 256 * 3 + 128]), cfg)   # d = 0, 1, 3.5
>>> p.tolist(), tier.tolist()
([253, 127, 22], [0, 0, 0])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.counters import SOFTMAX_COUNTERS
from ..core.lut import luts

__all__ = [
    "FINE", "COARSE", "SKIPPED", "MASKED", "luts", "to_log2", "exp2_neg", "exp2_neg_direct",
    "SoftmaxState", "initial_state", "step", "online", "OnlineResult", "unit", "entry_counts",
]

# Tier codes of one (row, key) entry.
FINE, COARSE, SKIPPED, MASKED = 0, 1, 2, 3

_NEVER = np.iinfo(np.int64).min // 4   # "no max yet"; far below any x


def to_log2(s, c_mant, c_shift, cfg, k_factor=None):
    """Log-domain score ``x = sat(round_half_up(s * c_mant * k_factor / 2**c_shift))``, docs §3.

    ``s`` is ``[..., R, N]`` integer scores; ``c_mant`` and ``c_shift`` are per row ``[..., R]``;
    ``k_factor`` per key ``[N]`` (``keyscale.k_factor``; None: the factor of a key with no scale, 1 with
    ``k_mant_bits`` 0).
    """
    s = np.asarray(s, dtype=np.int64)
    cm = np.asarray(c_mant, dtype=np.int64)[..., None]
    cs = np.asarray(c_shift, dtype=np.int64)[..., None]
    kf = np.int64(1 << cfg.k_mant_bits) if k_factor is None else np.asarray(k_factor, np.int64)
    x = (s * cm * kf + ((np.int64(1) << cs) >> 1)) >> cs
    return np.clip(x, cfg.x_min, cfg.x_max)


def exp2_neg(d, cfg):
    """``p = 2**-d`` for fixed-point distances ``d = m - x`` (F fraction bits) and the tier used.

    Returns ``(p, tier)`` with ``tier`` FINE, COARSE or SKIPPED (p forced to 0).
    d may be negative down to ``-lazy_threshold`` units (p above 1, shifted left).
    The result depends on d only through its fraction and its integer part
    clipped to a small range, so it is read from a table that
    :func:`exp2_neg_direct` fills; the two are the same function.
    """
    d = np.asarray(d, dtype=np.int64)
    F = cfg.log_frac_bits
    p_tab, tier_tab, nmax = _exp2_table(cfg)
    lazy = cfg.lazy_threshold
    n = np.clip(d >> F, -lazy, nmax) + lazy
    return p_tab[(n << F) | (d & ((1 << F) - 1))], tier_tab[n]


def _nmax(cfg):
    # Past this integer part nothing changes: p is 0 and the tier is fixed.
    return max(cfg.prob_bits + 1, cfg.skip_threshold or 0, cfg.fine_window)


@lru_cache(maxsize=64)
def _exp2_table(cfg):
    nmax = _nmax(cfg)
    F = cfg.log_frac_bits
    n = np.arange(-cfg.lazy_threshold, nmax + 1)
    d = (n[:, None] << F) + np.arange(1 << F)[None, :]
    p, tier = exp2_neg_direct(d, cfg)
    p = p.ravel()
    tier = tier[:, 0].copy()
    p.setflags(write=False)
    tier.setflags(write=False)
    return p, tier, nmax


def exp2_neg_direct(d, cfg):
    """:func:`exp2_neg` computed step by step from the LUTs (docs/numerics.md section 4)."""
    fine, coarse = luts(cfg)
    F = cfg.log_frac_bits
    d = np.asarray(d, dtype=np.int64)
    n = d >> F                                   # integer part, floor
    f = d & ((1 << F) - 1)                       # fraction, F bits
    use_coarse = (d >= (cfg.fine_window << F)) if cfg.tiers else np.zeros(d.shape, bool)
    base = np.where(use_coarse, coarse[f >> (F - cfg.coarse_lut_bits)], fine[f >> (F - cfg.fine_lut_bits)])
    # Right shift with round-half-up; a shift past prob_bits + 1 leaves 0 whatever
    # the entry, so the shifter saturates there (docs section 4).
    rs = np.clip(n, 0, cfg.prob_bits + 1)
    p = (base + ((np.int64(1) << rs) >> 1)) >> rs
    p = np.where(n < 0, base << np.clip(-n, 0, cfg.lazy_threshold), p)
    tier = np.where(use_coarse, COARSE, FINE)
    if cfg.skip_threshold is not None:
        skip = d >= (cfg.skip_threshold << F)
        p = np.where(skip, 0, p)
        tier = np.where(skip, SKIPPED, tier)
    return p, tier


def _ceil_units(x, F):
    # ceil(x) in log2 units, kept in the same fixed point as x.
    return ((x + ((1 << F) - 1)) >> F) << F


# -- sequential model: one key at a time, as the hardware does it ------------

@dataclass
class SoftmaxState:
    """Per-row state between keys: running max ``m`` (fixed point, integer-valued) and whether set."""
    m: np.ndarray
    seen: np.ndarray


def initial_state(rows):
    return SoftmaxState(m=np.zeros(rows, np.int64), seen=np.zeros(rows, bool))


def step(state, x, live, cfg):
    """Process one key for every row.

    Parameters
    ----------
    state : SoftmaxState
    x : ``[R]`` log-domain scores of this key.
    live : ``[R]`` bool, False where the key is masked for that row.

    Returns
    -------
    p : ``[R]`` probabilities (0 where masked).
    shift : ``[R]`` rescale shift applied to l and O *before* this key's p is added
        (0: alpha = 1), saturated at ``cfg.acc_width``.
    rescale : ``[R]`` bool, the rescale events the counters see.
    tier : ``[R]`` tier codes (MASKED where not live).
    state : the new SoftmaxState.
    """
    F = cfg.log_frac_bits
    x = np.asarray(x, np.int64)
    live = np.asarray(live, bool)
    grow = live & (~state.seen | (x > state.m + (cfg.lazy_threshold << F)))
    m = np.where(grow, _ceil_units(x, F), state.m)
    shift = np.where(grow & state.seen, np.minimum((m - state.m) >> F, cfg.acc_width), 0)
    rescale = (grow & state.seen) if cfg.rescale_on_growth_only else (live & state.seen)
    p, tier = exp2_neg(m - x, cfg)
    p = np.where(live, p, 0)
    tier = np.where(live, tier, MASKED)
    return p, shift, rescale, tier, SoftmaxState(m=m, seen=state.seen | live)


# -- vectorised model: all keys at once, same bits -------------------------

@dataclass
class OnlineResult:
    """Everything the online softmax decides, for keys in processing order ``[..., R, N]``."""
    p: np.ndarray          # probabilities
    m: np.ndarray          # running max after each key (fixed point; _NEVER before the first live key)
    rescale: np.ndarray    # rescale events (counter semantics)
    grows: np.ndarray      # the max grew past an earlier live key: a non-zero shift of O and l
    tier: np.ndarray       # tier codes
    m_final: np.ndarray    # [..., R] final running max


def online(x, live, cfg):
    """Vectorised online softmax over the last axis (keys in processing order).

    Bit-identical to folding :func:`step` over the keys.
    """
    F = cfg.log_frac_bits
    x = np.asarray(x, np.int64)
    live = np.asarray(live, bool)
    cx = np.where(live, _ceil_units(x, F), _NEVER)
    if cfg.lazy_threshold == 0:
        m = np.maximum.accumulate(cx, axis=-1)
    else:
        m = _lazy_max(x, cx, live, cfg)
    m_prev = np.concatenate([np.full(m.shape[:-1] + (1,), _NEVER), m[..., :-1]], axis=-1)
    seen_prev = m_prev != _NEVER
    grows = live & seen_prev & (m > m_prev)
    rescale = grows if cfg.rescale_on_growth_only else live & seen_prev
    p, tier = exp2_neg(np.where(live, m - x, 0), cfg)
    p = np.where(live, p, 0)
    tier = np.where(live, tier, MASKED)
    return OnlineResult(p=p, m=m, rescale=rescale, grows=grows, tier=tier, m_final=m[..., -1] if m.shape[-1] else
                        np.full(m.shape[:-1], _NEVER))


def _lazy_max(x, cx, live, cfg):
    # With a lazy threshold the max is a recurrence, not a running maximum:
    # m only moves when a score clears it by more than the threshold. Walk the
    # growth events; there are few per row, and each pass is vectorised.
    tau = cfg.lazy_threshold << cfg.log_frac_bits
    n = x.shape[-1]
    idx = np.arange(n)
    out = np.full(x.shape, _NEVER, np.int64)
    has = live.any(axis=-1)
    pos = np.where(has, live.argmax(axis=-1), n)
    cur = np.where(has, np.take_along_axis(cx, np.minimum(pos, n - 1)[..., None], -1)[..., 0], _NEVER)
    while has.any():
        after = (idx > pos[..., None]) & live & (x > cur[..., None] + tau)
        nxt_has = after.any(axis=-1) & has
        nxt = np.where(nxt_has, after.argmax(axis=-1), n)
        seg = (idx >= pos[..., None]) & (idx < nxt[..., None]) & has[..., None]
        out = np.where(seg, cur[..., None], out)
        cur = np.where(nxt_has, np.take_along_axis(cx, np.minimum(nxt, n - 1)[..., None], -1)[..., 0], cur)
        pos, has = nxt, nxt_has
    return out


def entry_counts(tier, rescale, inside=True):
    """The per-entry counters (docs/numerics.md §7) of tier codes and rescale events, as a dict.

    ``inside`` masks entries that are not part of the stream (padding keys of
    the vectorised model); it does not apply to rescale events, which padding
    never has.
    """
    tier = np.asarray(tier)
    return {"fine_lookups": int(((tier == FINE) & inside).sum()),
            "coarse_lookups": int(((tier == COARSE) & inside).sum()),
            "skipped_entries": int(((tier == SKIPPED) & inside).sum()),
            "masked_entries": int(((tier == MASKED) & inside).sum()),
            "rescales": int(np.asarray(rescale).sum())}


# -- the softmax unit as a block: what hw/softmax.py must produce ------------


def unit(scores, key_pos, c_mant, c_shift, q_pos, active, causal, cfg, k_factor=None):
    """Run the softmax unit over one tile's key stream.

    Parameters
    ----------
    scores : ``[R, N]`` integer scores of N keys in stream order.
    key_pos : ``[N]`` key positions. ``c_mant, c_shift, q_pos`` : ``[R]``.
    active, causal : ``[R]`` bool (row in use; causal masking for the row).
    k_factor : ``[N]`` the keys' K-scale factors (``keyscale.k_factor``), or None.

    Returns
    -------
    outputs : list of ``(p [R], shift [R], skip)`` per key, as on ``p_out``
        (``skip`` only with ``key_skip``).
    l : ``[R]`` final running sums.
    counters : dict of ``fusioncim.core.counters.SOFTMAX_COUNTERS``.
    """
    scores = np.asarray(scores, np.int64)
    R, N = scores.shape
    x = to_log2(scores, c_mant, c_shift, cfg, k_factor)
    active = np.asarray(active, bool)
    causal = np.asarray(causal, bool)
    q_pos = np.asarray(q_pos, np.int64)
    state = initial_state(R)
    lsum = np.zeros(R, np.int64)
    counters = dict.fromkeys(SOFTMAX_COUNTERS, 0)
    outputs = []
    for n in range(N):
        live = active & (~causal | (int(key_pos[n]) <= q_pos))
        p, shift, rescale, tier, state = step(state, x[:, n], live, cfg)
        lsum = (lsum >> shift) + p
        zero = not p.any()
        outputs.append((p, shift, bool(zero and cfg.key_skip)))
        counters["keys"] += 1
        counters["skipped_keys"] += int(zero and cfg.key_skip)
        for name, n in entry_counts(tier, rescale).items():
            counters[name] += n
    return outputs, lsum, counters
