"""Yosys (pyosys) synthesises the generated softmax unit."""

from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import estimate


def test_small_softmax_synthesises_and_lanes_save_area():
    base = EngineConfig(rows=2, head_dim=8, max_seq_len=64)
    full = estimate("softmax", base)
    one_lane = estimate("softmax", base.replace(softmax_lanes=1))
    assert full["transistors"] > 10_000 and full["flip_flops"] > 100
    # one exponent lane instead of two: one LUT/shifter pair fewer, a few muxes more
    assert one_lane["transistors"] < full["transistors"]
