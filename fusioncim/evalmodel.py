"""Model-level accuracy: every layer's attention replaced by the engine's numerics (``fusioncim eval-model``).

The model runs through transformers with its attention kernel swapped for one
of ours (transformers' ``AttentionInterface``), so every layer sees the output
the previous layers produced with the same numerics. Four runs per text:

``float``   the model's own kernel (scaled dot-product attention, float32)
``engine``  the front end (dynamic or static scales) and the golden engine, bit-exact with the RTL
``exact``   the same integer Q, K, V and scores with an exact float softmax
``int8``    plain per-tensor int8 Q, K, V with an exact softmax (whole-sequence scales), for reference

For a causal LM (SmolLM2) it reports each run's next-token loss (mean cross
entropy over the text, nats) and how often its top-1 prediction equals the
float model's; for an encoder (MiniLM) the cosine of the mean-pooled
embedding against float. Needs the optional ``models`` extra.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from . import accuracy, extract
from .golden import engine, quant

__all__ = ["RUNS", "TEXTS", "evaluate", "format_table"]

RUNS = ("float", "engine", "exact", "int8")
TEXTS = tuple(sorted((Path(__file__).with_name("data") / "texts").glob("*.txt")))
"""The shipped evaluation texts: our own prose, a few hundred tokens each."""


def _shape(model):
    c = model.config
    heads = c.num_attention_heads
    return {"layers": c.num_hidden_layers, "heads": heads,
            "kv_heads": getattr(c, "num_key_value_heads", None) or heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // heads}


def _bar(total, desc, quiet):
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:        # pragma: no cover - tqdm comes with transformers
        return None
    return tqdm(total=total, desc=desc, unit="layer", file=sys.stderr, leave=False)


def evaluate(model_name, texts, cfg, *, tokens=None, quant_mode="static", cal=None, rotate=True,
             v_anchor="sink", quiet=False):
    """Per-text records (see module docstring). ``cal``: a :class:`calibration.Calibration` for static mode."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    state = {"run": "float", "clip": np.zeros(4, np.int64), "bar": None}

    def kernel(module, query, key, value, attention_mask, scaling=None, **kw):
        if state["bar"] is not None:
            state["bar"].update(1)
        if state["run"] == "float":
            return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kw)
        torch = sys.modules["torch"]
        q, k, v = (t[0].double().numpy() for t in (query, key, value))
        c = cfg.fit(q.shape[2], k.shape[1])
        if state["run"] == "int8":
            z = quant.quantise(q, k, v, c, scale=scaling, method="per-tensor")
        else:
            stats = cal.layer(module.layer_idx) if quant_mode == "static" else None
            z = quant.quantise(q, k, v, c, scale=scaling, rotate=rotate, v_anchor=v_anchor, stats=stats)
        if state["run"] == "engine":
            o = quant.dequantise(engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, c, causal=causal).out, z, c)
            state["clip"] += (z.k_clipped, z.k.size, z.v_clipped, z.v.size)
        else:
            o = accuracy.exact_softmax(z, causal)
        return torch.from_numpy(o).to(query.dtype).transpose(0, 1)[None].contiguous(), None

    AttentionInterface.register("fusioncim_engine", kernel)
    torch, tok, model, causal, source = extract.load_model(model_name, "fusioncim_engine", quiet=quiet)
    shape = _shape(model)
    if quant_mode == "static":
        cal.check(model_name, shape["layers"], shape["heads"], shape["kv_heads"], shape["head_dim"])
    limit = getattr(model.config, "max_position_embeddings", None) or 512
    tokens = limit if tokens is None else tokens
    if tokens > limit:
        raise extract.ExtractError(f"--tokens {tokens} exceeds {model_name}'s {limit} positions")
    inputs = [(Path(t), extract.read_text(t, model_name, tok, tokens, least=2)) for t in texts]
    records = []
    for path, ids in inputs:
        n = ids["input_ids"].shape[1]
        out = {}
        for run in RUNS:
            state["run"], state["clip"][:] = run, 0
            state["bar"] = _bar(shape["layers"], f"{path.name} {run:>6}", quiet)
            with torch.no_grad():
                res = model(**ids)
            if state["bar"] is not None:
                state["bar"].close()
            if causal:
                out[run] = res.logits[0].double()
            else:
                out[run] = res.last_hidden_state[0].double().mean(0)
            if run == "engine":
                clip = state["clip"].copy()
        rec = {"model": model_name, "text": path.name, "tokens": int(n), "quant": quant_mode,
               "k_clipped_frac": float(clip[0] / clip[1]), "v_clipped_frac": float(clip[2] / clip[3])}
        if causal:
            target = ids["input_ids"][0, 1:]
            for run in RUNS:
                rec[f"loss_{run}"] = float(torch.nn.functional.cross_entropy(out[run][:-1], target))
            top = out["float"].argmax(-1)
            for run in RUNS[1:]:
                rec[f"top1_{run}"] = float((out[run].argmax(-1) == top).double().mean())
        else:
            for run in RUNS[1:]:
                rec[f"cosine_{run}"] = float(torch.nn.functional.cosine_similarity(out[run], out["float"], dim=0))
        records.append(rec)
    return records, source


