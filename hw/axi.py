"""The engine as drop-in IP: AXI4-Stream data, AXI4-Lite registers, an interrupt (``generate engine --bus axi``).

::

    s_axis_kv ---------------------------------> kv_wr  \\
    s_axil --> registers --CMD--> tile sequencer --> cmd  > Engine --> o_out --> output framer --> m_axis_o
    s_axis_q ------------------------^----------> q_in  /                              (tlast, drop)
                                                                     counters --> SNAPSHOT --> registers
    irq <-- IRQ_STATUS & IRQ_ENABLE

Clock ``aclk``, reset ``aresetn`` (synchronous, active low). Every stream's
``tdata`` is the engine's payload (``fusioncim ports engine``) zero-extended
to whole bytes. The register map is :mod:`fusioncim.hw.regmap` (the one
definition; this module builds the decode, the read mux and the write effects
from it).

A command (``CMD_KEYS``, then a write to ``CMD``, which takes CMD_KEYS's value with it, so the
next command's CMD_KEYS may be written while this one is pending) is checked here: n_keys in
``1..kv_depth`` and n_rows in ``1..rows``, else it sets ``ERROR.n_keys`` /
``ERROR.n_rows`` and its tile is dropped: the Q beats up to and including the
next ``tlast`` are discarded. A good command goes to the engine and its Q
beats follow: exactly ``n_rows`` beats, ``tlast`` on the last. Too few (an
early ``tlast``) and the missing rows are padded with zeros; too many (no
``tlast`` on beat ``n_rows``) and the rest up to ``tlast`` is discarded. Either
way ``ERROR.q_beats`` is set and the tile's output rows are dropped, so the
engine never waits on a beat that will not come and the next command runs
normally. Output rows leave on ``m_axis_o`` in slot order, ``tlast`` on each
tile's last row; ``IRQ_STATUS.done`` is set when a tile ends (its last row
sent, or dropped).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, Mux, ResetSignal, Signal
from amaranth.lib import fifo
from amaranth.lib.wiring import In, Out

from ..core.config import EngineConfig
from ..core.counters import COUNTER_BITS, ENGINE_COUNTERS
from .regmap import COUNTER_BASE, ERROR_BITS, IRQ_BITS, registers, stream_bytes, stream_layouts
from .common import Block, add_cell
from .controller import bad_command
from .engine import ERRORS, Engine

__all__ = ["EngineAxi", "ADDR_BITS", "OKAY", "SLVERR"]

ADDR_BITS = 12          # a 4 KiB register window
OKAY, SLVERR = 0, 2
_OUT_TILES = 4          # tiles whose output framing is queued (n_rows, drop)


class EngineAxi(Block):
    """The engine behind AXI4-Stream and AXI4-Lite (module docstring). Ports: ``fusioncim ports engine_axi``."""

    def check(self, config):
        config.check_engine()

    def ports(self, c: EngineConfig):
        sb = stream_bytes(c)
        ports = {"aclk": In(1), "aresetn": In(1)}
        for name, data_bytes in (("s_axis_kv", sb["kv"]), ("s_axis_q", sb["q"])):
            ports.update({f"{name}_tdata": In(8 * data_bytes), f"{name}_tvalid": In(1),
                          f"{name}_tready": Out(1), f"{name}_tlast": In(1)})
        ports.update({"m_axis_o_tdata": Out(8 * sb["o"]), "m_axis_o_tvalid": Out(1), "m_axis_o_tready": In(1),
                      "m_axis_o_tlast": Out(1)})
        ports.update({
            "s_axil_awaddr": In(ADDR_BITS), "s_axil_awprot": In(3), "s_axil_awvalid": In(1), "s_axil_awready": Out(1),
            "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1), "s_axil_wready": Out(1),
            "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(ADDR_BITS), "s_axil_arprot": In(3), "s_axil_arvalid": In(1), "s_axil_arready": Out(1),
            "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
            "irq": Out(1),
        })
        return ports

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        eng = add_cell(m, "engine", Engine(c), platform)
        self._layouts = stream_layouts(c)

        # KV beats go straight in (the engine is always ready and flags what it drops).
        m.d.comb += [eng.kv_wr.valid.eq(self.s_axis_kv_tvalid), self.s_axis_kv_tready.eq(eng.kv_wr.ready),
                     eng.kv_wr.payload.eq(self.s_axis_kv_tdata[:self._layouts["kv"].size])]

        regs = _Registers(m, self, c)
        done_refused, errors = self._tiles(m, eng, regs)
        done_out = self._output(m, eng)

        # Errors: the engine's own bits are copied into ERROR and cleared in the engine at once (it
        # keeps an error that arrives in its clearing cycle), so ERROR's bits clear one by one.
        m.d.comb += eng.err_clear.eq(eng.err != 0)
        for bit in ERRORS:
            errors[bit] = errors[bit] | eng.err[bit] if bit in errors else eng.err[bit]
        errors[ERROR_BITS["cmd_overrun"][0]] = regs.overrun
        m.d.comb += [regs.status["idle"].eq(eng.idle & ~regs.pending & ~self._busy & ~self._out_fifo.r_rdy),
                     regs.status["cmd_ready"].eq(~regs.pending)]
        regs.finish(m, eng, errors, done_refused | done_out)
        return m

    def _tiles(self, m, eng, regs):
        """The tile sequencer: check and issue the pending command, then its Q beats. Returns (done, errors)."""
        c = self._cfg
        self._busy = busy = Signal()             # a tile's Q phase (forward, pad or discard) is in progress
        n_rows = Signal.like(regs.n_rows)
        taken = Signal.like(regs.n_rows)         # Q rows given to the engine in this tile
        mode = Signal(2)                         # 0 forward, 1 pad, 2 discard
        FWD, PAD, DISCARD = 0, 1, 2
        # Per tile waiting for its output: n_rows, and above it whether the rows are dropped.
        drop_bit = len(n_rows)
        self._out_fifo = out = fifo.SyncFIFOBuffered(width=drop_bit + 1, depth=_OUT_TILES)
        m.submodules.out_info = out
        done = Signal()
        bad_keys, bad_rows = bad_command(c, regs.pend_keys, regs.n_rows)
        errors = {ERROR_BITS[name][0]: Signal(name=f"err_{name}") for name in ("n_keys", "n_rows", "q_beats")}

        cmd = eng.cmd.payload
        m.d.comb += [cmd.n_keys.eq(regs.pend_keys), cmd.n_rows.eq(regs.n_rows), cmd.causal.eq(regs.causal),
                     cmd.pattern.eq(regs.pattern)]
        with m.If(regs.pending & ~busy):
            with m.If(bad_keys | bad_rows):
                # Refused here: the engine never sees it; its Q beats up to tlast are discarded.
                m.d.comb += [errors[ERROR_BITS["n_keys"][0]].eq(bad_keys), errors[ERROR_BITS["n_rows"][0]].eq(bad_rows),
                             regs.take_command.eq(1)]
                m.d.sync += [busy.eq(1), mode.eq(DISCARD), n_rows.eq(0)]
            with m.Elif(out.w_rdy):
                m.d.comb += eng.cmd.valid.eq(1)
                with m.If(eng.cmd.ready):
                    m.d.comb += regs.take_command.eq(1)
                    m.d.sync += [busy.eq(1), mode.eq(FWD), n_rows.eq(regs.n_rows), taken.eq(0)]

        q = eng.q_in
        beat = self.s_axis_q_tvalid & self.s_axis_q_tready
        last_row = taken + 1 == n_rows
        with m.If(busy):
            with m.If(mode == FWD):
                m.d.comb += [q.valid.eq(self.s_axis_q_tvalid), self.s_axis_q_tready.eq(q.ready),
                             q.payload.eq(self.s_axis_q_tdata[:self._layouts["q"].size])]
                with m.If(beat):
                    m.d.sync += taken.eq(taken + 1)
                    with m.If(last_row):
                        # The tile's output framing: its rows, and whether they are dropped.
                        m.d.comb += [out.w_en.eq(1), out.w_data.eq(n_rows | (~self.s_axis_q_tlast << drop_bit))]
                        with m.If(self.s_axis_q_tlast):
                            m.d.sync += busy.eq(0)
                        with m.Else():
                            m.d.comb += errors[ERROR_BITS["q_beats"][0]].eq(1)
                            m.d.sync += mode.eq(DISCARD)
                    with m.Elif(self.s_axis_q_tlast):
                        m.d.comb += [errors[ERROR_BITS["q_beats"][0]].eq(1), out.w_en.eq(1),
                                     out.w_data.eq(n_rows | (1 << drop_bit))]
                        m.d.sync += mode.eq(PAD)
            with m.Elif(mode == PAD):
                m.d.comb += q.valid.eq(1)            # a zero row; the tile's output is dropped
                with m.If(q.ready):
                    m.d.sync += taken.eq(taken + 1)
                    with m.If(last_row):
                        m.d.sync += busy.eq(0)
            with m.Else():                               # DISCARD
                m.d.comb += self.s_axis_q_tready.eq(1)
                with m.If(beat & self.s_axis_q_tlast):
                    m.d.sync += busy.eq(0)
                    # A refused command's tile ends here; it has no output rows.
                    m.d.comb += done.eq(n_rows == 0)
        return done, errors

    def _output(self, m, eng):
        """Output rows to ``m_axis_o`` with ``tlast`` per tile, or dropped. Returns the tile-done strobe."""
        info = self._out_fifo
        rows = info.r_data[:-1]
        drop = info.r_data[-1]
        o = eng.o_out
        last = o.payload.row == rows - 1
        m.d.comb += [self.m_axis_o_tdata.eq(o.payload.as_value()), self.m_axis_o_tlast.eq(last),
                     self.m_axis_o_tvalid.eq(o.valid & info.r_rdy & ~drop),
                     o.ready.eq(info.r_rdy & (drop | self.m_axis_o_tready))]
        done = o.valid & o.ready & last
        m.d.comb += info.r_en.eq(done)
        return done


class _Registers:
    """The AXI4-Lite slave and the register file, built from :func:`fusioncim.hw.regmap.registers`.

    Made in two steps: the constructor decodes the write side (the strobes the sequencer reads);
    :meth:`finish` adds the register state, the read side and the interrupt."""

    def __init__(self, m, top, c):
        self.top = top
        self.regs = registers(c)
        by = {r.name: r for r in self.regs}
        # The command's fields, as wide and where the map puts them.
        self.cmd_fields = {name: by["CMD"].field(name) for name in ("n_rows", "causal", "pattern")}
        self.keys_field = by["CMD_KEYS"].field("n_keys")
        self.n_keys = Signal(self.keys_field.width)      # CMD_KEYS as written
        self.pend_keys = Signal.like(self.n_keys)         # the pending command's: CMD_KEYS copied by the CMD write
        self.n_rows, self.causal, self.pattern = (Signal(f.width, name=f"cmd_{n}") for n, f in self.cmd_fields.items())
        self.pending = Signal()                  # CMD written, not yet taken by the sequencer
        self.take_command = Signal()             # the sequencer takes the pending command
        self.status = {"idle": Signal(name="status_idle"), "cmd_ready": Signal(name="status_cmd_ready")}
        self.error = Signal(len(ERROR_BITS))
        self.irq_enable = Signal(len(IRQ_BITS))
        self.irq_status = Signal(len(IRQ_BITS))
        self.snapshot = {name: Signal(COUNTER_BITS, name=f"snap_{name}") for name in ENGINE_COUNTERS}

        # One write at a time: address and data are taken together (AXI lets a slave wait for both
        # valids), then the response is held until taken.
        t = top
        self.bvalid, self.bresp = Signal(), Signal(2)
        self.write = Signal()
        m.d.comb += self.write.eq(t.s_axil_awvalid & t.s_axil_wvalid & ~self.bvalid)
        strobe = Cat(*(t.s_axil_wstrb[i].replicate(8) for i in range(4)))
        self.wdata = Signal(32)
        m.d.comb += self.wdata.eq(t.s_axil_wdata & strobe)
        self.write_to = {}
        for r in self.regs:
            if r.writable:
                self.write_to[r.name] = Signal(name=f"wr_{r.name.lower()}")
                m.d.comb += self.write_to[r.name].eq(self.write & (t.s_axil_awaddr == r.offset))
        self.writable = Signal()
        m.d.comb += self.writable.eq(Cat(*self.write_to.values()) != 0)
        self.overrun = self.write_to["CMD"] & self.pending

    def finish(self, m, eng, errors, done):
        t = self.top
        # Write response: SLVERR for an unmapped or read-only address (nothing changes).
        m.d.comb += [t.s_axil_awready.eq(self.write), t.s_axil_wready.eq(self.write),
                     t.s_axil_bvalid.eq(self.bvalid), t.s_axil_bresp.eq(self.bresp)]
        with m.If(self.write):
            m.d.sync += [self.bvalid.eq(1), self.bresp.eq(Mux(self.writable, OKAY, SLVERR))]
        with m.Elif(t.s_axil_bready):
            m.d.sync += self.bvalid.eq(0)

        # The command: CMD_KEYS is stored; a write to CMD stores the rest and makes it pending,
        # unless one is pending already (ERROR.cmd_overrun, the write dropped).
        with m.If(self.write_to["CMD_KEYS"]):
            m.d.sync += self.n_keys.eq(self._written(self.keys_field))
        with m.If(self.take_command):
            m.d.sync += self.pending.eq(0)
        with m.If(self.write_to["CMD"] & ~self.pending):
            m.d.sync += [self.pend_keys.eq(self.n_keys), self.pending.eq(1)]
            m.d.sync += [getattr(self, name).eq(self._written(f)) for name, f in self.cmd_fields.items()]

        # ERROR and IRQ_STATUS: set by events, each bit cleared by writing 1; an event in the
        # clearing cycle is kept.
        new_errors = Cat(*(errors.get(bit, 0) for bit in range(len(ERROR_BITS))))
        clear = Mux(self.write_to["ERROR"], self.wdata[:len(ERROR_BITS)], 0)
        m.d.sync += self.error.eq((self.error & ~clear) | new_errors)
        irq_new = Cat(*(done if name == "done" else (new_errors != 0) for name in IRQ_BITS))
        clear = Mux(self.write_to["IRQ_STATUS"], self.wdata[:len(IRQ_BITS)], 0)
        m.d.sync += self.irq_status.eq((self.irq_status & ~clear) | irq_new)
        with m.If(self.write_to["IRQ_ENABLE"]):
            m.d.sync += self.irq_enable.eq(self.wdata[:len(IRQ_BITS)])
        m.d.comb += t.irq.eq((self.irq_status & self.irq_enable) != 0)

        # SNAPSHOT: every counter copied at once, so a LO/HI pair and the counters agree.
        with m.If(self.write_to["SNAPSHOT"] & self.wdata[0]):
            m.d.sync += [self.snapshot[name].eq(getattr(eng, name)) for name in ENGINE_COUNTERS]

        # Reads: one at a time; the data is registered with its response.
        rvalid, rdata, rresp = Signal(), Signal(32), Signal(2)
        m.d.comb += [t.s_axil_arready.eq(~rvalid), t.s_axil_rvalid.eq(rvalid), t.s_axil_rdata.eq(rdata),
                     t.s_axil_rresp.eq(rresp)]
        with m.If(t.s_axil_arvalid & ~rvalid):
            m.d.sync += rvalid.eq(1)
            with m.Switch(t.s_axil_araddr):
                for r in self.regs:
                    with m.Case(r.offset):
                        m.d.sync += [rdata.eq(self._read_value(r)), rresp.eq(OKAY)]
                with m.Default():                        # unmapped
                    m.d.sync += [rdata.eq(0), rresp.eq(SLVERR)]
        with m.Elif(t.s_axil_rready):
            m.d.sync += rvalid.eq(0)

    def _written(self, f):
        """Field ``f`` of the write data."""
        return self.wdata[f.lsb:f.lsb + f.width]

    def _read_value(self, r):
        """What a read of register ``r`` returns."""
        if r.offset >= COUNTER_BASE:
            value = self.snapshot[ENGINE_COUNTERS[(r.offset - COUNTER_BASE) // 8]]
            return value[32:] if r.name.endswith("_HI") else value[:32]
        state = {"CMD_KEYS": {"n_keys": self.n_keys},
                 "CMD": {"n_rows": self.n_rows, "causal": self.causal, "pattern": self.pattern},
                 "STATUS": self.status,
                 "ERROR": {name: self.error[bit] for name, (bit, _) in ERROR_BITS.items()},
                 "IRQ_ENABLE": {name: self.irq_enable[bit] for name, (bit, _) in IRQ_BITS.items()},
                 "IRQ_STATUS": {name: self.irq_status[bit] for name, (bit, _) in IRQ_BITS.items()}}
        expr = Const(0, 32)
        for f in r.fields:
            if f.access == "const":
                value = Const(f.reset, f.width)
            elif f.access == "w1p":
                value = Const(0, f.width)          # write-only: reads 0
            else:
                value = state[r.name][f.name]
            expr = expr | (value.as_unsigned() << f.lsb)
        return expr
