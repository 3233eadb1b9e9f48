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
from ..core.keyscale import KeyScales, k_factor
from ..golden import engine, ip_cim, reference
from . import quant

__all__ = ["evaluate", "summarise", "exact_softmax", "per_layer"]


def exact_softmax(z, causal, cfg):
    # Same integer scores and V, exact float64 softmax: isolates the quantisation error.
    H = z.q.shape[0]
    kv_of = np.arange(H) // (H // z.k.shape[0])
    s = ip_cim.scores(z.q, z.k[kv_of]).astype(np.float64) * z.score_scale[..., None]
    codes = KeyScales.zeros(z.k.shape[:2]) if z.scales is None else z.scales
    s = s * k_factor(cfg, codes.k_exp, codes.k_mant)[kv_of][:, None, :].astype(np.float64)   # each key's factor
    vdeq = (z.v << codes.v_exp[..., None]) * z.v_scale[:, None, :] + z.v_offset[:, None, :]
    return reference.attention_from_scores(s, vdeq[kv_of], causal)


def evaluate(att: Attention, cfg, *, name="", rotate=True, v_anchor="sink", stats=None, per_key=False):
    """Per-head records for one attention file (see module docstring).

    ``stats``: calibrated K/V statistics of this file's layer (static scales);
    None quantises with the file's own whole-sequence statistics (dynamic).
    ``per_key``: per-key scales (``stats``, if given, supplies K's centre and V's channel shape only).
    """
    cfg = cfg.fit(att.head_dim, att.k.shape[1])
    causal = cfg.causal if att.causal is None else att.causal
    ref = reference.attention(att.q, att.k, att.v, causal=causal, scale=att.scale)
    z = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale, rotate=rotate, v_anchor=v_anchor, stats=stats,
                       per_key=per_key)
    base = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale, method="per-tensor")
    other = dataclasses.replace(cfg, key_order="sequential" if cfg.key_order == "pattern" else "pattern")
    H = att.heads
    group = H // att.kv_heads
    out = np.zeros(att.q.shape)
    counters, counters_other = [], []
    for h in range(H):
        g = h // group
        args = (z.q[h:h + 1], z.k[g:g + 1], z.v[g:g + 1], z.c_mant[h:h + 1], z.c_shift[h:h + 1])
        sc = None if z.scales is None else z.scales.head(slice(g, g + 1))
        r = engine.run(*args, cfg, causal=causal, scales=sc)
        out[h] = r.out[0]
        counters.append(r.counters)
        counters_other.append(engine.run(*args, other, causal=causal, scales=sc).counters)
    o = quant.dequantise(out, z, cfg)
    m = reference.metrics(o, ref)
    m_exact = reference.metrics(exact_softmax(z, causal, cfg), ref)
    m_base = reference.metrics(exact_softmax(base, causal, cfg), ref)
    m_file = reference.metrics(o, att.out) if att.out is not None else None
    records = []
    for h in range(H):
        c, co = counters[h], counters_other[h]
        live = c.fine_lookups + c.coarse_lookups + c.skipped_entries
        rows = c.cim_writes
        seq_c, pat_c = (c, co) if cfg.key_order == "sequential" else (co, c)
        rec = {
            "file": name, "model": att.model, "layer": att.layer, "head": h, "kv_head": h // group,
            "quant": "per-key" if per_key else "dynamic" if stats is None else "static",
            "k_clipped_frac": z.k_clipped / z.k.size, "v_clipped_frac": z.v_clipped / z.v.size,
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
                "skip_frac", "skipped_keys_frac", "rescales_per_row_pattern", "rescales_per_row_sequential",
                "k_clipped_frac", "v_clipped_frac")


def summarise(records):
    """Median and max over heads of each summary figure."""
    out = {"heads": len(records), "quant": sorted({r["quant"] for r in records})}
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
    ] + ([f"  beyond the calibrated range (static) or the exponents' range (per-key), saturated: K "
          f"{pct('k_clipped_frac', 'mean')}, V {pct('v_clipped_frac', 'mean')} of elements"]
         if {"static", "per-key"} & set(s["quant"]) else []))


def per_layer(records):
    """Per (model, layer, quantisation): the heads' median and worst error, and which head is worst.

    Records without a layer (files that do not name one) are grouped by file."""
    groups = {}
    for r in records:
        key = (r.get("model") or "", r["layer"] if r.get("layer") is not None else r["file"], r.get("quant", "dynamic"))
        groups.setdefault(key, []).append(r)
    rows = []
    for (model, layer, mode), rs in groups.items():
        e = np.array([r["rel_l2"] for r in rs])
        w = rs[int(e.argmax())]
        rows.append({"model": model, "layer": layer, "quant": mode, "heads": len(rs), "median": float(np.median(e)),
                     "max": float(e.max()), "worst_head": w["head"],
                     "k_clipped_frac": float(np.mean([r["k_clipped_frac"] for r in rs])),
                     "v_clipped_frac": float(np.mean([r["v_clipped_frac"] for r in rs]))})
    # By model, then layer number (9 before 19), then the files that name no layer, by name.
    rows.sort(key=lambda r: (r["model"], isinstance(r["layer"], str), r["layer"] if isinstance(r["layer"], str)
                             else int(r["layer"]), r["quant"]))
    return rows


def format_per_layer(rows):
    """One line per layer, the quantisation modes side by side."""
    modes = sorted({r["quant"] for r in rows})
    by = {(r["model"], r["layer"], r["quant"]): r for r in rows}
    layers = list(dict.fromkeys((r["model"], r["layer"]) for r in rows))
    head = f"{'model':<8} {'layer':>5}" + "".join(f" {m + ' median':>15} {'worst (head)':>14}" for m in modes)
    clipping = [m for m in ("per-key", "static") if m in modes]       # modes whose ranges can be exceeded
    head += "".join(f" {m + ' clipped K/V':>21}" for m in clipping)
    lines = [head]
    for model, layer in layers:
        line = f"{model:<8} {str(layer):>5}"
        for m in modes:
            r = by.get((model, layer, m))
            line += (f" {100 * r['median']:>14.2f}% {100 * r['max']:>8.2f}% ({r['worst_head']:>2})" if r
                     else f" {'':>15} {'':>14}")
        for m in clipping:
            s = by.get((model, layer, m))
            line += f" {100 * s['k_clipped_frac']:>13.3f}/{100 * s['v_clipped_frac']:.3f}%" if s else f" {'':>21}"
        lines.append(line)
    return "\n".join(lines)


def plot_per_layer(rows, path):
    """A figure of the median and worst head per layer, one panel per model, one colour per quantisation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for mode, colour in (("dynamic", "tab:blue"), ("static", "tab:orange"), ("per-key", "tab:green")):
            rs = [r for r in rows if r["model"] == model and r["quant"] == mode]
            if not rs:
                continue
            x = [r["layer"] if isinstance(r["layer"], int) else i for i, r in enumerate(rs)]
            ax.plot(x, [100 * r["median"] for r in rs], "-o", color=colour, ms=3, label=f"{mode}: median head")
            ax.plot(x, [100 * r["max"] for r in rs], "--^", color=colour, ms=3, label=f"{mode}: worst head")
        ax.set_title(model or "files")
        ax.set_xlabel("layer")
        ax.set_ylabel("relative L2 error vs float64 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    from ..core.files import atomic_write
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=110), binary=True)
    plt.close(fig)
