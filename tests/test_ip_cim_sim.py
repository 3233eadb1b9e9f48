"""IP-CIM in amaranth.sim: quick checks of numbers, handshakes, latency and throughput."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusioncim.core.config import EngineConfig
from fusioncim.golden import ip_cim as golden
from fusioncim.hw.ip_cim import IpCim


def _simulate(cfg, ops, *, seed=0, p_valid=1.0, p_ready=1.0, extra_cycles=40):
    """Drive ``ops`` (("q", row, values) or ("k", values)) in order; return [(cycle, scores)] and the DUT."""
    dut = IpCim(cfg)
    rng = random.Random(seed)
    outputs = []
    cycle = [0]

    async def driver(ctx):
        for op in ops:
            while rng.random() >= p_valid:
                await ctx.tick()
            if op[0] == "q":
                port, value = dut.q_wr, {"row": op[1], "data": [int(x) for x in op[2]]}
            else:
                port, value = dut.k, [int(x) for x in op[1]]
            ctx.set(port.payload, value)
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def sink(ctx):
        while True:
            ready = rng.random() < p_ready
            ctx.set(dut.s.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.s.valid, dut.s.payload)
            cycle[0] += 1
            if valid and ready:
                outputs.append((cycle[0], [int(x) for x in payload]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=True)

    async def tail(ctx):
        await ctx.tick().repeat(len(ops) * (cfg.ip_cycles_per_key + 2) * 8 + extra_cycles)
    sim.add_testbench(tail)
    sim.run()
    return outputs, dut


def _expected(cfg, ops):
    q = np.zeros((cfg.rows, cfg.head_dim), np.int64)
    want = []
    for op in ops:
        if op[0] == "q":
            q[op[1]] = op[2]
        else:
            want.append(golden.scores(q, np.asarray(op[1])[None, :])[:, 0].tolist())
    return want


@pytest.mark.parametrize("bpc", [1, 2, 4, 8])
def test_random_with_stalls(bpc):
    cfg = EngineConfig(rows=3, head_dim=8, ip_bits_per_cycle=bpc)
    rng = np.random.default_rng(bpc)
    ops = [("q", r, rng.integers(-128, 128, 8)) for r in range(3)]
    for _ in range(12):
        if rng.random() < 0.3:
            ops.append(("q", int(rng.integers(3)), rng.integers(-128, 128, 8)))
        ops.append(("k", rng.integers(-128, 128, 8)))
    got, _ = _simulate(cfg, ops, seed=bpc, p_valid=0.7, p_ready=0.5)
    assert [s for _, s in got] == _expected(cfg, ops)


@pytest.mark.parametrize("bpc", [1, 2, 8])
def test_latency_and_back_to_back_throughput(bpc):
    cfg = EngineConfig(rows=2, head_dim=4, ip_bits_per_cycle=bpc)
    rng = np.random.default_rng(0)
    ops = [("q", 0, rng.integers(-128, 128, 4)), ("q", 1, rng.integers(-128, 128, 4))]
    ops += [("k", rng.integers(-128, 128, 4)) for _ in range(10)]
    got, dut = _simulate(cfg, ops)
    assert [s for _, s in got] == _expected(cfg, ops)
    cycles = np.array([c for c, _ in got])
    assert (np.diff(cycles) == cfg.ip_cycles_per_key).all()
    assert dut.cycles_per_key == 8 // bpc and dut.latency == dut.cycles_per_key + 1
    # 2 Q writes, then the first key is accepted in cycle 3 and leaves `latency` cycles later.
    assert cycles[0] == 2 + 1 + dut.latency


def test_write_waits_for_the_key_in_flight():
    cfg = EngineConfig(rows=1, head_dim=2, ip_bits_per_cycle=1)
    ops = [("q", 0, [1, 1]), ("k", [3, 4]), ("q", 0, [2, 2]), ("k", [3, 4])]
    got, _ = _simulate(cfg, ops)
    assert [s for _, s in got] == [[7], [14]]      # by hand: 1*3 + 1*4, then 2*3 + 2*4


def test_bad_config():
    with pytest.raises(TypeError, match="config must be an EngineConfig, not 3"):
        IpCim(3)
    with pytest.raises(ValueError, match="ip_bits_per_cycle 3 must divide data_bits 8"):
        IpCim(EngineConfig(ip_bits_per_cycle=3))
