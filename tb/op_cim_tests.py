"""cocotb tests of the generated OP-CIM macro and normaliser against ``fusioncim.golden.op_cim``.

Run through ``tests/test_op_cim_rtl.py``. Knobs (``tb/common.py``):
``FUSIONCIM_CONFIG`` (required), ``FUSIONCIM_SEED`` (logged), ``FUSIONCIM_KEYS``,
``FUSIONCIM_RESULTS`` (throughput figures, JSON).

Every normalised row is compared as it appears; the accumulators are read
back and compared after every key where a test waits for them (every update
is then observable).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from ..golden import op_cim as golden
from ..hw.op_cim import acc_row_layout, kv_in_layout, norm_in_layout, o_out_layout
from ..core.schedule import norm_group_cycles

from . import common
from .streams import Scoreboard, StreamSink, StreamSource, decode, random_pattern




class OpCimTB(common.BlockTB):
    def __init__(self, dut, *, p_valid=1.0, p_ready=1.0, salt=0):
        super().__init__(dut, salt)
        c, prng = self.cfg, self.prng
        self.log.info("seed %d, rows=%d head_dim=%d op_bits_per_cycle=%d", self.seed, c.rows, c.head_dim,
                      c.op_bits_per_cycle)
        self.kv_src = StreamSource(dut, "kv_in", dut.clk, random_pattern(prng, p_valid), kv_in_layout(c))
        self.norm_src = StreamSource(dut, "norm_in", dut.clk, random_pattern(prng, p_valid), norm_in_layout(c))
        self.board = Scoreboard(self.log, "o_out")
        self.sink = StreamSink(dut, "o_out", dut.clk, self._on_row, random_pattern(prng, p_ready), o_out_layout(c))
        self.O = np.zeros((c.rows, c.head_dim), np.int64)
        self.l = np.zeros(c.rows, np.int64)
        self.accepted_at = []
        dut.o_rd_row.value = 0

    def _on_row(self, cycle, beat):
        self.board.observe((beat["row"], beat["o"]))

    async def send_key(self, p, shift, skip, v, v_exp=None):
        # With per-key V exponents every key gets one (random unless given): the array adds p * (v << v_exp).
        c = self.cfg
        v_exp = int(self.rng.integers(0, 1 << c.v_exp_bits)) if v_exp is None else v_exp
        if not skip:
            self.O, self.l = golden.update(self.O, self.l, p, shift, np.asarray(v, np.int64) << v_exp)
        await self.kv_src.send({"p": p, "shift": shift, "skip": skip, "v": v,
                                **({"v_exp": v_exp} if c.v_exp_bits else {})})
        self.accepted_at.append(round(get_sim_time("ns") / 10))   # 10 ns clock: whole cycles

    async def normalise(self, l=None, n_rows=None):
        """End the tile with the golden running sums (or ``l``); expect rows ``0 .. n_rows - 1`` (default all)."""
        c = self.cfg
        l = self.l if l is None else np.asarray(l, np.int64)
        n_rows = c.rows if n_rows is None else n_rows
        want = golden.normalise(self.O, l, out_frac_bits=c.out_frac_bits, out_bits=c.out_bits)
        for r in range(n_rows):
            self.board.expect((r, [int(x) for x in want[r]]))
        await self.norm_src.send({"l": l, "n_rows": n_rows})
        self.O[:] = 0
        self.l[:] = 0

    async def idle(self, limit=100000):
        for _ in range(limit):
            await ReadOnly()
            if self.dut.busy.value == 0:
                break
            await RisingEdge(self.dut.clk)
        await RisingEdge(self.dut.clk)

    async def check_accumulators(self):
        """Wait for the datapath to go idle, then read every row back against the golden O."""
        c = self.cfg
        await self.idle()
        for r in range(c.rows):
            self.dut.o_rd_row.value = r
            await ReadOnly()
            got = decode(acc_row_layout(c), self.dut.o_rd_data.value.to_unsigned())
            assert got == self.O[r].tolist(), f"row {r} accumulators {got}, golden {self.O[r].tolist()}"
            await RisingEdge(self.dut.clk)

    async def finish(self):
        for _ in range(200 * (self.cfg.rows + 2) * norm_group_cycles(self.cfg)):
            if not self.board.expected:
                break
            await RisingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, 2 * norm_group_cycles(self.cfg))
        self.board.check()

    def random_key(self, p_rescale=0.3, p_skip=0.1):
        c = self.cfg
        p = self.rng.integers(0, c.prob_max << c.lazy_threshold, c.rows + 1)[: c.rows]
        p[self.rng.random(c.rows) < 0.2] = 0
        shift = np.where(self.rng.random(c.rows) < p_rescale, self.rng.integers(1, 6, c.rows), 0)
        skip = self.rng.random() < p_skip
        if skip:
            p[:] = 0
            shift[:] = 0
        v = self.rng.integers(c.data_min, c.data_max + 1, c.head_dim)
        return p, shift, skip, v


@cocotb.test()
async def random_tiles_with_stalls(dut):
    """Back-to-back tiles of random keys (random rescales and skips), random gaps and output stalls."""
    tb = await OpCimTB.start(dut, p_valid=0.7, p_ready=0.5, salt=1)
    for _ in range(3):
        for _ in range(common.keys()):
            await tb.send_key(*tb.random_key())
        await tb.normalise(n_rows=int(tb.rng.integers(1, tb.cfg.rows + 1)))
    await tb.finish()


@cocotb.test()
async def every_update_observed(dut):
    """Rescale on every key, on no key, and on random keys; the accumulators checked after each key."""
    tb = await OpCimTB.start(dut, salt=2)
    n = max(8, common.keys() // 4)
    for p_rescale in (1.0, 0.0, 0.4):
        for _ in range(n):
            p, shift, skip, v = tb.random_key(p_rescale=p_rescale, p_skip=0.15)
            if p_rescale == 1.0 and not skip:
                shift = np.maximum(shift, 1)
            await tb.send_key(p, shift, skip, v)
            await tb.check_accumulators()
        await tb.normalise()
    await tb.finish()


@cocotb.test()
async def accumulators_at_their_limit(dut):
    """max_seq_len keys of maximal p with v at -128 and at +127 and the largest V exponent: O reaches the
    edge of acc_width."""
    tb = await OpCimTB.start(dut, salt=3)
    c = tb.cfg
    pmax = np.full(c.rows, (c.prob_max << c.lazy_threshold))
    zero = np.zeros(c.rows, np.int64)
    for vval in (c.data_min, c.data_max):
        v = np.full(c.head_dim, vval)
        v[1::2] = vval if c.head_dim == 1 else (c.data_max if vval == c.data_min else c.data_min)
        for _ in range(c.max_seq_len):
            await tb.send_key(pmax, zero, False, v, v_exp=c.v_exp_max)
        await tb.check_accumulators()
        bound = c.max_seq_len * int(pmax[0]) * (1 << (c.data_bits - 1 + c.v_exp_max))
        assert int(np.abs(tb.O).max()) == bound, "the test did not reach the accumulator bound"
        await tb.normalise()
    await tb.finish()


@cocotb.test()
async def throughput(dut):
    """Keys back to back: p_bits / op_bits_per_cycle cycles each, one more when they rescale."""
    tb = await OpCimTB.start(dut, salt=4)
    c = tb.cfg
    n = max(common.keys(), 8)
    ones = np.ones(c.rows, np.int64)
    zero = np.zeros(c.rows, np.int64)
    v = np.ones(c.head_dim, np.int64)
    for _ in range(n):
        await tb.send_key(ones, zero, False, v)
    plain = np.diff(tb.accepted_at[2:])
    tb.accepted_at.clear()
    for _ in range(n):
        await tb.send_key(ones, ones, False, v)
    rescaling = np.diff(tb.accepted_at[2:])
    await tb.normalise()
    await tb.finish()
    results = os.environ.get("FUSIONCIM_RESULTS")
    if results:
        with open(results, "w") as f:
            json.dump({"cycles_per_key": float(plain.mean()), "with_rescale": float(rescaling.mean()),
                       "configured": c.op_cycles_per_key}, f)
    tb.log.info("measured %.3f cycles per key, %.3f with a rescale (configured %d)", plain.mean(),
                rescaling.mean(), c.op_cycles_per_key)
    assert (plain == c.op_cycles_per_key).all(), f"plain: {plain.tolist()}"
    assert (rescaling == c.op_cycles_per_key + 1).all(), f"with rescales: {rescaling.tolist()}"
