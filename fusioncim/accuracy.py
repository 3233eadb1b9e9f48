"""Accuracy of the engine numerics on attention files, against float64.

For every head of every file it reports the engine's error and, side by side,
the error of the same quantisation with an exact float softmax (so the cost of
everything after the integer scores is visible) and of plain per-tensor int8
with an exact softmax (the baseline the front end must beat), plus the
pattern statistics the pattern-aware softmax relies on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .attnfile import Attention
from .golden import engine, ip_cim, quant, reference

__all__ = ["evaluate", "summarise"]


def _exact_softmax(z, causal):
    # Same integer scores and V, exact float64 softmax: isolates the quantisation error.
    H = z.q.shape[0]
    kv_of = np.arange(H) // (H // z.k.shape[0])
    s = ip_cim.scores(z.q, z.k[kv_of]).astype(np.float64) * z.score_scale[..., None]
    vdeq = z.v * z.v_scale[:, None, :] + z.v_offset[:, None, :]
    return reference.attention_from_scores(s, vdeq[kv_of], causal)


def evaluate(att: Attention, cfg, *, name="", rotate=True, v_anchor="sink"):
    """Per-head records for one attention file (see module docstring)."""
    cfg = cfg.fit(att.head_dim, att.k.shape[1])
    causal = cfg.causal if att.causal is None else att.causal
    ref = reference.attention(att.q, att.k, att.v, causal=causal, scale=att.scale)
    z = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale, rotate=rotate, v_anchor=v_anchor)
    base = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale, method="per-tensor")
    other = dataclasses.replace(cfg, key_order="sequential" if cfg.key_order == "pattern" else "pattern")
    H = att.heads
    group = H // att.kv_heads
    out = np.zeros(att.q.shape)
    counters, counters_other = [], []
    for h in range(H):
        g = h // group
        args = (z.q[h:h + 1], z.k[g:g + 1], z.v[g:g + 1], z.c_mant[h:h + 1], z.c_shift[h:h + 1])
        r = engine.run(*args, cfg, causal=causal)
        out[h] = r.out[0]
        counters.append(r.counters)
        counters_other.append(engine.run(*args, other, causal=causal).counters)
    o = quant.dequantise(out, z, cfg)
    m = reference.metrics(o, ref)
    m_exact = reference.metrics(_exact_softmax(z, causal), ref)
    m_base = reference.metrics(_exact_softmax(base, causal), ref)
    m_file = reference.metrics(o, att.out) if att.out is not None else None
    records = []
    for h in range(H):
        c, co = counters[h], counters_other[h]
        live = c.fine_lookups + c.coarse_lookups + c.skipped_entries
        rows = c.cim_writes
        seq_c, pat_c = (c, co) if cfg.key_order == "sequential" else (co, c)
        rec = {
            "file": name, "head": h, "kv_head": h // group,
            "rel_l2": float(m["rel_l2"][h]), "max_abs": float(m["max_abs"][h]),
            "cosine": float(m["cosine"][h]), "argmax": float(m["argmax"][h]),
            "rel_l2_exact_softmax": float(m_exact["rel_l2"][h]),
            "rel_l2_per_tensor": float(m_base["rel_l2"][h]),
            "rel_l2_vs_file_out": None if m_file is None else float(m_file["rel_l2"][h]),
            "fine_frac": c.fine_lookups / live, "coarse_frac": c.coarse_lookups / live,
            "skip_frac": c.skipped_entries / live,
            "skipped_keys_frac": c.skipped_keys / max(c.keys, 1),
            "rescales_per_row_pattern": pat_c.rescales / rows,
            "rescales_per_row_sequential": seq_c.rescales / rows,
        }
        records.append(rec)
    return records


SUMMARY_KEYS = ("rel_l2", "rel_l2_exact_softmax", "rel_l2_per_tensor", "cosine", "fine_frac", "coarse_frac",
                "skip_frac", "skipped_keys_frac", "rescales_per_row_pattern", "rescales_per_row_sequential")


def summarise(records):
    """Median and max over heads of each summary figure."""
    out = {"heads": len(records)}
    for key in SUMMARY_KEYS:
        vals = np.array([r[key] for r in records], np.float64)
        out[key] = {"median": float(np.median(vals)), "max": float(vals.max()), "mean": float(vals.mean())}
    return out


def format_table(records):
    head = (f"{'file':<28} {'head':>4} {'rel_l2%':>8} {'exact%':>7} {'int8pt%':>8} {'cosine':>8} "
            f"{'fine%':>6} {'coarse%':>7} {'skip%':>6} {'resc/row pat':>12} {'seq':>6}")
    lines = [head]
    for r in records:
        lines.append(
            f"{Path(r['file']).name[:28]:<28} {r['head']:>4} {100 * r['rel_l2']:>8.3f} "
            f"{100 * r['rel_l2_exact_softmax']:>7.3f} {100 * r['rel_l2_per_tensor']:>8.3f} {r['cosine']:>8.5f} "
            f"{100 * r['fine_frac']:>6.1f} {100 * r['coarse_frac']:>7.1f} {100 * r['skip_frac']:>6.1f} "
            f"{r['rescales_per_row_pattern']:>12.2f} {r['rescales_per_row_sequential']:>6.2f}")
    return "\n".join(lines + [COLUMNS])


COLUMNS = """\
rel_l2%: the engine's output against float64 attention (relative L2 error); exact%: the same quantisation
with an exact float softmax; int8pt%: per-tensor int8 quantisation with an exact softmax (a common baseline);
cosine: the engine's output against float64; fine% / coarse% / skip%: score entries in the fine LUT tier,
the coarse tier and skipped; resc/row pat / seq: rescales per query row in pattern-aware and in sequential
key order."""


def format_summary(s, label=""):
    def pct(key, stat):
        return f"{100 * s[key][stat]:.2f}%"
    return "\n".join([
        f"{label}{s['heads']} heads",
        f"  rel L2 vs float64, engine:                     median {pct('rel_l2', 'median')}  max {pct('rel_l2', 'max')}",
        f"  rel L2, same quantisation + exact softmax:     median {pct('rel_l2_exact_softmax', 'median')}  "
        f"max {pct('rel_l2_exact_softmax', 'max')}",
        f"  rel L2, per-tensor int8 + exact softmax:       median {pct('rel_l2_per_tensor', 'median')}  "
        f"max {pct('rel_l2_per_tensor', 'max')}",
        f"  softmax numerics add (median engine - exact):  "
        f"{100 * (s['rel_l2']['median'] - s['rel_l2_exact_softmax']['median']):+.2f} points",
        f"  entries: fine tier {pct('fine_frac', 'mean')}, coarse tier {pct('coarse_frac', 'mean')}, "
        f"skipped {pct('skip_frac', 'mean')}; keys skipped {pct('skipped_keys_frac', 'mean')}",
        f"  rescales per row: pattern-aware order {s['rescales_per_row_pattern']['mean']:.2f}, "
        f"sequential order {s['rescales_per_row_sequential']['mean']:.2f}",
    ])
