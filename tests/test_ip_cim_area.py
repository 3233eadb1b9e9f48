"""Yosys (pyosys) synthesises the generated IP-CIM; the transistor estimate is sane."""

import pytest

from fusioncim.config import EngineConfig
from fusioncim.synth.area import AreaError, estimate, parse_stat


def test_small_configs_synthesise_and_scale():
    one = estimate("ip_cim", EngineConfig(rows=1, head_dim=8, ip_bits_per_cycle=2))
    two = estimate("ip_cim", EngineConfig(rows=2, head_dim=8, ip_bits_per_cycle=2))
    assert one["transistors"] > 1000 and one["lower_bound"]
    # a second row adds its adder tree, multipliers and Q storage: close to double, never less
    assert 1.5 < two["transistors"] / one["transistors"] < 2.2
    # flops: Q storage (rows * d * 8) + key register (d * 8) + accumulators and outputs
    assert two["flip_flops"] - one["flip_flops"] >= 8 * 8


def test_parse_stat_by_hand():
    text = "   Number of cells: 3\n     2   $_AND_\n     1   $_DFF_P_\n   Estimated number of transistors:   12+\n"
    assert parse_stat(text) == {"transistors": 12, "lower_bound": True, "flip_flops": 1,
                                "cells": {"$_AND_": 2, "$_DFF_P_": 1}, "sram_cells": 0}
    assert parse_stat(text + "     2   $__fusioncim_sram\n")["sram_cells"] == 2
    with pytest.raises(AreaError, match="no transistor estimate"):
        parse_stat("nothing here")
