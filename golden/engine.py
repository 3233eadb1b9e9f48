"""Golden model of the whole QO-stationary engine, docs/numerics.md §6-§7.

A *tile* is up to ``rows`` query rows that share one KV head: consecutive
positions of one query head (prefill) or the query heads of one GQA group at
one or more consecutive positions (decode; ``positions``). For each tile the engine loads the Q rows into the
IP-CIM, streams its keys once in the configured order through IP-CIM ->
online softmax -> OP-CIM, and drains ``O / l``.

:func:`run` is the fast, vectorised model; :func:`run_sequential` folds the
per-key block functions (``ip_cim``, ``softmax.step``, ``op_cim.update``) the
way the hardware does. They agree on every bit and every counter; the tests
hold them to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from ..core.counters import SOFTMAX_COUNTERS, Counters
from ..core.keyscale import checked as checked_scales, k_factor
from ..core.schedule import (MODES, key_order, make_tiles, norm_cycles, op_cycles, segment_cycles, segments, tile_keys,
                             tile_span)
from . import ip_cim, op_cim, softmax
from .reference import query_positions

__all__ = ["Counters", "EngineResult", "run", "run_sequential", "prepare"]

@dataclass
class EngineResult:
    out: np.ndarray        # [H, Lq, d] normalised output, out_frac_bits fraction, V units
    l: np.ndarray          # [H, Lq] final running sums
    counters: Counters
    fallback_rows: int = 0  # rows the fast model had to sum with Python integers


def _check_inputs(q, k, v, c_mant, c_shift, cfg, mode):
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    q = ip_cim.check_range("q", q, cfg.data_bits)
    k = ip_cim.check_range("k", k, cfg.data_bits)
    v = ip_cim.check_range("v", v, cfg.data_bits)
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise InputError(f"q, k, v must be [heads, length, head_dim]; got shapes {q.shape}, {k.shape}, {v.shape}")
    H, Lq, d = q.shape
    Hkv, Lk, _ = k.shape
    if k.shape != v.shape:
        raise InputError(f"k and v shapes differ: {k.shape} vs {v.shape}")
    if d != cfg.head_dim or k.shape[2] != cfg.head_dim:
        raise InputError(f"head_dim of the data ({d}, {k.shape[2]}) differs from the config's head_dim {cfg.head_dim}")
    if Hkv == 0 or H % Hkv:
        raise InputError(f"query heads {H} must be a multiple of KV heads {Hkv}")
    if Lk > cfg.max_seq_len:
        raise InputError(f"{Lk} keys exceed max_seq_len {cfg.max_seq_len}")
    if Lq > Lk:
        raise InputError(f"{Lq} queries but only {Lk} keys; queries are the last tokens of the sequence")
    cm = np.asarray(c_mant, np.int64)
    cs = np.asarray(c_shift, np.int64)
    if cm.shape != (H, Lq) or cs.shape != (H, Lq):
        raise InputError(f"c_mant and c_shift must be [{H}, {Lq}]; got {cm.shape}, {cs.shape}")
    if cm.size and (cm.min() < 0 or cm.max() >= (1 << cfg.const_bits)):
        raise InputError(f"c_mant must be in [0, 2**{cfg.const_bits})")
    if cs.size and (cs.min() < cfg.k_exp_max or cs.max() > cfg.c_shift_max):
        raise InputError(f"c_shift must be in [{cfg.k_exp_max}, {cfg.c_shift_max}] (at least k_exp_max, the "
                         f"largest K exponent)")
    return q, k, v, cm, cs


def prepare(q, k, v, c_mant, c_shift, cfg, causal, mode, positions=1, scales=None):
    """What the engine's models and the host's program start from.

    Returns ``(causal, q, k, v, c_mant, c_shift, qpos, tiles, out, lsum, scales)``:
    checked inputs, query positions, the tiles, zeroed outputs and the per-key scales
    (:class:`fusioncim.core.keyscale.KeyScales`; all zero when ``scales`` is None).
    """
    causal = cfg.causal if causal is None else bool(causal)
    q, k, v, cm, cs = _check_inputs(q, k, v, c_mant, c_shift, cfg, mode)
    scales = checked_scales(scales, cfg, k.shape[:2])
    H, Lq, d = q.shape
    Hkv, Lk, _ = k.shape
    tiles = make_tiles(mode, H, Lq, Hkv, cfg.rows, positions)
    out = np.zeros((H, Lq, d), np.int64)
    lsum = np.zeros((H, Lq), np.int64)
    return causal, q, k, v, cm, cs, query_positions(Lq, Lk), tiles, out, lsum, scales


def _tile_counters(cfg, n_rows, n_keys, op_cycles):
    """Everything but the cycle count and the softmax's own counters, for one tile."""
    return Counters(ideal_cycles=n_keys * cfg.ip_cycles_per_key, q_load_cycles=cfg.rows,
                    ip_busy=n_keys * cfg.ip_cycles_per_key, softmax_busy=n_keys * cfg.softmax_groups,
                    op_busy=int(op_cycles.sum()), norm_busy=int(norm_cycles(cfg, n_rows)), tiles=1,
                    cim_writes=n_rows, keys=n_keys, k_reads=n_keys)


