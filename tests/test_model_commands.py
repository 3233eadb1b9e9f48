"""`extract`, `calibrate` and `eval-model` end to end on tiny random models (tests/tiny_models.py): a
LLaMA-style causal LM with grouped-query attention and a BERT-style encoder, served through the
commands' model registry (``extract.register_model``), so the regression reaches every command without
the real models' extra. Expected values come from the models themselves (stock attention) and numpy."""

import json

import numpy as np
import pytest

import tiny_models
from fusioncim.accuracy import attnfile, calibration, extract
from fusioncim.cli import main
from fusioncim.core.files import data_path
from fusioncim.golden import reference

PASSAGE = data_path("passage.txt")
SHAPES = {"tiny-llama": (tiny_models.HEADS, tiny_models.KV_HEADS, True),
          "tiny-bert": (tiny_models.HEADS, tiny_models.HEADS, False)}


@pytest.fixture(autouse=True)
def tiny(monkeypatch):
    tiny_models.register(monkeypatch)


def _stock(name):
    """The model with its own attention (sdpa), its tokenizer, and torch."""
    torch, tok, model, _, _ = extract.load_model(name, "sdpa", quiet=True)
    return torch, tok, model


@pytest.mark.parametrize("name", list(SHAPES))
def test_extract_writes_every_layer_as_the_model_attends(tmp_path, name, capsys):
    heads, kv_heads, causal = SHAPES[name]
    assert main(["extract", name, "--out", str(tmp_path), "--tokens", "24", "-q"]) == 0
    files = sorted(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == [f"{name}-L{i:02d}-T24.npz" for i in range(tiny_models.LAYERS)]
    assert capsys.readouterr().out.split() == [str(f) for f in files]
    for f in files:
        a = attnfile.load(f)
        d = tiny_models.HEAD_DIM
        assert (a.q.shape, a.k.shape, a.v.shape, a.causal) == ((heads, 24, d), (kv_heads, 24, d), (kv_heads, 24, d),
                                                               causal)
        assert a.scale == pytest.approx(d ** -0.5)
        # The captured output is the attention of the captured Q, K, V (GQA included).
        ref = reference.attention(a.q, a.k, a.v, causal=a.causal, scale=a.scale)
        assert reference.metrics(ref, a.out)["rel_l2"].max() < 1e-5
    if name == "tiny-bert":
        # Layer 0's Q and K from the model's own weights: the embeddings through the query and key maps.
        torch, tok, model = _stock(name)
        ids = extract.read_text(PASSAGE, name, tok, 24)
        with torch.no_grad():
            h = model.embeddings(input_ids=ids["input_ids"])[0]
            att = model.encoder.layer[0].attention.self
            q = att.query(h).reshape(24, heads, -1).transpose(0, 1).double().numpy()
            k = att.key(h).reshape(24, heads, -1).transpose(0, 1).double().numpy()
        a = attnfile.load(files[0])
        np.testing.assert_allclose(a.q, q, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.k, k, rtol=1e-6, atol=1e-6)


def test_calibrate_measures_the_models_k_and_v(tmp_path, capsys):
    # One window of the passage's first 40 tokens (tiny-llama adds no special tokens): the ranges must
    # be exactly those of the K and V `extract` captures from the same 40 tokens.
    name = "tiny-llama"
    out = tmp_path / "cal.npz"
    assert main(["calibrate", name, "--text", str(PASSAGE), "--tokens", "40", "--window", "40", "--out", str(out),
                 "--headroom", "1.5", "-q"]) == 0
    said = capsys.readouterr()
    assert said.out.startswith(f"{out}: {name}, 2 layers, 4 query heads, 2 KV heads, head_dim 8; "
                               f"calibrated on 40 tokens (")
    # 40 tokens is far below what held-out accuracy needs (calibration.MIN_TOKENS): said, once, on stderr.
    assert said.err.count("warning") == 1 and "only 40 calibration tokens; below 1,024" in said.err
    cal = calibration.load(out)
    assert (cal.model, cal.heads, cal.tokens, cal.headroom, len(cal.layers)) == (name, 4, 40, 1.5, 2)
    assert main(["extract", name, "--out", str(tmp_path / "x"), "--tokens", "40", "-q"]) == 0
    for i, st in enumerate(cal.layers):
        a = attnfile.load(tmp_path / "x" / f"{name}-L{i:02d}-T40.npz")
        k, v = a.k.astype(np.float64), a.v.astype(np.float64)      # float32 on file, each value exact
        np.testing.assert_array_equal(st.k_min, k.min(axis=1))
        np.testing.assert_array_equal(st.k_max, k.max(axis=1))
        np.testing.assert_array_equal(st.v_min, v[:, 1:].min(axis=1))   # the sink key left out
        np.testing.assert_array_equal(st.v_max, v[:, 1:].max(axis=1))
        mean = v.mean(axis=1)
        np.testing.assert_allclose(st.v_mean, mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(st.v_amax_mean, np.abs(v - mean[:, None]).max(axis=1), rtol=1e-12, atol=1e-15)


def test_calibrate_windows_each_start_from_position_zero(tmp_path):
    # tiny-bert: [CLS] and [SEP] around every window, so 18 tokens of text per 20-token window; 36 tokens
    # make two windows, the statistics their union.
    out = tmp_path / "cal.npz"
    assert main(["calibrate", "tiny-bert", "--text", str(PASSAGE), "--tokens", "36", "--window", "20",
                 "--out", str(out), "-q"]) == 0
    cal = calibration.load(out)
    assert (cal.heads, cal.kv_heads, cal.head_dim, cal.tokens) == (4, 4, 8, 40)
    assert "windows of 20" in cal.source


@pytest.mark.parametrize("name", list(SHAPES))
def test_eval_model_float_run_is_the_models_own(tmp_path, name, capsys):
    cal = tmp_path / "cal.npz"
    assert main(["calibrate", name, "--text", str(PASSAGE), "--tokens", "64", "--window", "64", "--out", str(cal),
                 "-q"]) == 0
    text = data_path("texts") / "orbit.txt"
    capsys.readouterr()
    assert main(["eval-model", name, "--text", str(text), "--tokens", "32", "--calibration", str(cal),
                 "--config", "test", "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (rec,) = doc["texts"]
    assert (rec["model"], rec["text"], rec["tokens"], rec["quant"]) == (name, "orbit.txt", 32, "static")
    assert 0 <= rec["k_clipped_frac"] <= 1 and 0 <= rec["v_clipped_frac"] <= 1
    torch, tok, model = _stock(name)
    ids = extract.read_text(text, name, tok, 32)
    with torch.no_grad():
        res = model(**ids)
    if SHAPES[name][2]:
        # Next-token loss of the stock model, by hand; the engine's numerics stay close on a random model.
        logits = res.logits[0].double()
        want = float(torch.nn.functional.cross_entropy(logits[:-1], ids["input_ids"][0, 1:]))
        assert rec["loss_float"] == pytest.approx(want, rel=1e-9)
        for run in ("engine", "exact", "int8"):
            assert abs(rec[f"loss_{run}"] - want) < 0.05 * want and 0 <= rec[f"top1_{run}"] <= 1
    else:
        for run in ("engine", "exact", "int8"):
            assert 0.99 < rec[f"cosine_{run}"] <= 1 + 1e-12
    assert doc["mean"]["k_clipped_frac"] == rec["k_clipped_frac"]


def test_model_mistakes_are_one_line(tmp_path, capsys):
    cal = tmp_path / "bert.npz"
    assert main(["calibrate", "tiny-bert", "--text", str(PASSAGE), "--tokens", "30", "--window", "32",
                 "--out", str(cal), "-q"]) == 0
    capsys.readouterr()
    # A calibration made for another model.
    assert main(["eval-model", "tiny-llama", "--calibration", str(cal), "--tokens", "8", "-q"]) == 2
    err = capsys.readouterr().err
    assert "is for model 'tiny-bert', not 'tiny-llama'" in err and err.count("\n") == 1
    # More tokens than the model has positions.
    assert main(["eval-model", "tiny-bert", "--calibration", str(cal), "--tokens", "4000", "-q"]) == 2
    assert "exceeds tiny-bert's 128 positions" in capsys.readouterr().err
    # A layer the model does not have: nothing written.
    assert main(["extract", "tiny-llama", "--out", str(tmp_path / "o"), "--tokens", "8", "--layers", "0,2", "-q"]) == 2
    assert "layer 2 does not exist; tiny-llama has layers 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # A model nobody registered: argparse's own usage error.
    with pytest.raises(SystemExit) as e:
        main(["extract", "tiny-gpt", "--out", str(tmp_path / "p")])
    assert e.value.code == 2 and "invalid choice: 'tiny-gpt'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["calibrate", "eval-model"])
@pytest.mark.parametrize("text, message", [("missing.txt", "cannot be read (No such file or directory)"),
                                           ("empty.txt", "is empty; give a text with words in it"),
                                           ("binary.txt", "cannot be read (not UTF-8 text)")])
def test_texts_are_checked_before_the_model_loads(tmp_path, monkeypatch, capsys, command, text, message):
    # Issue 31, item 6: a bad --text is refused before the model loads (the real ones take half a minute).
    def never(torch, tf, attn):
        raise AssertionError("the model was loaded before the texts were checked")
    monkeypatch.setitem(extract.MODELS, "never", never)
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00text")
    path = tmp_path / text
    args = {"calibrate": ["calibrate", "never", "--text", str(path), "--out", str(tmp_path / "c.npz")],
            "eval-model": ["eval-model", "never", "--text", str(path), "--quant", "dynamic"]}[command]
    assert main([*args, "-q"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"fusioncim: error: --text {str(path)!r} {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.txt", "empty.txt"]


def test_eval_model_log_has_no_progress_bars(tmp_path, capsys):
    # Issue 31, item 9: with stderr not a terminal (a log), no per-layer bars, just the status lines.
    assert main(["eval-model", "tiny-bert", "--quant", "dynamic", "--text", str(PASSAGE), "--tokens", "16"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "layer/s" not in err and len(err.splitlines()) <= 3, err


def test_calibrate_on_enough_tokens_gives_no_warning(tmp_path, capsys):
    from fusioncim.core.files import data_path
    out = tmp_path / "cal.npz"
    n = calibration.MIN_TOKENS
    assert main(["calibrate", "tiny-llama", "--text", str(data_path("long.txt")), "--tokens", str(n),
                 "--out", str(out), "-q"]) == 0
    said = capsys.readouterr()
    assert f"calibrated on {n:,} tokens" in said.out and said.err == ""
    assert calibration.load(out).tokens == n
