"""Formal properties of the whole attention engine (``hw/engine.py``)."""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, Signal

from ..core.counters import COUNTER_BITS, ENGINE_COUNTERS, step
from .common import Property, broken, glitch, good_command, held_inputs, holds

__all__ = ["PROPERTIES"]


_env = held_inputs("kv_wr", "cmd", "q_in")


def _rows(config, cls):
    # Each good command gives n_rows output rows, 0 .. n_rows-1 in order; a bad
    # one gives none; the engine is idle only with every row out. With
    # double_buffer the next tile may start while this one's rows are still
    # being divided, so the harness keeps two tiles: the one coming out and the next.
    m = Module()
    dut = cls(config)
    _env(m, dut, config)
    W = range(config.rows + 2)
    left = Signal(W, name="rows_left")          # rows still to come of the oldest tile
    queued = Signal(W, name="rows_queued")      # n_rows of the tile after it (0: none)
    nxt = Signal(range(config.rows + 1), name="next_row")
    fire = dut.o_out.valid & dut.o_out.ready
    with m.If(dut.o_out.valid):
        m.d.comb += Assert((left > 0) & (dut.o_out.payload.row == nxt), "rows 0 .. n_rows-1, in order, once")
    left_after = Signal(W, name="left_after")
    queued_after = Signal(W, name="queued_after")
    last = fire & (left == 1)
    m.d.comb += [left_after.eq(Mux(last, queued, left - fire)), queued_after.eq(Mux(last, 0, queued))]
    m.d.sync += [left.eq(left_after), queued.eq(queued_after), nxt.eq(Mux(last, 0, nxt + fire))]
    n = dut.cmd.payload.n_rows
    with m.If(good_command(dut, config)):
        m.d.comb += Assert(queued_after == 0, "at most one tile waits behind the one coming out")
        with m.If(left_after == 0):
            m.d.sync += left.eq(n)
        with m.Else():
            m.d.sync += queued.eq(n)
    with m.If(dut.idle):
        m.d.comb += Assert((left == 0) & (queued == 0), "idle only with every row out")
    return m


def _keys_conserved(config, cls):
    # Every key read from the K buffer reaches the softmax and leaves it either
    # as a V read or skipped, once: k_reads >= keys >= v_reads + skipped_keys at
    # all times, and all equal when the engine is idle.
    m = Module()
    dut = cls(config)
    _env(m, dut, config)
    out = dut.v_reads + dut.skipped_keys
    m.d.comb += Assert((dut.k_reads >= dut.keys) & (dut.keys >= out), "no key leaves twice or unread")
    with m.If(dut.idle):
        m.d.comb += Assert((dut.k_reads == dut.keys) & (dut.keys == out),
                           "k_reads = keys = v_reads + skipped_keys when idle")
    return m


def _counter_steps(config, cls):
    # No counter ever moves back or jumps: each grows by 0 .. its step a cycle,
    # modulo 2**COUNTER_BITS (so none can wrap before 2**COUNTER_BITS / step cycles).
    m = Module()
    dut = cls(config)
    h = _env(m, dut, config)
    for name in ENGINE_COUNTERS:
        now = getattr(dut, name)
        before = h.past(now, f"{name}_before")
        delta = Signal(COUNTER_BITS, name=f"{name}_step")
        m.d.comb += delta.eq(now - before)
        with m.If(h.started):
            m.d.comb += Assert(delta <= step(name, config), f"{name} grows by at most its step")
    return m


# Offers a row for one cycle with nothing to send, then takes it back.
_flicker = glitch("comb", lambda b: b.o_out.valid.eq(1))


_double_v_read = glitch("sync", lambda b: b.v_reads.eq(b.v_reads + 2))


_double_count = glitch("sync", lambda b: b.k_reads.eq(b.k_reads + 2))


PROPERTIES = [
    Property("engine", "o_holds", "the output row stream holds valid and payload until taken", holds(_env, "o_out"),
             "pdr", 0, broken(_flicker), "offers a row for a cycle, then withdraws it"),
    Property("engine", "rows", "a good command gives rows 0 .. n_rows-1 once each, in order; a bad one none",
             _rows, "pdr", 0, broken(_flicker), "offers a row no command asked for"),
    Property("engine", "keys_conserved", "every key read leaves once, as a V read or a skip; all equal at idle",
             _keys_conserved, "bmc", 16, broken(_double_v_read), "counts a V read twice"),
    Property("engine", "counter_steps", "every counter grows by 0 .. its per-cycle step (never wraps early)",
             _counter_steps, "bmc", 12, broken(_double_count), "counts a K read twice"),
]
