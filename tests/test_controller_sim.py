"""The controller in amaranth.sim: the key order it issues equals core.schedule.key_order for every case."""

import itertools

import pytest
from amaranth.sim import Simulator

from fusioncim.core.config import PRESETS
from fusioncim.core import schedule
from fusioncim.hw.controller import Controller


def _issued(cfg, tiles):
    """Run tiles ``(n_keys, positions, pattern)`` through the controller; the keys it issues per tile."""
    dut = Controller(cfg)
    out = []

    async def host(ctx):
        ctx.set(dut.q_wr.ready, 1)
        ctx.set(dut.row_wr.ready, 1)
        ctx.set(dut.key.ready, 1)
        ctx.set(dut.drained, 1)
        ctx.set(dut.op_free, 1)
        ctx.set(dut.norm.ready, 1)
        for n, pos, pattern in tiles:
            ctx.set(dut.cmd.payload, {"n_keys": n, "n_rows": len(pos), "causal": 1, "pattern": pattern})
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            for p in pos:
                ctx.set(dut.q_in.payload, {"q": [0] * cfg.head_dim, "pos": p, "c_mant": 0, "c_shift": 0})
                ctx.set(dut.q_in.valid, 1)
                await ctx.tick().until(dut.q_in.ready)
            ctx.set(dut.q_in.valid, 0)
            keys = []
            while True:
                _, _, kv, kp, nv = await ctx.tick().sample(dut.key.valid, dut.key.payload.pos, dut.norm.valid)
                if kv:
                    keys.append(int(kp))
                if nv:
                    break
            out.append(keys)
            assert ctx.get(dut.err) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.run()
    return out


@pytest.mark.parametrize("sink,window", [(2, 3), (0, 4), (3, 0), (4, 32)])
def test_key_order_matches_golden(sink, window):
    cfg = PRESETS["test"].replace(sink_keys=sink, diag_window=window, kv_depth=40)
    tiles, want = [], []
    for n, hi in itertools.product([1, 2, 3, 5, 9, 40], [0, 1, 4, 8, 39]):
        for pattern in (True, False):
            pos = [max(0, hi - 2), hi][: cfg.rows]
            tiles.append((n, pos, int(pattern)))
            c = cfg.replace(key_order="pattern" if pattern else "sequential")
            want.append(schedule.key_order(n, max(pos), c).tolist())
    assert _issued(cfg, tiles) == want
