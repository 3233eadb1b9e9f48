"""QO-stationary controller: takes a command, loads the Q tile, issues the keys once in order, ends the tile.

One command is one Q tile against keys ``[0, n_keys)`` of the KV buffer. The
controller

1. takes the command (``cmd``) and checks it: ``1 <= n_keys <= kv_depth`` and
   ``1 <= n_rows <= rows``; a bad command is consumed, sets its error bit and
   runs nothing;
2. loads the tile, one row slot a cycle: slots below ``n_rows`` take a beat of
   ``q_in`` (the Q row goes to the IP-CIM, its position and score constant to
   the softmax unit), the others are set up inactive;
3. issues the keys on ``key`` in the configured order (docs/numerics.md §6:
   in order, or the sink keys, the diagonal window from the tile's latest
   query down, then the rest);
4. waits until the pipeline has drained (``drained``, from the engine) and ends
   the tile on ``norm`` (the OP-CIM's normaliser takes it).

With ``q_double_buffer`` the load (1, 2) and the run (3, 4) are two processes:
the next command is taken and its rows loaded into the shadow banks while the
current tile runs, and a loaded tile starts with ``swap`` (one cycle) once the
current one has ended.

Every output stream keeps the stream rule for any environment (valid never
depends on a ready; valid and payload held until taken); ``formal/controller.py``
proves it, and that every key of a tile is issued exactly once.

Golden model: ``fusioncim.golden.engine`` (``key_order``, the schedule).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from ..core.config import EngineConfig
from .common import Block, data_row, swap_port
from .ip_cim import q_wr_layout
from .softmax import row_wr_layout

__all__ = ["Controller", "ERR_KEYS", "ERR_ROWS", "bad_command", "cmd_layout", "q_layout", "key_layout", "norm_layout"]

ERR_KEYS = 0       # bit of ``err``: n_keys of a command is 0 or beyond the KV buffer
ERR_ROWS = 1       # bit of ``err``: n_rows of a command is 0 or beyond ``rows``


def bad_command(c: EngineConfig, n_keys, n_rows):
    """``(bad_keys, bad_rows)``: the rule a command must meet, as Amaranth expressions (the controller
    and the AXI top both refuse by it): n_keys in ``1..kv_keys``, n_rows in ``1..rows``."""
    return (n_keys == 0) | (n_keys > c.kv_keys), (n_rows == 0) | (n_rows > c.rows)


def cmd_layout(c: EngineConfig):
    """A command: ``{n_keys, n_rows, causal, pattern}``; both counts one bit wider than their
    limit, so an oversized request is representable (and refused)."""
    return data.StructLayout({
        "n_keys": unsigned(c.n_keys_bits), "n_rows": unsigned(c.n_rows_bits + 1),
        "causal": unsigned(1), "pattern": unsigned(1)})


def q_layout(c: EngineConfig):
    """One Q row of a tile: ``{q[head_dim], pos, c_mant, c_shift}``."""
    return data.StructLayout({
        "q": data_row(c), "pos": unsigned(c.pos_bits),
        "c_mant": unsigned(c.const_bits), "c_shift": unsigned(c.c_shift_bits)})


def key_layout(c: EngineConfig):
    """The key to read from the buffer: ``{pos}``."""
    return data.StructLayout({"pos": unsigned(c.n_keys_bits)})


def norm_layout(c: EngineConfig):
    """End of a tile: ``{n_rows}``."""
    return data.StructLayout({"n_rows": unsigned(c.n_rows_bits)})


class _State(enum.Enum, shape=2):
    IDLE = 0
    LOAD = 1
    KEYS = 2
    WAIT = 3


class KeyPhase(enum.Enum, shape=2):
    """Phases of the key order, in the order a tile goes through them (held in plain 2-bit signals,
    which go through Mux)."""
    SINK = 0          # the sink keys, from key 0 up
    DIAG = 1          # the diagonal window, from the tile's latest query down
    REST = 2          # every other key, in order
    DONE = 3          # every key issued


class Controller(Block):
    """Command, Q-tile load, key order and end of tile for the engine (``hw/engine.py``).

    Members
    -------
    cmd : In(stream)
        ``{n_keys, n_rows, causal, pattern}``. Ready while idle (and, without
        ``double_buffer``, once the OP-CIM is free: ``op_free``).
    q_in : In(stream)
        ``{q[head_dim], pos, c_mant, c_shift}``: the tile's rows, ``n_rows`` beats per command.
    q_wr, row_wr : Out(stream)
        To the IP-CIM's and the softmax unit's set-up ports.
    key : Out(stream)
        ``{pos}``: the key to read from the buffer and stream past the tile.
    norm : Out(stream)
        ``{n_rows}``: end of the tile, once ``drained``.
    drained, op_free : In(1)
        No key left in the pipeline / the OP-CIM's normaliser is idle.
    idle : Out(1)
        No command in progress.
    abort_tile : In(1)
        Drop every tile not yet handed to the normaliser: a command taken in this cycle, a load, a
        loaded tile, and the tile whose keys are running (its keys stop; once the keys in flight
        have drained, ``discard`` clears the OP-CIM's array). A tile whose end is already offered
        on ``norm`` finishes.
    discard : Out(1)
        An aborted tile has drained: the OP-CIM clears its array instead of normalising it.
    swap : Out(1)
        With ``q_double_buffer`` only: the loaded tile starts; the IP-CIM and the softmax unit take their
        shadow banks at this clock edge.
    err : Out(2)
        Sticky error bits ``ERR_KEYS``, ``ERR_ROWS``; ``err_clear`` clears them.
    """

    def ports(self, c: EngineConfig):
        return {
            "cmd": In(stream.Signature(cmd_layout(c))),
            "q_in": In(stream.Signature(q_layout(c))),
            "q_wr": Out(stream.Signature(q_wr_layout(c))),
            "row_wr": Out(stream.Signature(row_wr_layout(c))),
            "key": Out(stream.Signature(key_layout(c))),
            "norm": Out(stream.Signature(norm_layout(c))),
            "drained": In(1),
            "op_free": In(1),
            "idle": Out(1),
            "err": Out(2),
            "err_clear": In(1),
            "abort_tile": In(1),
            "discard": Out(1),
            **swap_port(c, Out),
        }

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        tile = _Tile(c)
        with m.If(self.err_clear):
            m.d.sync += self.err.eq(0)
        if c.q_double_buffer:
            # The loader fills `ld` (its state LOAD or, once loaded, KEYS as "waiting to start");
            # the run uses `tile`.
            ld = _Tile(c, "ld")
            m.d.comb += self.idle.eq((tile.state == _State.IDLE) & (ld.state == _State.IDLE))
            self._command(m, ld, ready=ld.state == _State.IDLE)
            self._load(m, ld)
            start = self._start(m, tile, ld)
            self._key_order(m, tile, start)
        else:
            m.d.comb += self.idle.eq(tile.state == _State.IDLE)
            self._command(m, tile, ready=(tile.state == _State.IDLE) & (self.op_free if not c.double_buffer else 1))
            load_done = self._load(m, tile)
            self._key_order(m, tile, load_done)
            ld = None
        self._end_of_tile(m, tile)
        self._abort(m, tile, ld)
        return m

    def _abort(self, m, tile, ld):
        """Abort (after everything else, so it wins): loads and loaded tiles are dropped at once; a tile
        with keys running stops issuing and waits for its keys to drain, then discards its array."""
        with m.If(self.abort_tile):
            with m.If((tile.state == _State.LOAD) | ((tile.state == _State.IDLE) & self.cmd.valid & self.cmd.ready)):
                m.d.sync += tile.state.eq(_State.IDLE)
            with m.If(((tile.state == _State.KEYS) | (tile.state == _State.WAIT)) & ~self.norm.valid):
                m.d.sync += [tile.state.eq(_State.WAIT), tile.aborting.eq(1)]
            if ld is not None:
                m.d.sync += ld.state.eq(_State.IDLE)
        # Drained: the array is cleared in this cycle and the run is idle from the next.
        m.d.comb += self.discard.eq((tile.state == _State.WAIT) & tile.aborting & self.drained)
        with m.If(self.discard):
            m.d.sync += [tile.state.eq(_State.IDLE), tile.aborting.eq(0)]

    def _command(self, m, tile, ready):
        # 1. Take a command: a bad one sets its error bits and runs nothing.
        c = self._cfg
        cmd = self.cmd.payload
        m.d.comb += self.cmd.ready.eq(ready)
        bad_keys, bad_rows = bad_command(c, cmd.n_keys, cmd.n_rows)
        with m.If(self.cmd.valid & self.cmd.ready):
            with m.If(bad_keys | bad_rows):
                m.d.sync += self.err.eq(self.err | Mux(bad_keys, 1 << ERR_KEYS, 0) | Mux(bad_rows, 1 << ERR_ROWS, 0))
            with m.Else():
                m.d.sync += [tile.state.eq(_State.LOAD), tile.n_keys.eq(cmd.n_keys), tile.n_rows.eq(cmd.n_rows),
                             tile.causal.eq(cmd.causal), tile.pattern.eq(cmd.pattern), tile.hi.eq(0),
                             tile.slot.eq(0), tile.was_drained.eq(0)]

    def _start(self, m, tile, ld):
        """With ``q_double_buffer``: a loaded tile starts once the run is idle (and, single-buffered, the
        OP-CIM free): the swap, the loaded fields into the run's. Returns the start strobe."""
        c = self._cfg
        # Not in an abort's cycle: the abort drops the loaded tile, which must not start as it goes
        # (formal/controller.py abort_drops found it running whole after an abort in its swap cycle).
        start = Signal()
        m.d.comb += [start.eq((ld.state == _State.KEYS) & (tile.state == _State.IDLE)
                              & (self.op_free if not c.double_buffer else 1) & ~self.abort_tile),
                     self.swap.eq(start)]
        with m.If(start):
            m.d.sync += [ld.state.eq(_State.IDLE), tile.state.eq(_State.KEYS), tile.was_drained.eq(0)]
            m.d.sync += [getattr(tile, f).eq(getattr(ld, f)) for f in ("n_keys", "n_rows", "causal", "pattern", "hi")]
        return start

    def _load(self, m, tile):
        """2. Load the tile, one row slot a cycle. Returns the strobe of the last slot's cycle.

        A real slot forks its Q beat to both set-up ports. Each port's valid
        depends only on the beat, never on the other port's ready; a port that
        has taken the slot is marked done, and the beat is consumed (and the
        slot advances) once both have it. With both ports ready that is one
        slot a cycle.
        """
        c = self._cfg
        q_done = Signal()                  # the slot's Q beat is written to the IP-CIM
        row_done = Signal()                # the slot is set up in the softmax unit
        loading = tile.state == _State.LOAD
        real = tile.slot < tile.n_rows
        q = self.q_in.payload
        q_fire = self.q_wr.valid & self.q_wr.ready
        row_fire = self.row_wr.valid & self.row_wr.ready
        advance = loading & (~real | q_done | q_fire) & (row_done | row_fire)
        m.d.comb += [
            self.q_wr.payload.row.eq(tile.slot),
            self.q_wr.payload.data.eq(q.q),
            self.row_wr.payload.row.eq(tile.slot),
            self.row_wr.payload.c_mant.eq(Mux(real, q.c_mant, 0)),
            self.row_wr.payload.c_shift.eq(Mux(real, q.c_shift, 0)),
            self.row_wr.payload.q_pos.eq(Mux(real, q.pos, 0)),
            self.row_wr.payload.active.eq(real),
            self.row_wr.payload.causal.eq(tile.causal),
            self.q_wr.valid.eq(loading & real & self.q_in.valid & ~q_done),
            self.row_wr.valid.eq(loading & (~real | self.q_in.valid) & ~row_done),
            self.q_in.ready.eq(advance & real),
        ]
        last_slot = advance & (tile.slot == c.rows - 1)
        with m.If(advance):
            m.d.sync += tile.slot.eq(tile.slot + 1)
            with m.If(real & (q.pos > tile.hi)):
                m.d.sync += tile.hi.eq(q.pos)
        with m.If(last_slot):
            m.d.sync += tile.state.eq(_State.KEYS)
        # Outside a load, or once the slot moves on, neither port has the next beat.
        with m.If(advance | ~loading):
            m.d.sync += [q_done.eq(0), row_done.eq(0)]
        with m.Else():
            m.d.sync += [q_done.eq(q_done | q_fire), row_done.eq(row_done | row_fire)]
        return last_slot

    def _key_order(self, m, tile, load_done):
        # 3. Issue the keys: candidate (phase, k) registers; `resolve` walks past
        # empty phases and the diagonal window inside the rest, so the key issued
        # is always valid.
        c = self._cfg
        order = _KeyOrder(m, c, tile)
        phase = Signal(2)
        k = Signal(c.n_keys_bits + 1)
        cur_p, cur_k = order.resolve(phase, k)
        keying = tile.state == _State.KEYS
        m.d.comb += [self.key.valid.eq(keying & (cur_p != KeyPhase.DONE)), self.key.payload.pos.eq(cur_k)]
        with m.If(load_done):
            m.d.sync += [phase.eq(KeyPhase.SINK), k.eq(0)]
        with m.If(self.key.valid & self.key.ready):
            with m.Switch(cur_p):
                with m.Case(KeyPhase.SINK):
                    m.d.sync += [phase.eq(KeyPhase.SINK), k.eq(cur_k + 1)]
                with m.Case(KeyPhase.DIAG):
                    with m.If(cur_k > order.diag_lo):
                        m.d.sync += [phase.eq(KeyPhase.DIAG), k.eq(cur_k - 1)]
                    with m.Else():
                        m.d.sync += [phase.eq(KeyPhase.REST), k.eq(order.sink_n)]
                with m.Default():
                    m.d.sync += [phase.eq(KeyPhase.REST), k.eq(cur_k + 1)]
        with m.If(keying & (cur_p == KeyPhase.DONE)):
            m.d.sync += tile.state.eq(_State.WAIT)

    def _end_of_tile(self, m, tile):
        # 4. Once drained, the tile stays ended even if ``drained`` drops: the
        # end is offered until it is taken.
        waiting = (tile.state == _State.WAIT) & ~tile.aborting
        m.d.comb += [self.norm.valid.eq(waiting & (self.drained | tile.was_drained)),
                     self.norm.payload.n_rows.eq(tile.n_rows)]
        with m.If(self.norm.valid):
            m.d.sync += tile.was_drained.eq(1)
        with m.If(self.norm.valid & self.norm.ready):
            m.d.sync += [tile.state.eq(_State.IDLE), tile.was_drained.eq(0)]


class _Tile:
    """The command being run (or, with ``q_double_buffer``, the one being loaded): its fields, the load
    position and the state."""

    def __init__(self, c, prefix=""):
        pre = f"{prefix}_" if prefix else ""
        self.state = Signal(_State, name=f"{pre}state")
        self.n_keys = Signal(c.n_keys_bits, name=f"{pre}n_keys")
        self.n_rows = Signal(c.n_rows_bits, name=f"{pre}n_rows")
        self.causal = Signal(name=f"{pre}causal")
        self.pattern = Signal(name=f"{pre}pattern")
        self.hi = Signal(c.pos_bits, name=f"{pre}hi")            # latest query position of the tile
        self.slot = Signal(range(c.rows + 1), name=f"{pre}slot")
        self.was_drained = Signal(name=f"{pre}was_drained")      # the tile has ended (``norm`` offered)
        self.aborting = Signal(name=f"{pre}aborting")            # aborted: waits for its keys, then discards


class _KeyOrder:
    """The pattern-aware order's bounds for the current tile (docs/numerics.md §6), and its step."""

    def __init__(self, m, c, tile):
        width = c.n_keys_bits
        self._c, self._m, self._tile = c, m, tile
        self.sink_n = Signal(width)
        self.top = Signal(width)
        self.diag_lo = Signal(width)
        self.has_diag = Signal()
        n_keys = tile.n_keys
        m.d.comb += [
            self.sink_n.eq(Mux(tile.pattern, Mux(n_keys < c.sink_keys, n_keys, c.sink_keys), 0)
                           if c.sink_keys else 0),
            self.top.eq(Mux(tile.hi < n_keys - 1, tile.hi, n_keys - 1)),
        ]
        lo = Signal(signed(width + 2))
        window = c.diag_window
        m.d.comb += [
            lo.eq(self.top.as_signed() - (window - 1)),
            self.diag_lo.eq(Mux(lo < self.sink_n.as_signed(), self.sink_n, lo[:width])),
            self.has_diag.eq(tile.pattern & (window > 0) & (self.past_sinks(self.top) if window else 1)),
        ]

    def past_sinks(self, x):
        # x >= sink_n; with no sink keys always true, and written so (a
        # comparison with a constant 0 is a lint error in Verilator).
        return (x >= self.sink_n) if self._c.sink_keys else 1

    def resolve(self, ph, kk):
        """SINK past its end -> DIAG start or REST start; REST inside the window -> past it; REST past n -> DONE."""
        m, width = self._m, self._c.n_keys_bits
        p1 = Signal(2, name="p1")
        k1 = Signal(width + 1, name="k1")
        with m.If((ph == KeyPhase.SINK) & self.past_sinks(kk)):
            m.d.comb += [p1.eq(Mux(self.has_diag, KeyPhase.DIAG, KeyPhase.REST)),
                         k1.eq(Mux(self.has_diag, self.top, self.sink_n))]
        with m.Else():
            m.d.comb += [p1.eq(ph), k1.eq(kk)]
        k2 = Signal(width + 1, name="k2")
        in_window = (p1 == KeyPhase.REST) & self.has_diag & (k1 >= self.diag_lo) & (k1 <= self.top)
        m.d.comb += k2.eq(Mux(in_window, self.top + 1, k1))
        p2 = Signal(2, name="p2")
        m.d.comb += p2.eq(Mux((p1 == KeyPhase.REST) & (k2 >= self._tile.n_keys), KeyPhase.DONE, p1))
        return p2, k2
