"""Formal properties of the QO-stationary controller (``hw/controller.py``)."""

from __future__ import annotations

from dataclasses import replace

from amaranth.hdl import Assert, Assume, Cat, Module, Signal

from .common import Harness, Property, broken, glitch, good_command, holds, no_abort
from .configs import FORMAL

__all__ = ["PROPERTIES", "STALL", "tile_bound"]

STALL = 2       # the environment keeps the controller waiting at most this many cycles in a row


def tile_bound(config, stall=STALL):
    """Cycles a tile may stay busy when the environment keeps each handshake waiting at most ``stall``
    cycles in a row: a load slot waits for its Q beat, then for both set-up ports at once
    (2 stall + 1); a key waits for its taker (stall + 1); the end waits for the drain, then
    for the normaliser (2 stall + 1); plus the cycle that finds no key left."""
    return config.rows * (2 * stall + 1) + config.kv_keys * (stall + 1) + 2 * stall + 2


def _env(m, dut, config=None, fair=False, aborts=False):
    """Free inputs that obey the stream rule; ``fair``: no handshake waits more than STALL cycles;
    ``aborts``: ``abort_tile`` free too (else held low)."""
    h = Harness(m, dut)
    h.holds(dut.cmd, "cmd", Assume)
    h.holds(dut.q_in, "q_in", Assume)
    if not aborts:
        no_abort(m, dut)
    if fair:
        h.stalls_at_most(~dut.q_in.valid, STALL, "q_in")
        for name in ("q_wr", "row_wr", "key", "norm"):
            s = getattr(dut, name)
            h.stalls_at_most(s.valid & ~s.ready, STALL, name)
        h.stalls_at_most(~dut.drained, STALL, "drained")
        h.stalls_at_most(~dut.op_free, STALL, "op_free")
    return h


def _tile(m, dut, config):
    """The harness's view of the tiles: ``(load_rows, run_keys, run_rows, run_start)``: the n_rows of the
    tile being loaded (its command's), the n_keys and n_rows of the tile running, and the strobe of a
    run's start. Single-buffered one tile is loaded and then run, its command its start; with
    ``q_double_buffer`` the next tile loads while one runs and starts with ``swap``."""
    cmd = dut.cmd.payload
    load_keys = Signal.like(cmd.n_keys, name="ld_keys")
    load_rows = Signal.like(cmd.n_rows, name="ld_rows")
    with m.If(good_command(dut, config)):
        m.d.sync += [load_keys.eq(cmd.n_keys), load_rows.eq(cmd.n_rows)]
    if not config.q_double_buffer:
        return load_rows, load_keys, load_rows, good_command(dut, config)
    run_keys = Signal.like(cmd.n_keys, name="t_keys")
    run_rows = Signal.like(cmd.n_rows, name="t_rows")
    with m.If(dut.swap):
        m.d.sync += [run_keys.eq(load_keys), run_rows.eq(load_rows)]
    return load_rows, run_keys, run_rows, dut.swap


def _keys_once(config, cls):
    # Each tile issues every key of [0, n_keys) exactly once, in any of the
    # configured orders, for any query positions, before it ends.
    m = Module()
    dut = cls(config)
    _env(m, dut, fair=True)
    _, n_keys, _, run_start = _tile(m, dut, config)
    seen = Signal(config.kv_keys, name="seen")
    pos = dut.key.payload.pos
    bit = Signal(config.kv_keys, name="bit")
    m.d.comb += bit.eq(1 << pos)
    with m.If(dut.key.valid & dut.key.ready):
        m.d.comb += Assert((pos < n_keys) & ((seen & bit) == 0), "a key of the tile, not issued before")
        m.d.sync += seen.eq(seen | bit)
    with m.If(dut.norm.valid):
        m.d.comb += Assert(seen == (1 << n_keys) - 1, "every key issued before the tile ends")
    with m.If(run_start):
        m.d.sync += seen.eq(0)
    running = dut.key.valid | dut.norm.valid if config.q_double_buffer else ~dut.idle
    with m.If(running):
        m.d.comb += Assert((n_keys >= 1) & (n_keys <= config.kv_keys), "a running tile came from a good command")
    return m


