"""Model-level accuracy: every layer's attention replaced by the engine's numerics (``fusioncim eval-model``).

The model runs through transformers with its attention kernel swapped for one
of ours (transformers' ``AttentionInterface``), so every layer sees the output
the previous layers produced with the same numerics. Four runs per text:

``float``   the model's own kernel (scaled dot-product attention, float32)
``engine``  the front end (per-key, dynamic or static scales) and the golden engine, bit-exact with the RTL
``exact``   the same integer Q, K, V and scores with an exact float softmax
``int8``    plain per-tensor int8 Q, K, V with an exact softmax (whole-sequence scales), for reference

For a causal LM (SmolLM2) it reports each run's next-token loss (mean cross
entropy over the text, nats) and how often its top-1 prediction equals the
float model's; for an encoder (MiniLM) the cosine of the mean-pooled
embedding against float. Needs the optional ``models`` extra.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import heads as accuracy, extract
from ..core.files import data_path
from ..golden import engine
from . import quant

__all__ = ["RUNS", "TEXTS", "evaluate", "format_table"]

RUNS = ("float", "engine", "exact", "int8")
TEXTS = tuple(sorted(data_path("texts").glob("*.txt")))
"""The shipped evaluation texts: our own prose, a few hundred tokens each."""


def _shape(model):
    c = model.config
    heads = c.num_attention_heads
    return {"layers": c.num_hidden_layers, "heads": heads,
            "kv_heads": getattr(c, "num_key_value_heads", None) or heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // heads}


def _bar(total, desc, quiet):
    # A live bar only on a terminal: redirected to a log, its redraws would flood it.
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:        # pragma: no cover - tqdm comes with transformers
        return None
    return tqdm(total=total, desc=desc, unit="layer", file=sys.stderr, leave=False)


MODE_WORDS = {"static": "static (calibrated)", "dynamic": "dynamic (whole-sequence)",
              "per-key": "per-key (each key's own)"}


class Runner:
    """A model with our attention kernel; :meth:`forward` runs it with one of :data:`RUNS`.

    Construction loads the model (offline) and checks the calibration against it.
    """

    def __init__(self, model_name, cfg, *, quant_mode="static", cal=None, rotate=True, v_anchor="sink", quiet=False):
        extract._imports()               # torch and transformers, or one line naming `make models`
        from transformers import AttentionInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        self.run, self.bar, self.clip = "float", None, np.zeros(4, np.int64)
        self.quiet = quiet

        def kernel(module, query, key, value, attention_mask, scaling=None, **kw):
            if self.bar is not None:
                self.bar.update(1)
            if self.run == "float":
                return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kw)
            q, k, v = (t[0].double().numpy() for t in (query, key, value))
            c = cfg.fit(q.shape[2], k.shape[1])
            if self.run == "int8":
                z = quant.quantise(q, k, v, c, scale=scaling, method="per-tensor")
            else:
                stats = self.cal.layer(module.layer_idx) if self.cal is not None and self.quant_mode != "dynamic" \
                    else None
                z = quant.quantise(q, k, v, c, scale=scaling, rotate=rotate, v_anchor=v_anchor, stats=stats,
                                   per_key=self.quant_mode == "per-key")
            if self.run == "engine":
                o = quant.dequantise(engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, c, causal=self.causal,
                                                scales=z.scales).out, z, c)
                self.clip += (z.k_clipped, z.k.size, z.v_clipped, z.v.size)
            else:
                o = accuracy.exact_softmax(z, self.causal, c)
            return self.torch.from_numpy(o).to(query.dtype).transpose(0, 1)[None].contiguous(), None

        # A name of its own: transformers looks the kernel up by name at every call, so two runners in one
        # process must not share one.
        name = f"fusioncim_engine_{id(self):x}"
        AttentionInterface.register(name, kernel)
        self.torch, self.tok, self.model, self.causal, self.source = extract.load_model(model_name, name, quiet=quiet)
        self.name, self.quant_mode, self.cal = model_name, quant_mode, cal
        self.shape = _shape(self.model)
        if cal is not None:
            cal.check(model_name, self.shape["layers"], self.shape["heads"], self.shape["kv_heads"],
                      self.shape["head_dim"])
        self.limit = getattr(self.model.config, "max_position_embeddings", None) or 512

    def forward(self, ids, run, label=""):
        """Logits ``[n, vocab]`` (causal LM) or the mean-pooled embedding (encoder), float64, for ``run``."""
        self.run, self.clip[:] = run, 0
        self.bar = _bar(self.shape["layers"], f"{label} {run:>6}", self.quiet)
        try:
            with self.torch.no_grad():
                res = self.model(**ids)
        finally:
            if self.bar is not None:
                self.bar.close()
            self.bar = None
        return res.logits[0].double() if self.causal else res.last_hidden_state[0].double().mean(0)


def evaluate(model_name, texts, cfg, *, tokens=None, quant_mode="static", cal=None, rotate=True,
             v_anchor="sink", quiet=False):
    """Per-text records (see module docstring) and the model's description.

    ``cal``: a :class:`fusioncim.accuracy.calibration.Calibration`: static mode's ranges, the per-key mode's
    K centre and V shape (optional there)."""
    runner = Runner(model_name, cfg, quant_mode=quant_mode, cal=cal, rotate=rotate, v_anchor=v_anchor, quiet=quiet)
    torch = runner.torch
    tokens = runner.limit if tokens is None else tokens
    if tokens > runner.limit:
        raise extract.ExtractError(f"--tokens {tokens} exceeds {model_name}'s {runner.limit} positions")
    inputs = [(Path(t), extract.read_text(t, model_name, runner.tok, tokens, least=2)) for t in texts]
    records = []
    for path, ids in inputs:
        out = {}
        for run in RUNS:
            out[run] = runner.forward(ids, run, path.name)
            if run == "engine":
                clip = runner.clip.copy()
        rec = {"model": model_name, "text": path.name, "tokens": int(ids["input_ids"].shape[1]),
               "quant": runner.quant_mode,
               "k_clipped_frac": float(clip[0] / clip[1]), "v_clipped_frac": float(clip[2] / clip[3])}
        if runner.causal:
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
    return records, runner.source


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
    mode = records[0]["quant"]
    static = mode != "dynamic"           # clipping is counted where ranges are not the sequence's own
    lines = [f"{source}; {MODE_WORDS[mode]} K/V scales"]
    rows = records + [dict(summary(records), text="mean", tokens=None)]

    def clip(r):
        return f" {100 * r['k_clipped_frac']:>6.3f}/{100 * r['v_clipped_frac']:.3f}%" if static else ""
    clip_head = f" {'clipped K/V':>14}" if static else ""
    if causal:
        lines.append(f"{'text':<14} {'tokens':>6} {'loss float':>10} {'engine':>17} {'exact softmax':>17} "
                     f"{'int8 per-tensor':>17} {'top-1 engine':>12}" + clip_head)
        for r in rows:
            lines.append(f"{r['text']:<14} {r['tokens'] or '':>6} {r['loss_float']:>10.4f} "
                         + " ".join(f"{r[f'loss_{run}']:.4f} ({r[f'loss_{run}'] - r['loss_float']:+.4f})".rjust(17)
                                    for run in RUNS[1:])
                         + f" {100 * r['top1_engine']:>11.2f}%" + clip(r))
        lines.append("loss: mean next-token cross entropy (nats), change against float in brackets; top-1: how "
                     "often the engine's most likely next token is the float model's")
    else:
        lines.append(f"{'text':<14} {'tokens':>6} {'cosine engine':>14} {'exact softmax':>14} {'int8 per-tensor':>16}"
                     + clip_head)
        for r in rows:
            lines.append(f"{r['text']:<14} {r['tokens'] or '':>6} {r['cosine_engine']:>14.6f} {r['cosine_exact']:>14.6f} "
                         f"{r['cosine_int8']:>16.6f}" + clip(r))
        lines.append("cosine: mean-pooled embedding against the float model's")
    if static:
        lines.append("clipped: K and V elements beyond the calibrated range (static) or beyond the exponent "
                     "range (per-key), saturated")
    return "\n".join(lines)
