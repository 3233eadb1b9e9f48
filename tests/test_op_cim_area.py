"""Yosys (pyosys) synthesises the generated OP-CIM macro and normaliser."""

from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import estimate


def test_small_op_cim_synthesises_and_scales_with_rows():
    one = estimate("op_cim", EngineConfig(rows=1, head_dim=2, max_seq_len=64))
    two = estimate("op_cim", EngineConfig(rows=2, head_dim=2, max_seq_len=64))
    assert one["transistors"] > 5_000 and one["lower_bound"]
    # a second row adds its accumulators and MAC cells; the dividers are shared
    assert one["transistors"] < two["transistors"] < 2 * one["transistors"]
    assert two["flip_flops"] - one["flip_flops"] >= 2 * EngineConfig(max_seq_len=64).acc_width