def summary(records):
    """Mean over texts of every figure (changes of loss against float for a causal model)."""
    keys = [k for k in records[0] if k.startswith(("loss_", "top1_", "cosine_", "k_clipped", "v_clipped"))]
    mean = {k: float(np.mean([r[k] for r in records])) for k in keys}
    for run in RUNS[1:]:
        if f"loss_{run}" in mean:
            mean[f"dloss_{run}"] = float(np.mean([r[f"loss_{run}"] - r["loss_float"] for r in records]))
    return mean


def format_table(records, source):
    causal = "loss_float" in records[0]
    lines = [f"{source}; quantisation: {records[0]['quant']} ({'calibrated' if records[0]['quant'] == 'static' else 'whole-sequence'} K/V scales)"]
    if causal:
        lines.append(f"{'text':<16} {'tokens':>6} {'loss float':>10} {'engine':>15} {'exact softmax':>15} "
                     f"{'int8 per-tensor':>15} {'top-1 engine':>12} {'clipped K/V':>13}")
        rows = records + [dict(summary(records), text="mean", tokens=math.nan)]
        for r in rows:
            d = {run: r[f"loss_{run}"] - r["loss_float"] for run in RUNS[1:]}
            tok = "" if r is rows[-1] else f"{r['tokens']}"
            lines.append(f"{r['text']:<16} {tok:>6} {r['loss_float']:>10.4f} "
                         + " ".join(f"{r[f'loss_{run}']:>7.4f} ({d[run]:+.4f})".rjust(15) for run in RUNS[1:])
                         + f" {100 * r['top1_engine']:>11.2f}% {100 * r['k_clipped_frac']:>5.3f}/{100 * r['v_clipped_frac']:.3f}%")
        lines.append("loss: mean next-token cross entropy (nats), change against float in brackets; top-1: how often "
                     "the engine's most likely next token is the float model's")
    else:
        lines.append(f"{'text':<16} {'tokens':>6} {'cosine engine':>14} {'exact softmax':>14} {'int8 per-tensor':>16} "
                     f"{'clipped K/V':>13}")
        rows = records + [dict(summary(records), text="mean", tokens=math.nan)]
        for r in rows:
            tok = "" if r is rows[-1] else f"{r['tokens']}"
            lines.append(f"{r['text']:<16} {tok:>6} {r['cosine_engine']:>14.6f} {r['cosine_exact']:>14.6f} "
                         f"{r['cosine_int8']:>16.6f} {100 * r['k_clipped_frac']:>5.3f}/{100 * r['v_clipped_frac']:.3f}%")
        lines.append("cosine: mean-pooled embedding against the float model's")
    return "\n".join(lines)
