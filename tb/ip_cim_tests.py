"""cocotb tests of the generated IP-CIM Verilog against ``fusioncim.golden.ip_cim``.

Run through ``tests/test_ip_cim_rtl.py`` (cocotb_tools.runner, Verilator and
Icarus). Knobs, from the environment:

``FUSIONCIM_CONFIG``   the EngineConfig as JSON (required)
``FUSIONCIM_SEED``     seed of every random choice (logged)
``FUSIONCIM_KEYS``     keys per random test (run length)
``FUSIONCIM_RESULTS``  where the throughput test writes its measured figures (JSON)
"""

from __future__ import annotations

import itertools
import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ..golden import ip_cim as golden
from ..hw.common import data_row
from ..hw.ip_cim import q_wr_layout, scores_layout

from . import common
from .streams import Scoreboard, StreamSink, StreamSource, decode, random_pattern


class IpCimTB(common.BlockTB):
    """Clock, reset, Q writes, key stream and a scoreboard fed by the golden model."""

    def __init__(self, dut, *, idle=None, backpressure=None):
        super().__init__(dut)
        cfg = self.cfg
        self.log.info("seed %d, config rows=%d head_dim=%d bits_per_cycle=%d", self.seed, cfg.rows,
                      cfg.head_dim, cfg.ip_bits_per_cycle)
        self.q = np.zeros((cfg.rows, cfg.head_dim), np.int64)
        self.q_src = StreamSource(dut, "q_wr", dut.clk, idle, q_wr_layout(cfg))
        self.k_src = StreamSource(dut, "k", dut.clk, idle, data_row(cfg))
        self.scores = Scoreboard(self.log, "scores")
        self.out_cycles = []
        self.s_sink = StreamSink(dut, "s", dut.clk, self._on_scores, backpressure, scores_layout(cfg))
        dut.q_rd_row.value = 0

    def _on_scores(self, cycle, scores):
        self.out_cycles.append(cycle)
        self.scores.observe(scores)

    async def write_q(self, row, values):
        await self.q_src.send({"row": row, "data": values})
        self.q[row] = values

    async def send_key(self, key):
        self.scores.expect([int(x) for x in golden.scores(self.q, np.asarray(key)[None, :])[:, 0]])
        await self.k_src.send(key)

    async def finish(self, timeout_cycles=None):
        """Wait until every expected output arrived (or time out), then check everything."""
        limit = timeout_cycles or 50 * (self.cfg.ip_cycles_per_key + 2) * (len(self.scores.expected) + 4)
        for _ in range(limit):
            if not self.scores.expected:
                break
            await RisingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, 2 * self.cfg.ip_cycles_per_key + 4)   # nothing extra may appear
        self.scores.check()
        assert self.dut.busy.value == 0, "datapath still busy with nothing in flight"

    def random_rows(self, n):
        return self.rng.integers(self.cfg.data_min, self.cfg.data_max + 1, (n, self.cfg.head_dim))

    async def load_random_tile(self):
        """Write random values into every Q row; returns them."""
        rows = self.random_rows(self.cfg.rows)
        for r, row in enumerate(rows):
            await self.write_q(r, row)
        return rows




@cocotb.test()
async def random_data_with_stalls(dut):
    """Random Q tile and keys; random gaps on the inputs and stalls on the output."""
    rng = random.Random(common.seed() ^ 0x5EED)
    tb = await IpCimTB.start(dut, idle=random_pattern(rng, 0.7), backpressure=random_pattern(rng, 0.6))
    await tb.load_random_tile()
    for key in tb.random_rows(common.keys()):
        await tb.send_key(key)
    await tb.finish()


@cocotb.test()
async def extreme_values(dut):
    """-128 everywhere, +127 everywhere and alternating patterns, in Q and in K."""
    tb = await IpCimTB.start(dut, backpressure=(bool(x) for x in itertools.cycle([1, 1, 0])))
    cfg = tb.cfg
    d = cfg.head_dim
    lo, hi = cfg.data_min, cfg.data_max
    alt = np.where(np.arange(d) % 2, hi, lo)
    patterns = [np.full(d, lo), np.full(d, hi), alt, alt[::-1].copy(), np.zeros(d, np.int64)]
    for qp in patterns:
        for r in range(cfg.rows):
            await tb.write_q(r, qp if r % 2 == 0 else patterns[(r // 2) % len(patterns)])
        for kp in patterns:
            await tb.send_key(kp)
    await tb.finish()


@cocotb.test()
async def reload_between_keys(dut):
    """Q rows rewritten between keys, in random order, under random stalls: each key sees the writes before it."""
    rng = random.Random(common.seed() ^ 0xBEEF)
    tb = await IpCimTB.start(dut, idle=random_pattern(rng, 0.8), backpressure=random_pattern(rng, 0.5))
    await tb.load_random_tile()
    for _ in range(common.keys()):
        if rng.random() < 0.4:
            for _ in range(rng.randint(1, tb.cfg.rows)):
                await tb.write_q(rng.randrange(tb.cfg.rows), tb.random_rows(1)[0])
        await tb.send_key(tb.random_rows(1)[0])
    await tb.finish()


@cocotb.test()
async def read_back(dut):
    """Every written Q row reads back unchanged."""
    tb = await IpCimTB.start(dut)
    rows = await tb.load_random_tile()
    for r in range(tb.cfg.rows):
        dut.q_rd_row.value = r
        await ReadOnly()
        got = decode(data_row(tb.cfg), dut.q_rd_data.value.to_unsigned())
        assert got == [int(x) for x in rows[r]], f"row {r}: got {got}, want {rows[r].tolist()}"
        await RisingEdge(dut.clk)
    await tb.finish()


@cocotb.test()
async def throughput(dut):
    """Back-to-back keys, output always ready: one key every data_bits / bits_per_cycle cycles."""
    tb = await IpCimTB.start(dut)
    await tb.load_random_tile()
    n = max(common.keys(), 8)
    start = tb.s_sink.cycle
    for key in tb.random_rows(n):
        await tb.send_key(key)
    await tb.finish()
    gaps = np.diff(tb.out_cycles)
    steady = gaps[2:]                       # skip the pipeline fill
    cpk = float(steady.mean())
    tb.log.info("measured %.3f cycles per key (configured %d), latency-inclusive total %d cycles for %d keys",
                cpk, tb.cfg.ip_cycles_per_key, tb.out_cycles[-1] - start, n)
    results = os.environ.get("FUSIONCIM_RESULTS")
    if results:
        with open(results, "w") as f:
            json.dump({"cycles_per_key": cpk, "configured": tb.cfg.ip_cycles_per_key, "keys": n,
                       "first_output_cycle": tb.out_cycles[0] - start}, f)
    assert (steady == tb.cfg.ip_cycles_per_key).all(), f"output spacing {steady.tolist()}"