def _rows(config, cls):
    # A tile takes exactly n_rows Q beats; each goes once to IP-CIM row 0, 1, ...
    # and to the softmax slot of the same number; slots n_rows .. rows-1 are set
    # up inactive; the tile ends with its n_rows.
    m = Module()
    dut = cls(config)
    _env(m, dut, fair=True)
    n_rows, _, run_rows, _ = _tile(m, dut, config)
    beats = Signal(range(config.rows + 2), name="beats")
    slots = Signal(range(config.rows + 2), name="slots")
    wrote = Signal(name="wrote")        # this beat's IP row is written
    q_in, q_wr, row_wr = dut.q_in, dut.q_wr, dut.row_wr
    take = q_in.valid & q_in.ready
    fire = q_wr.valid & q_wr.ready
    with m.If(fire):
        m.d.comb += Assert(~wrote & (beats < n_rows) & (q_wr.payload.row == beats)
                           & (q_wr.payload.data.as_value() == q_in.payload.q.as_value()),
                           "a Q beat is written once, to the next IP row")
    with m.If(take):
        m.d.comb += Assert(wrote | fire, "a Q beat is consumed only once written")
        m.d.sync += beats.eq(beats + 1)
    m.d.sync += wrote.eq((wrote | fire) & ~take)
    with m.If(row_wr.valid & row_wr.ready):
        m.d.sync += slots.eq(slots + 1)
        real = slots < n_rows
        p = row_wr.payload
        m.d.comb += Assert((p.row == slots) & (p.active == real) & (~real | (slots == beats))
                           & (~real | ((p.q_pos == q_in.payload.pos) & (p.c_mant == q_in.payload.c_mant)
                                       & (p.c_shift == q_in.payload.c_shift) & q_in.valid)),
                           "row slots in order, each with its Q beat's position and constant")
    # Loaded before it runs: single-buffered before any key, with Q preloading when it starts (the keys
    # of the tile before it may run while it loads).
    with m.If(dut.swap if config.q_double_buffer else dut.key.valid | dut.norm.valid):
        m.d.comb += Assert((beats == n_rows) & (slots == config.rows), "the tile is loaded before it runs")
    with m.If(dut.norm.valid):
        m.d.comb += Assert(dut.norm.payload.n_rows == run_rows, "the tile ends with its n_rows")
    with m.If(good_command(dut, config)):
        m.d.sync += [beats.eq(0), slots.eq(0), wrote.eq(0)]
    return m


def _no_deadlock(config, cls):
    # For any sequence of commands, with an environment that keeps it waiting
    # at most STALL cycles at a time, every tile ends within tile_bound cycles.
    m = Module()
    dut = cls(config)
    _env(m, dut, fair=True)
    bound = tile_bound(config)
    busy = Signal(range(bound + 2), name="busy_for")
    if config.q_double_buffer:
        # Tiles follow each other without an idle cycle while commands keep coming: the count restarts at
        # each tile's end, and the next tile's load may have begun before it (one more cycle: the swap).
        bound += 1
        ended = dut.norm.valid & dut.norm.ready
        m.d.sync += busy.eq((~dut.idle & ~ended) * (busy + 1))
    else:
        m.d.sync += busy.eq(Cat(~dut.idle).any() * (busy + 1))
    m.d.comb += Assert(busy <= bound, f"a tile ends within {bound} cycles")
    return m


def _abort_drops(config, cls):
    # Aborts at any time (the other properties assume none): a tile that has not offered its end when
    # abort_tile is raised (one loading, loaded or running, or whose command is taken in that cycle)
    # never ends on norm; the next tile to start is whole again.
    m = Module()
    dut = cls(config)
    _env(m, dut, aborts=True)
    _, _, _, run_start = _tile(m, dut, config)
    dropped = Signal(name="dropped")
    with m.If(run_start):
        m.d.sync += dropped.eq(0)
    with m.If(dut.abort_tile & ~dut.norm.valid):          # after the start: an abort in its cycle wins
        m.d.sync += dropped.eq(1)
    m.d.comb += Assert(~(dut.norm.valid & dropped), "an aborted tile never ends")
    return m


_drop_key = glitch("comb", lambda b: b.key.valid.eq(0))


_repeat_key = glitch("comb", lambda b: b.key.payload.pos.eq(0))


_extra_beat = glitch("comb", lambda b: b.q_in.ready.eq(1))


_end_anyway = glitch("comb", lambda b: b.norm.valid.eq(1))


def _hang(block, m, glitch):
    stuck = Signal(name="stuck")
    m.d.sync += stuck.eq(stuck | glitch)
    with m.If(stuck):
        m.d.comb += block.norm.valid.eq(0)


PROPERTIES = [
    Property("controller", "streams_hold", "q_wr, row_wr, key and norm hold valid and payload until taken",
             holds(_env, "q_wr", "row_wr", "key", "norm"), "prove", 4, broken(_drop_key),
             "withdraws a key before it is taken"),
    Property("controller", "keys_once", "each tile issues every key of [0, n_keys) exactly once, then ends",
             _keys_once, "pdr", 0, broken(_repeat_key), "issues key 0 in place of the scheduled key"),
    Property("controller", "rows", "a tile takes n_rows Q beats into rows 0..n_rows-1 and sets up every slot once",
             _rows, "pdr", 0, broken(_extra_beat), "swallows a Q beat without writing it"),
    Property("controller", "no_deadlock", "with waits of at most 2 cycles, every tile ends within its bound",
             _no_deadlock, "pdr", 0, broken(_hang), "never ends a tile once a fault strikes",
             mutant_depth=40),
    Property("controller", "abort_drops", "with aborts at any time, a tile aborted before it offers its end never "
             "ends", _abort_drops, "pdr", 0, broken(_end_anyway), "offers a tile's end nobody asked for"),
]
# Each of the above again with Q preloading (q_double_buffer): the next tile loads while one runs.
PRELOAD = FORMAL.replace(q_double_buffer=True)
PROPERTIES += [replace(p, name=f"{p.name}_preload", text=f"{p.text} (Q preloading)", config=PRELOAD)
               for p in PROPERTIES]
