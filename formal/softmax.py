"""Formal properties of the pattern-aware online softmax unit (``hw/softmax.py``)."""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Module, Signal

from ..core.schedule import softmax_depth
from .common import Property, broken, drop_stalled, duplicate, held_inputs, holds, short
from .configs import FORMAL_LANES

__all__ = ["PROPERTIES"]


_env = held_inputs("s_in", "row_wr")


def _conserved(config, cls):
    # Keys in = keys out + keys inside (at most schedule.softmax_depth); an empty unit (it
    # takes a row set-up only when its stages are empty) owes nothing.
    m = Module()
    dut = cls(config)
    n = _env(m, dut).inflight(dut.s_in, dut.p_out)
    empty = dut.row_wr.ready & ~dut.p_out.valid
    m.d.comb += Assert((n >= 0) & (n <= softmax_depth(config)) & (empty == (n == 0)), "keys in = keys out + keys inside")
    return m


def _sum_fits(config, cls):
    # The running sum l = (l >> shift) + p of every row never overflows sum_width
    # for a tile of up to max_seq_len keys: the harness keeps each row's sum two
    # bits wider, from the p and shifts the unit sends out, and compares it with
    # l whenever the unit is empty. A row set-up starts a tile (the engine sets
    # rows up only after the last p of the previous tile has left).
    m = Module()
    dut = cls(config)
    _env(m, dut)
    R = config.rows
    keys = [Signal(range(config.max_seq_len + 2), name=f"tile_keys{r}") for r in range(R)]
    m.d.comb += Assume(~dut.row_wr.valid | ~dut.p_out.valid)
    m.d.comb += Assume(~dut.s_in.valid | Cat(*[k < config.max_seq_len for k in keys]).all())
    with m.If(dut.s_in.valid & dut.s_in.ready):
        m.d.sync += [k.eq(k + 1) for k in keys]
    wide = config.sum_width + 2
    lw = [Signal(wide, name=f"l_wide{r}") for r in range(R)]
    p = dut.p_out.payload
    with m.If(dut.p_out.valid & dut.p_out.ready):
        m.d.sync += [lw[r].eq((lw[r] >> p.shift[r]) + p.p[r]) for r in range(R)]
    with m.If(dut.row_wr.valid & dut.row_wr.ready):
        for r in range(R):
            with m.If(dut.row_wr.payload.row == r):
                m.d.sync += [lw[r].eq(0), keys[r].eq(0)]
    fits = Cat(*[lw[r] < (1 << config.sum_width) for r in range(R)]).all()
    m.d.comb += Assert(fits, "the running sum stays within sum_width")
    with m.If(dut.row_wr.ready & ~dut.p_out.valid):
        m.d.comb += Assert(Cat(*[dut.l[r] == lw[r] for r in range(R)]).all(), "l = the exact running sum")
    return m


PROPERTIES = [
    Property("softmax", "p_holds", "the p stream holds valid and payload until taken", holds(_env, "p_out"),
             "prove", 6, broken(drop_stalled("p_out")), "drops a stalled p"),
    Property("softmax", "conserved", "keys in = keys out + keys inside (at most the pipeline depth); empty owes nothing",
             _conserved, "pdr", 0, broken(duplicate("p_out")), "offers a taken p twice"),
    Property("softmax", "sum_fits", "the running sum never overflows sum_width for max_seq_len keys",
             _sum_fits, "pdr", 0, short("sum_width"), "sum_width one bit short"),
    Property("softmax", "sum_fits_lanes", "the same with one exponent lane and a lazy threshold of 1",
             _sum_fits, "bmc", 10, short("sum_width"), "sum_width one bit short", config=FORMAL_LANES),
]
