"""Yosys (pyosys) synthesises the whole engine; the KV buffer stays SRAM; double buffering costs its flops."""

import pytest

from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import estimate

SMALL = EngineConfig(rows=2, head_dim=4, max_seq_len=64, kv_depth=16, sink_keys=2, diag_window=4)


@pytest.mark.slow
def test_engine_synthesises_with_the_kv_buffer_as_sram():
    db = estimate("engine", SMALL)
    single = estimate("engine", SMALL.replace(double_buffer=False))
    for r in (db, single):
        assert r["transistors"] > 20_000 and r["lower_bound"]
        assert r["sram_cells"] == 2                                  # K and V, not mapped to gates
        assert r["sram_bits"] == 2 * 16 * 4 * 8                      # depth x head_dim x data_bits, twice
    # The second bank of O registers: rows x head_dim x acc_width flip-flops, nothing else.
    assert db["flip_flops"] - single["flip_flops"] == SMALL.rows * SMALL.head_dim * SMALL.acc_width
