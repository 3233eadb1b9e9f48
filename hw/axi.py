"""The engine as drop-in IP: AXI4-Stream data, AXI4-Lite registers, an interrupt (``generate engine --bus axi``).

::

    s_axis_kv ---------------------------------> kv_wr  \\
    s_axil --> RegisterBlock --cmd--> tile sequencer --> cmd  > Engine --> o_out --> output framer --> m_axis_o
    s_axis_q ------------------------^----------> q_in  /                              (tlast, drop)
                                                                     counters --> SNAPSHOT --> registers
    irq <-- IRQ_STATUS & IRQ_ENABLE

Clock ``aclk``, reset ``aresetn`` (synchronous, active low). Every stream's
``tdata`` is the engine's payload (``fusioncim ports engine``) zero-extended
to whole bytes. The register map is :mod:`fusioncim.hw.regmap` (the one
definition); :class:`RegisterBlock`, a component of its own (its ``cmd`` a
stream that is valid while a command is pending), builds the decode, the read
mux and the write effects from it. The tile sequencer and the output framer
are methods of the top.

A command (``CMD_KEYS``, then a write to ``CMD``, which takes CMD_KEYS's value with it, so the
next command's CMD_KEYS may be written while this one is pending) is checked here: n_keys in
``1..kv_depth`` and n_rows in ``1..rows``, else it sets ``ERROR.n_keys`` /
``ERROR.n_rows`` and is dropped at once, taking no Q beats (a host sends none for
it). A good command goes to the engine and its Q
beats follow: exactly ``n_rows`` beats, ``tlast`` on the last. Too few (an
early ``tlast``) and the missing rows are padded with zeros; too many (no
``tlast`` on beat ``n_rows``) and the rest up to ``tlast`` is discarded. Either
way ``ERROR.q_beats`` is set and the tile's output rows are dropped, so the
engine never waits on a beat that will not come and the next command runs
normally. Output rows leave on ``m_axis_o`` in slot order, ``tlast`` on each
tile's last row; ``IRQ_STATUS.done`` is set when a tile ends (its last row
sent, or dropped). ``ABORT`` drops the pending command, the Q phase in progress and
the engine's tiles not yet being normalised (the engine's ``abort_tile``), and the
framing entries of those tiles once the engine is idle; ``WATCHDOG`` raises
``ERROR.watchdog`` after that many cycles of work with nothing moving. The register
writes honour ``wstrb`` byte by byte (``fusioncim.hw.regmap``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import data, fifo, stream
from amaranth.lib.wiring import In, Out, Signature, connect

from ..core.config import EngineConfig
from ..core.counters import COUNTER_BITS, ENGINE_COUNTERS
from .regmap import COUNTER_BASE, ERROR_BITS, IRQ_BITS, registers, stream_bytes, stream_layouts
from .common import Block, add_cell
from .controller import bad_command
from .engine import ERRORS, Engine

__all__ = ["EngineAxi", "RegisterBlock", "AXI_LITE", "ENGINE_STATUS", "ADDR_BITS", "OKAY", "SLVERR"]

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

        # The register block: its AXI4-Lite slave on the top's s_axil_* ports (flat, so that they keep the
        # AXI names), its command stream and the engine's status joined to the rest with connect.
        regs = add_cell(m, "regs", RegisterBlock(c), platform)
        for name, member in AXI_LITE.members.items():
            port = getattr(self, f"s_axil_{name}")
            m.d.comb += getattr(regs.bus, name).eq(port) if member.flow is Out else port.eq(getattr(regs.bus, name))
        m.d.comb += self.irq.eq(regs.irq)
        pending = regs.cmd.signature.flip().create(path=("pending",))
        status = ENGINE_STATUS.create(path=("status",))
        connect(m, regs.cmd, pending)
        connect(m, status, regs.status)
        done_refused, errors = self._tiles(m, eng, pending, regs.abort)
        done_out = self._output(m, eng)
        idle = eng.idle & ~self._busy & ~self._out_fifo.r_rdy & ~self._flushing
        errors[ERROR_BITS["watchdog"][0]] = self._watchdog(m, eng, regs.watchdog, ~idle | pending.valid)

        # Errors: the engine's own bits are copied into ERROR and cleared in the engine at once (it
        # keeps an error that arrives in its clearing cycle), so ERROR's bits clear one by one.
        m.d.comb += eng.err_clear.eq(eng.err != 0)
        for bit in ERRORS:
            errors[bit] = errors[bit] | eng.err[bit] if bit in errors else eng.err[bit]
        m.d.comb += [status.errors.eq(Cat(*(errors.get(bit, 0) for bit in range(len(ERROR_BITS))))),
                     status.done.eq(done_refused | done_out),
                     status.idle.eq(idle)]
        m.d.comb += [status.counters[name].eq(getattr(eng, name)) for name in ENGINE_COUNTERS]
        return m

    def _watchdog(self, m, eng, limit, working):
        """ERROR.watchdog's event: ``limit`` cycles (0: never) of ``working`` with nothing moving. Moving:
        a beat on any stream, or a busy counter of the engine stepping (their lowest bits, which step
        with every count)."""
        steps = Cat(*(getattr(eng, name)[0] for name in ("ip_busy", "softmax_busy", "op_busy", "norm_busy",
                                                          "q_load_cycles")))
        last = Signal.like(steps)
        m.d.sync += last.eq(steps)
        beats = Cat(*(getattr(self, f"{s}_tvalid") & getattr(self, f"{s}_tready")
                      for s in ("s_axis_kv", "s_axis_q", "m_axis_o")))
        moving = (steps != last) | (beats != 0)
        count = Signal(len(limit))
        with m.If(~working | moving | (limit == 0)):
            m.d.sync += count.eq(0)
        with m.Elif(count != limit):
            m.d.sync += count.eq(count + 1)
        fire = Signal()
        m.d.comb += fire.eq(working & ~moving & (limit != 0) & (count + 1 == limit))
        return fire

    def _tiles(self, m, eng, pending, abort):
        """The tile sequencer: check and issue the pending command (the register block's ``cmd`` stream),
        then its Q beats; ``abort`` drops what is in progress. Returns (done, errors)."""
        c = self._cfg
        req = pending.payload
        self._busy = busy = Signal()             # a tile's Q phase (forward, pad or discard) is in progress
        n_rows = Signal(len(req.n_rows))
        taken = Signal(len(req.n_rows))          # Q rows given to the engine in this tile
        mode = Signal(2)                         # 0 forward, 1 pad, 2 discard
        FWD, PAD, DISCARD = 0, 1, 2
        # Per tile waiting for its output: n_rows, and above it whether the rows are dropped.
        drop_bit = len(n_rows)
        self._out_fifo = out = fifo.SyncFIFOBuffered(width=drop_bit + 1, depth=_OUT_TILES)
        m.submodules.out_info = out
        done = Signal()
        bad_keys, bad_rows = bad_command(c, req.n_keys, req.n_rows)
        errors = {ERROR_BITS[name][0]: Signal(name=f"err_{name}") for name in ("n_keys", "n_rows", "q_beats")}

        cmd = eng.cmd.payload
        m.d.comb += [cmd.n_keys.eq(req.n_keys), cmd.n_rows.eq(req.n_rows), cmd.causal.eq(req.causal),
                     cmd.pattern.eq(req.pattern)]
        # After ABORT: no command is issued until the engine has finished the tile it was normalising and
        # the framing entries of the dropped tiles are gone (``_output``).
        self._flushing = flushing = Signal()
        with m.If(pending.valid & ~busy & ~flushing & ~abort):
            with m.If(bad_keys | bad_rows):
                # Refused here: the engine never sees it, and it takes no Q beats (a host sends none for
                # it), so the next tile's beats are the next tile's. The tile ends at once.
                m.d.comb += [errors[ERROR_BITS["n_keys"][0]].eq(bad_keys), errors[ERROR_BITS["n_rows"][0]].eq(bad_rows),
                             pending.ready.eq(1), done.eq(1)]
            with m.Elif(out.w_rdy):
                m.d.comb += eng.cmd.valid.eq(1)
                with m.If(eng.cmd.ready):
                    m.d.comb += pending.ready.eq(1)
                    m.d.sync += [busy.eq(1), mode.eq(FWD), n_rows.eq(req.n_rows), taken.eq(0)]

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
        # ABORT (last, so it wins): the Q phase stops where it is, and no beat more is taken for it.
        m.d.comb += eng.abort_tile.eq(abort)
        with m.If(abort):
            m.d.sync += [busy.eq(0), flushing.eq(1)]
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
        # After ABORT, once the engine is idle every framing entry left belongs to a dropped tile.
        flush = self._flushing & eng.idle
        m.d.comb += info.r_en.eq(done | (flush & info.r_rdy))
        with m.If(flush & ~info.r_rdy):
            m.d.sync += self._flushing.eq(0)
        return done


AXI_LITE = Signature({"awaddr": Out(ADDR_BITS), "awvalid": Out(1), "awready": In(1),
                      "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
                      "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                      "araddr": Out(ADDR_BITS), "arvalid": Out(1), "arready": In(1),
                      "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1)})
"""AXI4-Lite as the register block uses it, from the master's side, by the AXI names (``s_axil_NAME`` on
the top; ``awprot`` and ``arprot`` are accepted and ignored)."""

ENGINE_STATUS = Signature({"idle": Out(1), "errors": Out(len(ERROR_BITS)), "done": Out(1),
                           "counters": Out(data.StructLayout({name: COUNTER_BITS for name in ENGINE_COUNTERS}))})
"""What the rest of the top tells the register block, from the rest's side: ``idle`` (nothing in progress
and no output waiting), ``errors`` (error events by ERROR bit; the register block adds ``cmd_overrun``
itself), ``done`` (a tile ended: IRQ_STATUS.done) and the engine's ``counters`` (SNAPSHOT copies them)."""


