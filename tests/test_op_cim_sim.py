"""OP-CIM in amaranth.sim: quick checks of updates, normalisation, rates and errors."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusioncim.core.config import EngineConfig
from fusioncim.golden import op_cim as golden
from fusioncim.hw.op_cim import OpCim
from fusioncim.core.schedule import norm_cycles


def _run(cfg, keys, l, n_rows=None, after=()):
    """Keys, the end of the tile, then the keys ``after`` (the next tile); rows out and their cycles."""
    dut = OpCim(cfg)
    rows, cycles, key_cycles = [], [], []

    async def send(ctx, batch):
        for p, shift, skip, v in batch:
            ctx.set(dut.kv_in.payload, {"p": [int(x) for x in p], "shift": [int(x) for x in shift],
                                        "skip": int(skip), "v": [int(x) for x in v]})
            ctx.set(dut.kv_in.valid, 1)
            await ctx.tick().until(dut.kv_in.ready)
            key_cycles.append(now[0])
        ctx.set(dut.kv_in.valid, 0)

    now = [0]                               # cycle count, kept by the sink

    async def driver(ctx):
        await send(ctx, keys)
        ctx.set(dut.norm_in.payload, {"l": [int(x) for x in l], "n_rows": cfg.rows if n_rows is None else n_rows})
        ctx.set(dut.norm_in.valid, 1)
        await ctx.tick().until(dut.norm_in.ready)
        ctx.set(dut.norm_in.valid, 0)
        key_cycles.clear()
        await send(ctx, after)
        await ctx.tick().repeat(norm_cycles(cfg, cfg.rows) + 10)



    async def sink(ctx):
        ctx.set(dut.o_out.ready, 1)
        c = 0
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.o_out.valid, dut.o_out.payload)
            c += 1
            now[0] = c
            if valid:
                rows.append((int(payload.row), [int(x) for x in payload.o]))
                cycles.append(c)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=True)
    sim.run()
    return rows, cycles, key_cycles


def _golden(cfg, keys, l):
    O = np.zeros((cfg.rows, cfg.head_dim), np.int64)
    lsum = np.zeros(cfg.rows, np.int64)
    for p, shift, skip, v in keys:
        if not skip:
            O, lsum = golden.update(O, lsum, p, shift, v)
    return golden.normalise(O, l, out_frac_bits=cfg.out_frac_bits, out_bits=cfg.out_bits)


@pytest.mark.parametrize("bpc, lanes", [(1, 1), (3, 1), (12, 1), (3, 2), (4, 3)])
def test_matches_golden(bpc, lanes):
    cfg = EngineConfig(rows=3, head_dim=4, max_seq_len=64, op_bits_per_cycle=bpc, norm_lanes=lanes)
    rng = np.random.default_rng(bpc)
    keys = []
    for _ in range(10):
        skip = rng.random() < 0.2
        p = np.zeros(3, np.int64) if skip else rng.integers(0, 4096, 3)
        shift = np.zeros(3, np.int64) if skip else (rng.random(3) < 0.3) * rng.integers(1, 5, 3)
        keys.append((p, shift, skip, rng.integers(-128, 128, 4)))
    l = np.array([0, 7, 9000])                  # l = 0 gives 0; small l saturates; a large one does not
    rows, cycles, _ = _run(cfg, keys, l)
    want = _golden(cfg, keys, l)
    assert rows == [(r, want[r].tolist()) for r in range(3)]
    # Rows of one group leave on consecutive cycles; the next group's load, out_bits + 1 quotient
    # bits and round come between groups (docs/numerics.md section 7).
    between = 1 + (cfg.out_bits + 1) + 1 + 1
    assert np.diff(cycles).tolist() == [1 if (r + 1) % lanes else between for r in range(2)]


def test_skipped_and_rescaled_keys():
    # (the rates are measured cycle by cycle in tb/op_cim_tests.py::throughput)
    cfg = EngineConfig(rows=2, head_dim=2, max_seq_len=64, op_bits_per_cycle=4)
    one = np.ones(2, np.int64)
    zero = np.zeros(2, np.int64)
    v = np.array([5, -5])
    keys = [(one * 100, zero, False, v)] * 4 + [(zero, zero, True, v)] * 3 + [(one, one, False, v)] * 3
    rows, _, _ = _run(cfg, keys, np.array([300, 300]))
    want = _golden(cfg, keys, np.array([300, 300]))
    assert rows == [(r, want[r].tolist()) for r in range(2)]


def test_bad_config():
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        OpCim(None)
    with pytest.raises(ValueError, match="op_bits_per_cycle 5 must divide the probability width p_bits 12"):
        OpCim(EngineConfig(op_bits_per_cycle=5))
    with pytest.raises(ValueError, match="acc_bits 20 cannot hold"):
        OpCim(EngineConfig(acc_bits=20))


def test_divider_saturates_and_rounds_half_away():
    # By hand (4 fraction bits, 12-bit output): O = 7, l = 2 -> 3.5 * 16 = 56;
    # O = -1, l = 32 -> -0.5 -> -1 (half away from zero); O = +-4095, l = 1 ->
    # beyond 12 bits -> 2047 / -2048.
    cfg = EngineConfig(rows=4, head_dim=1, max_seq_len=64, op_bits_per_cycle=12)
    keys = [(np.array([7, 1, 4095, 4095]), np.zeros(4, np.int64), False, np.array([1]))]
    rows, _, _ = _run(cfg, keys, np.array([2, 7, 1, 1]))
    assert rows[0] == (0, [56]) and rows[1] == (1, [2])       # 1/7 * 16 = 2.29 -> 2
    assert rows[2] == (2, [2047]) and rows[3] == (3, [2047])
    keys = [(np.array([1, 1, 4095, 4095]), np.zeros(4, np.int64), False, np.array([-1]))]
    rows, _, _ = _run(cfg, keys, np.array([32, 2, 1, 3000]))
    assert [r[1][0] for r in rows] == [-1, -8, -2048, -22]    # -4095/3000*16 = -21.84 -> -22


@pytest.mark.parametrize("double_buffer", [True, False])
def test_next_tile_overlaps_division_only_when_double_buffered(double_buffer):
    cfg = EngineConfig(rows=3, head_dim=2, max_seq_len=64, op_bits_per_cycle=4, double_buffer=double_buffer)
    one = np.ones(3, np.int64)
    zero = np.zeros(3, np.int64)
    v = np.array([3, -7])
    keys = [(one * 50, zero, False, v)] * 3
    rows, cycles, after = _run(cfg, keys, np.array([150, 150, 150]), n_rows=2, after=keys)
    want = _golden(cfg, keys, np.array([150, 150, 150]))
    assert rows == [(r, want[r].tolist()) for r in range(2)]      # n_rows = 2: two rows out
    if double_buffer:
        # The next tile's keys go in back to back while the rows are divided.
        assert after[-1] < cycles[0]
    else:
        assert after[0] >= cycles[-1]           # not before the last row has left
