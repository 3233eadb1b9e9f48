"""Formal properties of the OP-CIM macro and its normaliser (``hw/op_cim.py``)."""

from __future__ import annotations

from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume, Cat, Module, Mux, Signal, signed

from .common import Property, broken, glitch, held_inputs, holds, short
from .configs import FORMAL

# 2-bit V (the IP-CIM one bit a cycle): the array-versus-model check multiplies
# p by v, which solvers find hard at 4 bits.
FORMAL_V2 = FORMAL.replace(data_bits=2, ip_bits_per_cycle=1)

__all__ = ["PROPERTIES"]


def _env(m, dut, config):
    # What the engine sends: n_rows from 1 to rows, p no larger than the softmax makes.
    h = held_inputs("kv_in", "norm_in")(m, dut)
    m.d.comb += Assume(~dut.clear)          # an aborted tile's clear (hw/engine.py abort_tile): not proven here
    n = dut.norm_in.payload.n_rows
    m.d.comb += Assume(~dut.norm_in.valid | ((n >= 1) & (n <= config.rows)))
    p_max = config.prob_max << config.lazy_threshold
    for r in range(config.rows):
        m.d.comb += Assume(~dut.kv_in.valid | (dut.kv_in.payload.p[r] <= p_max))
    return h


def _rows(config, cls):
    # A tile's end with n_rows = n gives exactly n output rows, 0 .. n-1 in
    # order, and nothing outside a normalisation.
    m = Module()
    dut = cls(config)
    _env(m, dut, config)
    left = Signal(range(config.rows + 2), name="rows_left")
    nxt = Signal(range(config.rows + 1), name="next_row")
    with m.If(dut.o_out.valid):
        m.d.comb += Assert((left > 0) & (dut.o_out.payload.row == nxt), "rows 0 .. n_rows-1, in order, once")
    with m.If(dut.o_out.valid & dut.o_out.ready):
        m.d.sync += [left.eq(left - 1), nxt.eq(nxt + 1)]
    with m.If(dut.norm_in.valid & dut.norm_in.ready):
        m.d.comb += Assert(left == 0, "a tile ends only after the previous one's rows are out")
        m.d.sync += [left.eq(dut.norm_in.payload.n_rows), nxt.eq(0)]
    with m.If(~dut.busy):
        m.d.comb += Assert(left == 0, "idle only with every row out")
    return m


def _acc_fits(config, cls):
    # O = (O >> shift) + p v never overflows acc_width for a tile of up to
    # max_seq_len keys with any v and any p the softmax can send. The harness
    # watches one row (any, chosen by the solver) through the o_rd port: each
    # key update must give exactly (O >> shift) + p v, computed two bits wider,
    # and |O| stays within keys x p_max x 2**(data_bits-1), which the
    # config's acc_width must hold. Checked one update at a time, so the
    # solver never compares a chain of multiplies.
    m = Module()
    dut = cls(config)
    _env(m, dut, config)
    R, d = config.rows, config.head_dim
    row = Signal(config.row_bits, name="watched_row")
    m.d.comb += [row.eq(AnyConst(config.row_bits)), Assume(row < R), Assume(dut.o_rd_row == row)]
    keys = Signal(range(config.max_seq_len + 2), name="tile_keys")
    kv = dut.kv_in.payload
    m.d.comb += Assume(~dut.kv_in.valid | kv.skip | (keys < config.max_seq_len))
    wide = signed(config.acc_width + 2)
    want = [Signal(wide, name=f"want{j}") for j in range(d)]
    pending = Signal(name="pending")          # an update whose result is not checked yet
    p_row = Signal(config.p_bits, name="p_row")
    s_row = Signal(config.shift_bits, name="shift_row")
    m.d.comb += [p_row.eq(kv.p.as_value().word_select(row, config.p_bits)),
                 s_row.eq(kv.shift.as_value().word_select(row, config.shift_bits))]
    take = dut.kv_in.valid & dut.kv_in.ready & ~kv.skip
    with m.If(take):
        m.d.sync += [keys.eq(keys + 1), pending.eq(1)]
        for j in range(d):
            # A key may enter in the previous key's last digit cycle: chain on its expected O.
            base = Signal(wide, name=f"base{j}")
            m.d.comb += base.eq(Mux(pending, want[j], dut.o_rd_data[j]))
            m.d.sync += want[j].eq((base >> s_row) + p_row * kv.v[j])
    m_max = (config.prob_max << config.lazy_threshold) << (config.data_bits - 1)
    lim = 1 << (config.acc_width - 1)
    for j in range(d):
        m.d.comb += Assert((want[j] >= -lim) & (want[j] < lim), "O stays within acc_width")
    with m.If(~dut.key_active & pending & ~take):
        m.d.comb += Assert(Cat(*[dut.o_rd_data[j] == want[j] for j in range(d)]).all(),
                           "each update gives (O >> shift) + p v exactly")
        m.d.sync += pending.eq(0)
    with m.If(~dut.key_active & ~pending):
        for j in range(d):
            o = dut.o_rd_data[j]
            m.d.comb += Assert((o <= keys * m_max) & (-o <= keys * m_max), "|O| <= keys x p_max x v_max")
    with m.If(dut.norm_in.valid & dut.norm_in.ready):
        m.d.sync += keys.eq(0)
    return m


def _withdraw_stalled_row(block, m, glitch):
    # The output row comes combinationally from the normaliser (hw/op_cim.py):
    # the fault withdraws it for a cycle while it is stalled.
    norm = m.submodules["norm"]
    with m.If(norm.o_out.valid & ~block.o_out.ready & glitch):
        m.d.comb += block.o_out.valid.eq(0)


_restart = glitch("comb", lambda b: b.norm_in.ready.eq(1))


PROPERTIES = [
    Property("op_cim", "o_holds", "the output row stream holds valid and payload until taken", holds(_env, "o_out"),
             "pdr", 0, broken(_withdraw_stalled_row), "withdraws a stalled output row"),
    Property("op_cim", "rows", "a tile's end gives rows 0 .. n_rows-1 once each, in order, then idles",
             _rows, "pdr", 0, broken(_restart), "takes a tile's end while still normalising"),
    Property("op_cim", "rows_two_lanes", "with two division lanes, a tile's end still gives rows 0 .. n_rows-1 "
             "once each, in order, then idles", _rows, "pdr", 0, broken(_restart),
             "takes a tile's end while still normalising", config=FORMAL.replace(norm_lanes=2)),
    Property("op_cim", "acc_fits", "O never overflows acc_width for max_seq_len keys of any p and v",
             _acc_fits, "bmc", 5, short("acc_width"), "acc_width one bit short", config=FORMAL_V2),
]