class RegisterBlock(Block):
    """The AXI4-Lite slave and the register file, built from :func:`fusioncim.hw.regmap.registers`.

    Members
    -------
    bus : In(:data:`AXI_LITE`)
        The AXI4-Lite slave.
    irq : Out(1)
    cmd : Out(stream)
        The pending command: ``valid`` from the CMD write until the sequencer takes it (``ready``); the
        payload is CMD_KEYS as it was when CMD was written, and CMD's fields, as wide as the map says.
    status : In(:data:`ENGINE_STATUS`)
        The engine's state, events and counters.
    """

    def ports(self, config: EngineConfig):
        self._regs = registers(config)
        self._regs_by = by = {r.name: r for r in self._regs}
        # The command's fields, as wide and where the map puts them.
        self._keys_field = by["CMD_KEYS"].field("n_keys")
        self._cmd_fields = {name: by["CMD"].field(name) for name in ("n_rows", "causal", "pattern")}
        cmd = data.StructLayout({"n_keys": self._keys_field.width,
                                 **{name: f.width for name, f in self._cmd_fields.items()}})
        self._watchdog_field = by["WATCHDOG"].field("cycles")
        return {"bus": In(AXI_LITE), "irq": Out(1), "cmd": Out(stream.Signature(cmd)), "status": In(ENGINE_STATUS),
                "abort": Out(1), "watchdog": Out(self._watchdog_field.width)}

    def elaborate(self, platform):
        m = Module()
        write_to, wdata, strobe = self._write_side(m)

        def merged(old, f):
            # Field f after the write: its strobed bytes from wdata, the others as they were.
            s = strobe[f.lsb:f.lsb + f.width]
            return (old & ~s) | (wdata[f.lsb:f.lsb + f.width] & s)

        pending, cmd = self.cmd.valid, self.cmd.payload
        n_keys = Signal(self._keys_field.width)           # CMD_KEYS as written
        # The command: CMD_KEYS is stored; a write to CMD stores the rest and makes it pending,
        # unless one is pending already (ERROR.cmd_overrun, the write dropped).
        overrun = write_to["CMD"] & pending
        with m.If(write_to["CMD_KEYS"]):
            m.d.sync += n_keys.eq(merged(n_keys, self._keys_field))
        with m.If(self.cmd.ready):
            m.d.sync += pending.eq(0)
        with m.If(write_to["CMD"] & ~pending):
            m.d.sync += [cmd.n_keys.eq(n_keys), pending.eq(1)]
            m.d.sync += [cmd[name].eq(merged(cmd[name], f)) for name, f in self._cmd_fields.items()]
        # ABORT: the pending command is dropped with the engine's tiles.
        m.d.comb += self.abort.eq(write_to["ABORT"] & wdata[0])
        with m.If(self.abort):
            m.d.sync += pending.eq(0)
        watchdog = Signal(self._watchdog_field.width)
        with m.If(write_to["WATCHDOG"]):
            m.d.sync += watchdog.eq(merged(watchdog, self._watchdog_field))
        m.d.comb += self.watchdog.eq(watchdog)

        # ERROR and IRQ_STATUS: set by events, each bit cleared by writing 1; an event in the
        # clearing cycle is kept.
        error, irq_enable, irq_status = Signal(len(ERROR_BITS)), Signal(len(IRQ_BITS)), Signal(len(IRQ_BITS))
        new_errors = self.status.errors | (overrun << ERROR_BITS["cmd_overrun"][0])
        clear = Mux(write_to["ERROR"], wdata[:len(ERROR_BITS)], 0)
        m.d.sync += error.eq((error & ~clear) | new_errors)
        irq_new = Cat(*(self.status.done if name == "done" else (new_errors != 0) for name in IRQ_BITS))
        clear = Mux(write_to["IRQ_STATUS"], wdata[:len(IRQ_BITS)], 0)
        m.d.sync += irq_status.eq((irq_status & ~clear) | irq_new)
        with m.If(write_to["IRQ_ENABLE"]):
            m.d.sync += irq_enable.eq(Cat(*(merged(irq_enable[bit], f) for bit, f in
                                            enumerate(self._regs_by["IRQ_ENABLE"].fields))))
        m.d.comb += self.irq.eq((irq_status & irq_enable) != 0)

        # SNAPSHOT: every counter copied at once, so a LO/HI pair and the counters agree.
        snapshot = {name: Signal(COUNTER_BITS, name=f"snap_{name}") for name in ENGINE_COUNTERS}
        with m.If(write_to["SNAPSHOT"] & wdata[0]):
            m.d.sync += [snapshot[name].eq(self.status.counters[name]) for name in ENGINE_COUNTERS]

        state = {"CMD_KEYS": {"n_keys": n_keys}, "WATCHDOG": {"cycles": watchdog},
                 "CMD": {name: cmd[name] for name in self._cmd_fields},
                 "STATUS": {"idle": self.status.idle & ~pending, "cmd_ready": ~pending},
                 "ERROR": {name: error[bit] for name, (bit, _) in ERROR_BITS.items()},
                 "IRQ_ENABLE": {name: irq_enable[bit] for name, (bit, _) in IRQ_BITS.items()},
                 "IRQ_STATUS": {name: irq_status[bit] for name, (bit, _) in IRQ_BITS.items()}}
        self._read_side(m, state, snapshot)
        return m

    def _write_side(self, m):
        # One write at a time: address and data are taken together (AXI lets a slave wait for both
        # valids), then the response is held until taken; SLVERR for an unmapped or read-only address
        # (nothing changes). The register is the word at awaddr (bits [1:0] ignored); a write acts only
        # with some strobe. Returns the per-register write strobes, the data with its byte strobes
        # applied and the strobes as a 32-bit mask.
        bus = self.bus
        write = Signal()
        m.d.comb += write.eq(bus.awvalid & bus.wvalid & ~bus.bvalid)
        strobe = Signal(32)
        m.d.comb += strobe.eq(Cat(*(bus.wstrb[i].replicate(8) for i in range(4))))
        wdata = Signal(32)
        m.d.comb += wdata.eq(bus.wdata & strobe)
        write_to, hits = {}, []
        for r in self._regs:
            if r.writable:
                hit = write & (bus.awaddr[2:] == r.offset >> 2)
                hits.append(hit)
                write_to[r.name] = Signal(name=f"wr_{r.name.lower()}")
                m.d.comb += write_to[r.name].eq(hit & (bus.wstrb != 0))
        writable = Signal()
        m.d.comb += writable.eq(Cat(*hits) != 0)
        m.d.comb += [bus.awready.eq(write), bus.wready.eq(write)]
        with m.If(write):
            m.d.sync += [bus.bvalid.eq(1), bus.bresp.eq(Mux(writable, OKAY, SLVERR))]
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        return write_to, wdata, strobe

    def _read_side(self, m, state, snapshot):
        # Reads: one at a time; the data is registered with its response.
        bus = self.bus
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & ~bus.rvalid):
            m.d.sync += bus.rvalid.eq(1)
            with m.Switch(bus.araddr[2:]):
                for r in self._regs:
                    with m.Case(r.offset >> 2):
                        m.d.sync += [bus.rdata.eq(self._read_value(r, state, snapshot)), bus.rresp.eq(OKAY)]
                with m.Default():                        # unmapped
                    m.d.sync += [bus.rdata.eq(0), bus.rresp.eq(SLVERR)]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)

    @staticmethod
    def _read_value(r, state, snapshot):
        """What a read of register ``r`` returns."""
        if r.offset >= COUNTER_BASE:
            value = snapshot[ENGINE_COUNTERS[(r.offset - COUNTER_BASE) // 8]]
            return value[32:] if r.name.endswith("_HI") else value[:32]
        expr = Const(0, 32)
        for f in r.fields:
            if f.access == "const":
                value = Const(f.reset, f.width)
            elif f.access == "w1p":
                value = Const(0, f.width)          # write-only: reads 0
            else:
                value = state[r.name][f.name]
            expr = expr | (Value.cast(value).as_unsigned() << f.lsb)
        return expr