def run(q, k, v, c_mant, c_shift, cfg, *, causal=None, mode="prefill", positions=1, scales=None,
        chunk_entries=1 << 18):
    """Run the engine numerics and counters over whole attention heads.

    Parameters
    ----------
    q : ``[H, Lq, d]`` int, k, v : ``[Hkv, Lk, d]`` int (``data_bits`` signed)
    c_mant, c_shift : ``[H, Lq]`` per-row score constants (see :mod:`.quant`)
    causal : bool, default ``cfg.causal``
    mode : "prefill" or "decode" (how rows are grouped into tiles)
    positions : decode only: query positions per tile (:func:`tiles_decode`)
    scales : :class:`fusioncim.core.keyscale.KeyScales` ``[Hkv, Lk]`` per-key K and V scales, or None

    Returns
    -------
    EngineResult
    """
    causal, q, k, v, cm, cs, qpos, tiles, out, lsum, scales = prepare(q, k, v, c_mant, c_shift, cfg, causal, mode,
                                                                      positions, scales)
    Hkv, Lk, _ = k.shape
    kf = k_factor(cfg, scales.k_exp, scales.k_mant)                  # [Hkv, Lk]
    vs = v << scales.v_exp[..., None]                                 # V with its key's exponent
    total = Counters()
    fallback = 0
    R = cfg.rows
    # Tiles that stream similar numbers of keys go into one chunk (causal
    # prefill tiles range from a few keys to all of them), and a chunk holds
    # at most chunk_entries (row, key) pairs.
    valid = tiles.qrow >= 0
    pos = np.where(valid, qpos[np.maximum(tiles.qrow, 0)], -1)
    span = np.array([tile_keys(pos[t], valid[t], Lk, causal) for t in range(len(tiles))]).reshape(-1, 2)
    tile_n = span[:, 0]
    spans = np.zeros(len(tiles), np.int64)
    for g in range(Hkv):
        tix = np.nonzero(tiles.kv == g)[0]
        tix = tix[np.argsort(tile_n[tix], kind="stable")]
        start = 0
        while start < len(tix):
            stop = start + 1
            while stop < len(tix) and (stop + 1 - start) * R * max(int(tile_n[tix[stop]]), 1) <= chunk_entries:
                stop += 1
            sel = tix[start:stop]
            c, f, spans[sel] = _run_chunk(q, k[g], vs[g], kf[g], cm, cs, qpos, tiles.qrow[sel], tiles.head[sel],
                                          span[sel], cfg, causal, out, lsum)
            total = total + c
            fallback += f
            start = stop
    _add_cycles(total, cfg, tiles, spans, Lk)
    return EngineResult(out=out, l=lsum, counters=total, fallback_rows=fallback)


def _add_cycles(total, cfg, tiles, spans, Lk):
    n_rows = (tiles.qrow >= 0).sum(axis=1)
    for seg in segments(tiles):
        total.cycles += segment_cycles(cfg, spans[seg], n_rows[seg])
        total.kv_writes += Lk


