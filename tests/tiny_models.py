"""Tiny randomly initialised transformers for the model commands' tests, built from configs: nothing
downloaded, a few seconds to build and run.

``tiny-llama``: LLaMA-style causal LM with grouped-query attention (4 query heads over 2 KV heads,
head_dim 8, RoPE) and no special tokens, like SmolLM2. ``tiny-bert``: BERT-style encoder (4 heads,
head_dim 8) whose tokenizer puts ``[CLS]`` and ``[SEP]`` around a text, like MiniLM. Both tokenizers
are word-level over the words of the shipped texts. :func:`register` adds them to the commands' model
registry (:func:`fusioncim.accuracy.extract.register_model`).
"""

from __future__ import annotations

import re

from fusioncim.core.files import data_path

LAYERS, HEADS, KV_HEADS, HEAD_DIM = 2, 4, 2, 8


def _words():
    files = [data_path("passage.txt"), *sorted(data_path("texts").glob("*.txt"))]
    return sorted({w for f in files for w in re.findall(r"\w+|[^\w\s]", f.read_text(encoding="utf-8"))})


def _tokenizer(special):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    names = ["[UNK]", "[PAD]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(names + _words())}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if special:
        tk.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                  **({"cls_token": "[CLS]", "sep_token": "[SEP]"} if special else {}))
    return tok, len(vocab)


def tiny_llama(torch, tf, attn):
    tok, vocab = _tokenizer(special=False)
    torch.manual_seed(1)
    cfg = tf.LlamaConfig(vocab_size=vocab, hidden_size=HEADS * HEAD_DIM, intermediate_size=64,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                         head_dim=HEAD_DIM, max_position_embeddings=256, attn_implementation=attn)
    return tok, tf.LlamaForCausalLM(cfg), True, "tiny-llama (random, tests/tiny_models.py)"


def tiny_bert(torch, tf, attn):
    tok, vocab = _tokenizer(special=True)
    torch.manual_seed(2)
    cfg = tf.BertConfig(vocab_size=vocab, hidden_size=HEADS * HEAD_DIM, intermediate_size=64,
                        num_hidden_layers=LAYERS, num_attention_heads=HEADS, max_position_embeddings=128,
                        attn_implementation=attn)
    return tok, tf.BertModel(cfg, add_pooling_layer=False), False, "tiny-bert (random, tests/tiny_models.py)"


MODELS = {"tiny-llama": tiny_llama, "tiny-bert": tiny_bert}


def register(monkeypatch):
    """Add the tiny models to the model registry for one test (``monkeypatch`` undoes it)."""
    from fusioncim.accuracy import extract
    for name, loader in MODELS.items():
        monkeypatch.setitem(extract.MODELS, name, loader)
