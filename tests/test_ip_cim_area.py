"""Yosys (pyosys) synthesises the generated IP-CIM; the transistor estimate is sane."""

from pathlib import Path

import pytest

from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import AreaError, LibertyError, estimate, parse_stat


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
                                "cells": {"$_AND_": 2, "$_DFF_P_": 1}, "sram_cells": 0, "modules": {}}
    assert parse_stat(text + "     2   $__fusioncim_sram\n")["sram_cells"] == 2
    with pytest.raises(AreaError, match="no transistor estimate"):
        parse_stat("nothing here")


TOY = Path(__file__).with_name("data") / "toy.lib"


def test_liberty_area_is_the_sum_of_mapped_cells():
    cfg = EngineConfig(rows=1, head_dim=8, ip_bits_per_cycle=2)
    r = estimate("ip_cim", cfg, liberty=TOY)
    cells = r["lib_cells"]
    assert set(cells) <= {"BUF", "INV", "NAND2", "NOR2", "DFF"}
    # the areas written in tests/data/toy.lib
    by_hand = 1.0 * cells.get("BUF", 0) + 1.0 * cells.get("INV", 0) + 1.5 * (cells.get("NAND2", 0)
                                                                            + cells.get("NOR2", 0)) + 6.0 * cells["DFF"]
    assert r["area_um2"] == pytest.approx(by_hand)
    assert cells["DFF"] == r["flip_flops"]


def test_results_are_cached_by_design(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    cfg = EngineConfig(rows=1, head_dim=4, ip_bits_per_cycle=2)
    first = estimate("ip_cim", cfg)
    again = estimate("ip_cim", cfg)
    assert not first["cached"] and again["cached"]
    assert {k: v for k, v in again.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}
    other = estimate("ip_cim", cfg.replace(rows=2))
    assert not other["cached"]
    assert len(list((tmp_path / "area").glob("ip_cim-*.json"))) == 2
    with pytest.raises(LibertyError, match="cannot read liberty file"):
        estimate("ip_cim", cfg, liberty=tmp_path / "none.lib")
