"""cocotb tests of the generated softmax unit against ``fusioncim.golden.softmax.unit``.

Run through ``tests/test_softmax_rtl.py``. Knobs (``tb/common.py``):
``FUSIONCIM_CONFIG`` (required), ``FUSIONCIM_SEED`` (logged), ``FUSIONCIM_KEYS``.

Every output (p and shift of every row, the skip flag, the key position), the
final running sums and every counter are compared with the golden model.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ..core.counters import SOFTMAX_COUNTERS
from ..core.keyscale import k_factor
from ..golden import softmax as golden
from ..hw.softmax import p_out_layout, row_wr_layout, s_in_layout, sums_layout

from . import common
from .streams import Scoreboard, StreamSink, StreamSource, decode, random_pattern




class SoftmaxTB(common.BlockTB):
    def __init__(self, dut, *, p_valid=1.0, p_ready=1.0, salt=0):
        super().__init__(dut, salt)
        cfg, prng = self.cfg, self.prng
        self.log.info("seed %d, rows=%d, tiers=%s skip=%s key_skip=%s lazy=%d", self.seed, cfg.rows, cfg.tiers,
                      cfg.skip_threshold, cfg.key_skip, cfg.lazy_threshold)
        self.row_src = StreamSource(dut, "row_wr", dut.clk, random_pattern(prng, p_valid), row_wr_layout(cfg))
        self.key_src = StreamSource(dut, "s_in", dut.clk, random_pattern(prng, p_valid), s_in_layout(cfg))
        self.board = Scoreboard(self.log, "p_out")
        self.sink = StreamSink(dut, "p_out", dut.clk, self._on_out, random_pattern(prng, p_ready), p_out_layout(cfg))
        self.counters = dict.fromkeys(SOFTMAX_COUNTERS, 0)

    def _on_out(self, cycle, beat):
        self.board.observe((beat["p"], beat["shift"], beat["skip"], beat["key_pos"]))

    async def tile(self, scores, key_pos, c_mant, c_shift, q_pos, active, causal):
        """Set up every row, stream the keys (with random per-key K scales when the config has them), wait
        for the results, check l."""
        c = self.cfg
        R = c.rows
        n = scores.shape[1]
        k_exp = self.rng.integers(0, 1 << c.k_exp_bits, n)
        k_mant = self.rng.integers(0, 1 << c.k_mant_bits, n)
        for r in range(R):
            await self.row_src.send({"row": r, "c_mant": c_mant[r], "c_shift": c_shift[r], "q_pos": q_pos[r],
                                     "active": active[r], "causal": causal[r]})
        outputs, lsum, counters = golden.unit(scores, key_pos, c_mant, c_shift, q_pos, active, causal, c,
                                              k_factor(c, k_exp, k_mant))
        for (p, shift, skip), kp in zip(outputs, key_pos):
            self.board.expect(([int(v) for v in p], [int(v) for v in shift], int(skip), int(kp)))
        for k in counters:
            self.counters[k] += counters[k]
        for i in range(n):
            scale = {"k_scale": int(k_exp[i]) | int(k_mant[i]) << c.k_exp_bits} if c.k_scale_bits else {}
            await self.key_src.send({"scores": scores[:, i], "key_pos": key_pos[i], **scale})
        for _ in range(100 * (len(key_pos) + 10)):
            if not self.board.expected:
                break
            await RisingEdge(self.dut.clk)
        await ReadOnly()
        got = decode(sums_layout(c), self.dut.l.value.to_unsigned())
        assert got == [int(v) for v in lsum], f"running sums {got}, golden {lsum.tolist()}"
        await RisingEdge(self.dut.clk)

    async def finish(self):
        await ClockCycles(self.dut.clk, 10)
        self.board.check()
        await ReadOnly()
        got = {k: getattr(self.dut, k).value.to_unsigned() for k in SOFTMAX_COUNTERS}
        assert got == self.counters, f"counters {got}, golden {self.counters}"
        self.log.info("counters match: %s", got)

    # -- row set-ups ---------------------------------------------------------
    def rows_params(self, *, causal=False, q_pos=None, active=None, cm=None, cs=None):
        c = self.cfg
        R = c.rows
        if cm is None:
            cm = self.rng.integers(1 << (c.const_bits - 1), 1 << c.const_bits, R)
        if cs is None:
            cs = self.rng.integers(c.const_bits - 2, c.const_bits + 6, R)
        q_pos = np.full(R, c.max_seq_len - 1) if q_pos is None else np.asarray(q_pos)
        active = np.ones(R, bool) if active is None else np.asarray(active, bool)
        return np.asarray(cm), np.asarray(cs), q_pos, active, np.full(R, causal)


@cocotb.test()
async def random_streams_with_stalls(dut):
    """Random tiles, causal and not, some rows inactive; random gaps on both inputs and output stalls."""
    tb = await SoftmaxTB.start(dut, p_valid=0.7, p_ready=0.6, salt=1)
    c = tb.cfg
    for t in range(4):
        n = common.keys()
        scores = tb.rng.integers(-(1 << (c.score_bits - 3)), 1 << (c.score_bits - 3), (c.rows, n))
        key_pos = tb.rng.permutation(n)
        q_pos = tb.rng.integers(0, n, c.rows)
        active = tb.rng.random(c.rows) < 0.85
        await tb.tile(scores, key_pos, *tb.rows_params(causal=bool(t % 2), q_pos=q_pos, active=active))
    await tb.finish()


@cocotb.test()
async def hard_shapes(dut):
    """All equal, rising ramp (new max every key), max on the last key only, one huge outlier."""
    tb = await SoftmaxTB.start(dut, p_valid=0.8, p_ready=0.7, salt=2)
    c = tb.cfg
    n = common.keys()
    R = c.rows
    step = 1 << (c.score_bits - 10)
    shapes = {
        "all equal": np.full((R, n), 1234),
        "rising ramp": np.tile(np.arange(n) * step, (R, 1)),
        "max on last key": np.concatenate([np.zeros((R, n - 1), np.int64), np.full((R, 1), step * 40)], 1),
        "one huge outlier": np.where(np.arange(n) == n // 3, (1 << (c.score_bits - 1)) - 1, 0)[None, :]
        * np.ones((R, 1), np.int64),
    }
    for name, scores in shapes.items():
        tb.log.info("shape: %s", name)
        await tb.tile(scores, np.arange(n), *tb.rows_params())
    await tb.finish()


@cocotb.test()
async def numeric_limits(dut):
    """Scores at both ends of the score width, with constants large enough to saturate x."""
    tb = await SoftmaxTB.start(dut, salt=3)
    c = tb.cfg
    lo, hi = -(1 << (c.score_bits - 1)), (1 << (c.score_bits - 1)) - 1
    n = 16
    scores = np.where(np.arange(n) % 2, hi, lo)[None, :] * np.ones((c.rows, 1), np.int64)
    scores[:, 5] = 0
    cm = np.full(c.rows, (1 << c.const_bits) - 1)
    for cs in (c.k_exp_max, c.k_exp_max + 4, c.const_bits, c.c_shift_max):    # the contract's range of c_shift
        await tb.tile(scores, np.arange(n), *tb.rows_params(cm=cm, cs=np.full(c.rows, cs)))
    await tb.finish()


@cocotb.test()
async def masking(dut):
    """A row that sees only key 0; a row whose first streamed key is masked; an inactive row."""
    tb = await SoftmaxTB.start(dut, p_valid=0.8, p_ready=0.8, salt=4)
    c = tb.cfg
    n = 20
    scores = tb.rng.integers(-5000, 5000, (c.rows, n))
    key_pos = np.concatenate([[15, 0], np.arange(1, 15), np.arange(16, n)])   # first streamed key is 15
    q_pos = np.array(([0, 10, 19, 3] + [5] * max(0, c.rows - 4))[: c.rows])
    active = np.ones(c.rows, bool)
    if c.rows > 3:
        active[3] = False
    await tb.tile(scores, key_pos, *tb.rows_params(causal=True, q_pos=q_pos, active=active))
    await tb.finish()


@cocotb.test()
async def long_sequence_fills_the_sum(dut):
    """max_seq_len equal scores: l reaches max_seq_len * (2**prob_bits - 1), the top of its derived width."""
    tb = await SoftmaxTB.start(dut, salt=5)
    c = tb.cfg
    n = c.max_seq_len
    # Every row sees every key at the same score, so p = LUT[0] each time: l
    # ends at n * LUT[0], which must still fit sum_width (it is derived from
    # n * prob_max). A careless width would wrap here.
    await tb.tile(np.zeros((c.rows, n), np.int64), np.arange(n), *tb.rows_params())
    await tb.finish()