def _run_chunk(q, kg, vg, kf, cm, cs, qpos, qrow, head, span, cfg, causal, out, lsum):
    T, R = qrow.shape
    F = cfg.log_frac_bits
    valid = qrow >= 0
    qr = np.where(valid, qrow, 0)
    hh = np.where(valid, head, 0)
    rows_q = np.where(valid[..., None], q[hh, qr], 0)                 # [T, R, d]
    pos = np.where(valid, qpos[qr], -1)                               # [T, R]
    # Per-tile key order (span: keys streamed, latest query).
    nk = [int(n) for n in span[:, 0]]
    orders = [key_order(int(n), int(hi), cfg) for n, hi in span]
    N = max(nk, default=0)
    # Every tile streams a subset of keys [0, N): score only those.
    kg, vg = kg[:N], vg[:N]
    x = softmax.to_log2(ip_cim.scores(rows_q, kg), np.where(valid, cm[hh, qr], 0),
                        np.where(valid, cs[hh, qr], 0), cfg, kf[:N])  # [T, R, N]
    # order[t, i]: the key in stream slot i; the slots past a tile's own keys hold the keys it does not
    # stream (masked: their scores are never used), so each row is a permutation of [0, N) and
    # slot[t, key] is its inverse.
    order = np.tile(np.arange(N), (T, 1))
    for t, o in enumerate(orders):
        order[t, :len(o)] = o
    slot = np.empty_like(order)
    np.put_along_axis(slot, order, np.arange(N)[None, :], -1)
    in_tile = np.arange(N)[None, :] < np.array(nk, np.int64)[:, None]
    xo = op_cim.take_keys(x, order)
    live = valid[..., None] & in_tile[:, None, :]
    if causal:
        live &= order[:, None, :] <= pos[..., None]
    res = softmax.online(xo, live, cfg)
    # Key skipping: a key with p = 0 in every row costs neither V read nor OP-CIM update.
    zero_key = ~(res.p != 0).any(axis=1) & in_tile                    # [T, N]
    skipped = zero_key if cfg.key_skip else np.zeros_like(zero_key)
    # Total shift each key's contribution sees before the tile ends.
    s = np.where(live, (res.m_final[..., None] - res.m) >> F, 0)
    exact = op_cim.exact_rows(res.p, s, v_bits=cfg.v_width)
    O, l = op_cim.accumulate(res.p, s, vg, v_bits=cfg.v_width, slot=slot, exact=exact)
    fallback = int((~exact).sum())
    o = op_cim.normalise(O, l, out_frac_bits=cfg.out_frac_bits, out_bits=cfg.out_bits)
    out[head[valid], qrow[valid]] = o[valid]
    lsum[head[valid], qrow[valid]] = l[valid]

    c = Counters()
    any_rescale = res.grows.any(axis=1)        # [T, N]: the OP-CIM spends a shift cycle
    spans = np.zeros(T, np.int64)
    for t in range(T):
        n = nk[t]
        c = c + _tile_counters(cfg, int(valid[t].sum()), n, op_cycles(cfg, skipped[t, :n], any_rescale[t, :n]))
        spans[t] = tile_span(cfg, n, skipped[t, :n], any_rescale[t, :n])
    inside = in_tile[:, None, :] & np.ones((1, R, 1), bool)
    c.skipped_keys = int(skipped.sum())
    c.v_reads = c.keys - c.skipped_keys
    for name, n in softmax.entry_counts(res.tier, res.rescale, inside).items():
        setattr(c, name, n)
    return c, fallback, spans


def run_sequential(q, k, v, c_mant, c_shift, cfg, *, causal=None, mode="prefill", positions=1, scales=None):
    """The same engine, one key at a time, from the block functions. Slow; for tests and traces."""
    causal, q, k, v, cm, cs, qpos, tiles, out, lsum, scales = prepare(q, k, v, c_mant, c_shift, cfg, causal, mode,
                                                                      positions, scales)
    kf = k_factor(cfg, scales.k_exp, scales.k_mant)
    Lk, d = k.shape[1:]
    total = Counters()
    R = cfg.rows
    spans = []
    for t in range(len(tiles)):
        valid = tiles.qrow[t] >= 0
        qr = np.where(valid, tiles.qrow[t], 0)
        hh = np.where(valid, tiles.head[t], 0)
        pos = np.where(valid, qpos[qr], -1)
        rows_q = np.where(valid[:, None], q[hh, qr], 0)
        rcm = np.where(valid, cm[hh, qr], 0)
        rcs = np.where(valid, cs[hh, qr], 0)
        n, hi = tile_keys(pos, valid, Lk, causal)
        state = softmax.initial_state(R)
        O = np.zeros((R, d), np.int64)
        l = np.zeros(R, np.int64)
        c = Counters()
        skips, rescales = [], []
        g = tiles.kv[t]
        for key in key_order(n, hi, cfg):
            s = ip_cim.bitserial(rows_q, k[g, key][None, :], cfg.data_bits, cfg.ip_bits_per_cycle)[-1][:, 0]
            x = softmax.to_log2(s[:, None], rcm, rcs, cfg, kf[g, key:key + 1])[:, 0]
            live = valid & ((key <= pos) if causal else True)
            p, shift, rescale, tier, state = softmax.step(state, x, live, cfg)
            skip = cfg.key_skip and not p.any()
            # A key that raises a row's max has p >= 1/2 there, so a skipped key
            # never carries a rescale: skipping it loses nothing.
            if not skip:
                O, l = op_cim.update(O, l, p, shift, v[g, key] << scales.v_exp[g, key])
            skips.append(skip)
            rescales.append(shift.any())
            c.skipped_keys += int(skip)
            for name, count in softmax.entry_counts(tier, rescale).items():
                setattr(c, name, getattr(c, name) + count)
        skips, rescales = np.array(skips, bool), np.array(rescales, bool)
        sched = _tile_counters(cfg, int(valid.sum()), n, op_cycles(cfg, skips, rescales))
        spans.append(tile_span(cfg, n, skips, rescales))
        for f in SOFTMAX_COUNTERS:
            if f != "keys":
                setattr(sched, f, getattr(c, f))
        sched.v_reads = sched.keys - sched.skipped_keys
        total = total + sched
        o = op_cim.normalise(O, l, out_frac_bits=cfg.out_frac_bits, out_bits=cfg.out_bits)
        out[tiles.head[t][valid], tiles.qrow[t][valid]] = o[valid]
        lsum[tiles.head[t][valid], tiles.qrow[t][valid]] = l[valid]
    _add_cycles(total, cfg, tiles, np.array(spans, np.int64), Lk)
    return EngineResult(out=out, l=lsum, counters=total)
