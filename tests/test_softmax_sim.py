"""Softmax unit in amaranth.sim: quick bit-exact checks against golden.unit, latency, stalls."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusioncim.core.config import EngineConfig
from fusioncim.golden import softmax as golden
from fusioncim.core.counters import SOFTMAX_COUNTERS as COUNTERS
from fusioncim.hw.softmax import Softmax


def _run(cfg, scores, key_pos, params, *, seed=0, p_valid=1.0, p_ready=1.0):
    dut = Softmax(cfg)
    rng = random.Random(seed)
    outs, final, cycles = [], {}, []
    R = cfg.rows
    cm, cs, qpos, active, causal = params

    async def driver(ctx):
        for r in range(R):
            ctx.set(dut.row_wr.payload, {"row": r, "c_mant": int(cm[r]), "c_shift": int(cs[r]),
                                         "q_pos": int(qpos[r]), "active": int(active[r]), "causal": int(causal[r])})
            ctx.set(dut.row_wr.valid, 1)
            await ctx.tick().until(dut.row_wr.ready)
        ctx.set(dut.row_wr.valid, 0)
        for n in range(scores.shape[1]):
            while rng.random() >= p_valid:
                await ctx.tick()
            ctx.set(dut.s_in.payload, {"scores": [int(x) for x in scores[:, n]], "key_pos": int(key_pos[n])})
            ctx.set(dut.s_in.valid, 1)
            await ctx.tick().until(dut.s_in.ready)
            ctx.set(dut.s_in.valid, 0)
        await ctx.tick().repeat(4 * scores.shape[1] + 20)
        final.update({k: ctx.get(getattr(dut, k)) for k in COUNTERS})
        final["l"] = [ctx.get(dut.l[r]) for r in range(R)]

    async def sink(ctx):
        cycle = 0
        while True:
            ready = rng.random() < p_ready
            ctx.set(dut.p_out.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.p_out.valid, dut.p_out.payload)
            cycle += 1
            if valid and ready:
                cycles.append(cycle)
                outs.append(([int(x) for x in payload.p], [int(x) for x in payload.shift], int(payload.skip),
                             int(payload.key_pos)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=True)
    sim.run()
    final["cycles"] = cycles
    return outs, final


@pytest.mark.parametrize("cfg", [
    EngineConfig(rows=3, head_dim=8, max_seq_len=64),
    EngineConfig(rows=3, head_dim=8, max_seq_len=64, lazy_threshold=1, op_bits_per_cycle=1),
    EngineConfig(rows=3, head_dim=8, max_seq_len=64, tiers=False, skip_threshold=None, key_skip=False),
    EngineConfig(rows=3, head_dim=8, max_seq_len=64, softmax_lanes=2),     # 2 groups, one padded lane
    EngineConfig(rows=3, head_dim=8, max_seq_len=64, softmax_lanes=1),
])
def test_matches_golden_under_stalls(cfg):
    rng = np.random.default_rng(1)
    n = 25
    scores = rng.integers(-3000, 3000, (3, n)) + np.arange(n) * 80     # rising: rescales happen
    key_pos = rng.permutation(n)
    params = (rng.integers(1 << 15, 1 << 16, 3), np.array([14, 15, 17]), np.array([4, 12, 24]),
              np.array([True, True, False]), np.array([True, False, True]))
    outs, final = _run(cfg, scores, key_pos, params, p_valid=0.7, p_ready=0.5)
    want, lsum, counters = golden.unit(scores, key_pos, *params, cfg)
    assert outs == [([int(v) for v in p], [int(v) for v in s], int(k), int(kp))
                    for (p, s, k), kp in zip(want, key_pos)]
    assert final["l"] == lsum.tolist()
    assert {k: final[k] for k in COUNTERS} == counters
    assert counters["rescales"] > 0 and counters["masked_entries"] > 0


def test_latency_and_rate():
    cfg = EngineConfig(rows=2, head_dim=8, max_seq_len=64)
    dut = Softmax(cfg)
    assert dut.latency == 4 and dut.cycles_per_key == 1
    dut._MustUse__silence = True
    # one key per cycle: 10 keys back to back, output always ready -> 10 outputs in consecutive cycles
    scores = np.zeros((2, 10), np.int64)
    params = (np.full(2, 1 << 15), np.full(2, 15), np.full(2, 63), np.ones(2, bool), np.zeros(2, bool))
    outs, final = _run(cfg, scores, np.arange(10), params)
    assert len(outs) == 10 and final["keys"] == 10
    assert np.diff(final["cycles"]).tolist() == [1] * 9
    # R row set-ups take R cycles; the first key is accepted in the next cycle
    assert final["cycles"][0] == 2 + 1 + dut.latency


def test_bad_config():
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        Softmax("default")


def test_fewer_lanes_take_more_cycles():
    cfg = EngineConfig(rows=4, head_dim=8, max_seq_len=64, softmax_lanes=1)
    dut = Softmax(cfg)
    dut._MustUse__silence = True
    assert dut.cycles_per_key == 4 and dut.latency == 7
    scores = np.arange(24).reshape(4, 6) * 100
    params = (np.full(4, 1 << 15), np.full(4, 15), np.full(4, 63), np.ones(4, bool), np.zeros(4, bool))
    outs, final = _run(cfg, scores, np.arange(6), params)
    want, lsum, counters = golden.unit(scores, np.arange(6), *params, cfg)
    assert [o[0] for o in outs] == [[int(v) for v in p] for p, _, _ in want] and final["l"] == lsum.tolist()
    assert np.diff(final["cycles"]).tolist() == [4] * 5
    assert final["cycles"][0] == 4 + 1 + dut.latency


def test_lanes_that_cannot_keep_up_are_rejected():
    # 16 rows on 2 lanes: 8 cycles a key, but the IP-CIM sends one every 4 (8 bits, 2 per cycle).
    with pytest.raises(ValueError, match="softmax_lanes 2 need 8 cycles per key for 16 rows, but the IP-CIM "
                                         "delivers a key every 4 cycles .* needs at least 4 lanes"):
        EngineConfig(rows=16, softmax_lanes=2)
    with pytest.raises(ValueError, match="softmax_lanes must be from 1 to 16, not 17"):
        EngineConfig(rows=16, softmax_lanes=17)


def test_key_offered_with_a_row_setup_waits():
    # Both streams valid in the same cycle: the set-up goes first and the key is
    # taken once, afterwards (a phantom or lost key would break the count).
    cfg = EngineConfig(rows=1, head_dim=8, max_seq_len=64)
    dut = Softmax(cfg)
    seen = []

    async def tb(ctx):
        ctx.set(dut.p_out.ready, 1)
        ctx.set(dut.row_wr.payload, {"row": 0, "c_mant": 1 << 15, "c_shift": 15, "q_pos": 63, "active": 1,
                                     "causal": 0})
        ctx.set(dut.s_in.payload, {"scores": [100], "key_pos": 7})
        ctx.set(dut.row_wr.valid, 1)
        ctx.set(dut.s_in.valid, 1)
        assert not ctx.get(dut.s_in.ready)
        await ctx.tick()
        ctx.set(dut.row_wr.valid, 0)
        await ctx.tick().until(dut.s_in.ready)
        ctx.set(dut.s_in.valid, 0)
        for _ in range(10):
            _, _, valid, payload = await ctx.tick().sample(dut.p_out.valid, dut.p_out.payload)
            if valid:
                seen.append(int(payload.key_pos))
        assert ctx.get(dut.keys) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == [7]
