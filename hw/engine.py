"""The FusionCIM attention engine: KV buffer, controller and the fused IP-CIM -> softmax -> OP-CIM pipeline.

Q and O stay in the two CIM arrays; per Q tile every key is read once from
the on-chip KV buffer (``lib.memory``), its scores go straight from the
IP-CIM into the softmax unit and its probabilities straight into the OP-CIM:
no S or P buffer. The stages are joined by valid/ready handshakes and one
register each (the K read, the V read), so no stage waits for a whole matrix.
A key the softmax flags as zero in every row skips its V read and the OP-CIM.

::

    kv_wr --> [K sram] [V sram]   (kv_sram modules: the place of SRAM macros)
    cmd, q_in --> Controller --key--> K read --> IpCim --s--> Softmax --p--> V read --> OpCim --> o_out
                      |  q_wr ---------------------^             ^  row_wr                  ^ norm (l, n_rows)

Timing (docs/numerics.md section 7) is exact with no stall on the external
streams: the counters equal ``golden.engine``'s, cycles included.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream
from amaranth.lib.wiring import In, Out, connect, flipped

from ..core.config import EngineConfig
from ..core.keyscale import FIELDS as KEY_SCALE_FIELDS
from ..core.counters import COUNTER_BITS, ENGINE_COUNTERS, SOFTMAX_COUNTERS
from ..core.schedule import ip_depth
from .common import Block, add_cell, data_row
from .controller import Controller, ERR_KEYS, ERR_ROWS, cmd_layout, q_layout
from .ip_cim import IpCim
from .kv_sram import SRAM_MEMORY, KvSram
from .op_cim import OpCim, o_out_layout
from .softmax import Softmax

__all__ = ["Engine", "ERRORS", "KV_MEMORIES", "ERR_KEYS", "ERR_ROWS", "ERR_KV_BUSY", "ERR_KV_ADDR", "kv_wr_layout",
           "kv_scale_fields"]

ERR_KV_BUSY = 2    # a KV-buffer write arrived while a tile was in progress; it was dropped
ERR_KV_ADDR = 3    # a KV-buffer write beyond the buffer's depth; it was dropped
ERRORS = {ERR_KEYS: ("n_keys", "n_keys is 0 or beyond the KV buffer"),
          ERR_ROWS: ("n_rows", "n_rows is 0 or beyond rows"),
          ERR_KV_BUSY: ("kv_busy", "KV write while a tile was in progress"),
          ERR_KV_ADDR: ("kv_addr", "KV write beyond the buffer")}
"""The engine's sticky error bits: bit -> (name, meaning). The AXI top's ERROR register starts with them."""

KV_MEMORIES = (SRAM_MEMORY,)
"""The KV buffer's memories by their name in the Verilog, one in each of the two ``kv_sram`` instances
(:mod:`.kv_sram`, a foundry macro's place): SRAMs with no initial contents; the area flow prices them as
SRAM, ``kv_buffer_bits`` in total."""


def kv_scale_fields(c: EngineConfig):
    """``{name: bits}`` of the per-key scale codes a KV write carries: ``k_exp``, ``k_mant``, ``v_exp``, each
    present when its config field is non-zero (``fusioncim.core.keyscale``)."""
    return {name: getattr(c, bits) for name, bits in KEY_SCALE_FIELDS if getattr(c, bits)}


def kv_wr_layout(c: EngineConfig):
    """One key and value for the buffer: ``{addr, k[head_dim], v[head_dim]}`` and the key's scale codes
    (:func:`kv_scale_fields`)."""
    return data.StructLayout({"addr": unsigned(c.kv_addr_bits), "k": data_row(c), "v": data_row(c),
                              **{n: unsigned(b) for n, b in kv_scale_fields(c).items()}})


class Engine(Block):
    """The whole attention engine for one config.

    Raises ValueError when the config cannot make an engine
    (:meth:`EngineConfig.check_engine`).

    Members
    -------
    kv_wr : In(stream)
        ``{addr, k[head_dim], v[head_dim]}``: writes one key and value into the
        buffer. Always ready; a write while a tile is in progress or beyond the
        depth is dropped and flagged (``ERR_KV_BUSY``, ``ERR_KV_ADDR``).
    cmd : In(stream)
        ``{n_keys, n_rows, causal, pattern}``: run one Q tile of ``n_rows`` rows
        against keys ``[0, n_keys)``, keys in order (``pattern`` 0) or
        pattern-aware (1). Waits while a tile is in progress.
    q_in : In(stream)
        ``{q[head_dim], pos, c_mant, c_shift}``: the tile's Q rows in slot order.
    o_out : Out(stream)
        ``{row, o[head_dim]}``: the tile's normalised rows, slot 0 first.
    idle : Out(1)
        Nothing in progress and no output pending.
    err : Out(4)
        Sticky error bits (``ERRORS``), set by a refused command or KV write.
    err_clear : In(1)
        Clears every error bit at the clock edge where it is high.
    abort_tile : In(1)
        Drops every tile not yet handed to the normaliser (a command taken in the same cycle, a load,
        a loaded tile, the tile whose keys run: its keys drain and its partial O is cleared) and
        returns the engine to idle; a tile already being normalised finishes, so ``o_out`` never
        carries part of a tile. For a host that stops sending a tile's Q rows.
    cycles, ... ip_stalls : Out(40)
        Counters since reset (``fusioncim.core.counters.ENGINE_COUNTERS``).
    """

    def check(self, config):
        config.check_engine()

    def ports(self, c: EngineConfig):
        ports = {
            "kv_wr": In(stream.Signature(kv_wr_layout(c))),
            "cmd": In(stream.Signature(cmd_layout(c))),
            "q_in": In(stream.Signature(q_layout(c))),
            "o_out": Out(stream.Signature(o_out_layout(c))),
            "idle": Out(1),
            "err": Out(len(ERRORS)),
            "err_clear": In(1),
            "abort_tile": In(1),
        }
        ports.update({name: Out(COUNTER_BITS) for name in ENGINE_COUNTERS})
        return ports

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        # Each block is a module of its own in the Verilog, the same one `fusioncim generate BLOCK` writes.
        ctrl = add_cell(m, "ctrl", Controller(c), platform)
        ip = add_cell(m, "ip", IpCim(c), platform)
        sm = add_cell(m, "sm", Softmax(c), platform)
        op = add_cell(m, "op", OpCim(c), platform)
        # The K and V buffers: one SRAM module each (kv_sram), reached through its ports.
        k_mem, v_mem = (add_cell(m, name, KvSram(c), platform) for name in ("k_sram", "v_sram"))
        kv_written = self._kv_buffer(m, ctrl, _Port(k_mem, "wr"), _Port(v_mem, "wr"))

        # Command and Q tile in, set-up out.
        connect(m, ctrl.cmd, flipped(self.cmd))
        connect(m, ctrl.q_in, flipped(self.q_in))
        connect(m, ctrl.q_wr, ip.q_wr)
        connect(m, ctrl.row_wr, sm.row_wr)
        m.d.comb += [ctrl.abort_tile.eq(self.abort_tile), op.clear.eq(ctrl.discard)]
        if c.q_double_buffer:
            m.d.comb += [ip.swap.eq(ctrl.swap), sm.swap.eq(ctrl.swap)]

        take_key = self._k_read(m, ctrl, ip, sm, _Port(k_mem, "rd"))
        take_p, v_read, v_valid = self._v_read(m, sm, op, _Port(v_mem, "rd"))

        # End of tile: the pipeline is drained when every key issued has left
        # the softmax and the OP-CIM has finished the last one.
        inflight = Signal(c.n_keys_bits + 1)
        m.d.sync += inflight.eq(inflight + take_key - take_p)
        m.d.comb += [ctrl.drained.eq((inflight == 0) & ~v_valid & ~op.key_active),
                     ctrl.op_free.eq(~op.busy & ~op.o_out.valid),
                     op.norm_in.valid.eq(ctrl.norm.valid), op.norm_in.payload.l.eq(sm.l),
                     op.norm_in.payload.n_rows.eq(ctrl.norm.payload.n_rows), ctrl.norm.ready.eq(op.norm_in.ready)]
        connect(m, op.o_out, flipped(self.o_out))
        m.d.comb += self.idle.eq(ctrl.idle & ~op.busy & ~op.o_out.valid)

        self._counters(m, sm, {
            "cycles": ~self.idle | (self.cmd.valid & self.cmd.ready),
            "q_load_cycles": ctrl.row_wr.valid & ctrl.row_wr.ready,
            "ip_busy": ip.active,
            "softmax_busy": sm.active,
            "op_busy": op.key_active,
            "norm_busy": op.norm_active,
            "tiles": ctrl.norm.valid & ctrl.norm.ready,
            "k_reads": take_key,
            "v_reads": v_read,
            "cim_writes": ctrl.q_wr.valid & ctrl.q_wr.ready,
            "kv_writes": kv_written,
            # The IP-CIM holds a finished key because the softmax cannot take it:
            # the softmax (or what is behind it) sets the pace.
            "ip_stalls": ip.s.valid & ~ip.s.ready,
        })
        return m

    def _kv_buffer(self, m, ctrl, k_wr, v_wr):
        """KV-buffer writes, refused (and flagged) during a tile or beyond the depth. Returns the write strobe."""
        c = self._cfg
        kv = self.kv_wr.payload
        wr = self.kv_wr.valid & self.kv_wr.ready
        in_range = kv.addr < c.kv_keys
        write = wr & ctrl.idle & in_range
        m.d.comb += [self.kv_wr.ready.eq(1), k_wr.addr.eq(kv.addr), k_wr.en.eq(write),
                     v_wr.addr.eq(kv.addr), v_wr.en.eq(write)]
        if c.kv_scale_bits:
            fields = kv_scale_fields(c)
            k_scale = Cat(*[kv[n] for n in ("k_exp", "k_mant") if n in fields])
            v_scale = kv.v_exp if "v_exp" in fields else 0
            m.d.comb += [k_wr.data.row.eq(kv.k), k_wr.data.scale.eq(k_scale),
                         v_wr.data.row.eq(kv.v), v_wr.data.scale.eq(v_scale)]
        else:
            m.d.comb += [k_wr.data.eq(kv.k), v_wr.data.eq(kv.v)]
        err_kv = Signal(2)
        # Clear first, so an error in the clearing cycle is kept (as in the controller).
        with m.If(self.err_clear):
            m.d.sync += err_kv.eq(0)
        with m.If(wr & ~ctrl.idle):
            m.d.sync += err_kv[0].eq(1)
        with m.If(wr & ~in_range):
            m.d.sync += err_kv[1].eq(1)
        m.d.comb += [self.err.eq(ctrl.err | (err_kv << ERR_KV_BUSY)), ctrl.err_clear.eq(self.err_clear)]
        return write

    def _k_read(self, m, ctrl, ip, sm, k_rd):
        """K read: one register between the key order and the IP-CIM. Returns the key-issue strobe."""
        c = self._cfg
        k_valid = Signal()
        k_pos = Signal(c.pos_bits)
        take_key = ctrl.key.valid & ctrl.key.ready
        k_row = k_rd.data.row if c.kv_scale_bits else k_rd.data
        m.d.comb += [ctrl.key.ready.eq(~k_valid | ip.k.ready),
                     k_rd.addr.eq(ctrl.key.payload.pos), k_rd.en.eq(take_key),
                     ip.k.valid.eq(k_valid), ip.k.payload.eq(k_row)]
        with m.If(ip.k.valid & ip.k.ready):
            m.d.sync += k_valid.eq(0)
        with m.If(take_key):
            m.d.sync += [k_valid.eq(1), k_pos.eq(ctrl.key.payload.pos)]

        # Key positions (and K scales) ride beside the IP-CIM. The FIFO refuses a write when
        # full even if it is read in the same cycle, so it holds one more than
        # the keys the IP-CIM can hold.
        rides = Cat(k_pos, k_rd.data.scale[:c.k_scale_bits]) if c.k_scale_bits else k_pos
        m.submodules.pos_fifo = pos_fifo = fifo.SyncFIFO(width=c.pos_bits + c.k_scale_bits, depth=ip_depth(c) + 1)
        m.d.comb += [pos_fifo.w_data.eq(rides), pos_fifo.w_en.eq(ip.k.valid & ip.k.ready),
                     sm.s_in.valid.eq(ip.s.valid), sm.s_in.payload.scores.eq(ip.s.payload),
                     sm.s_in.payload.key_pos.eq(pos_fifo.r_data[:c.pos_bits]), ip.s.ready.eq(sm.s_in.ready),
                     pos_fifo.r_en.eq(sm.s_in.valid & sm.s_in.ready)]
        if c.k_scale_bits:
            m.d.comb += sm.s_in.payload.k_scale.eq(pos_fifo.r_data[c.pos_bits:])
        return take_key

    def _v_read(self, m, sm, op, v_rd):
        """V read: skipped keys end here. Returns (p taken, V read strobe, a key waiting for the OP-CIM)."""
        v_valid = Signal()
        p = sm.p_out.payload
        take_p = sm.p_out.valid & sm.p_out.ready
        v_read = take_p & ~p.skip
        p_reg = Signal.like(op.kv_in.payload.p)
        shift_reg = Signal.like(op.kv_in.payload.shift)
        m.d.comb += [sm.p_out.ready.eq(~v_valid | op.kv_in.ready),
                     v_rd.addr.eq(p.key_pos), v_rd.en.eq(v_read),
                     op.kv_in.valid.eq(v_valid), op.kv_in.payload.p.eq(p_reg),
                     op.kv_in.payload.shift.eq(shift_reg), op.kv_in.payload.skip.eq(0)]
        c = self._cfg
        if c.kv_scale_bits:
            m.d.comb += op.kv_in.payload.v.eq(v_rd.data.row)
            if c.v_exp_bits:
                m.d.comb += op.kv_in.payload.v_exp.eq(v_rd.data.scale[:c.v_exp_bits])
        else:
            m.d.comb += op.kv_in.payload.v.eq(v_rd.data)
        with m.If(op.kv_in.valid & op.kv_in.ready):
            m.d.sync += v_valid.eq(0)
        with m.If(v_read):
            m.d.sync += [v_valid.eq(1), p_reg.eq(p.p), shift_reg.eq(p.shift)]
        return take_p, v_read, v_valid

    def _counters(self, m, sm, events):
        # The softmax unit's own counters pass through; the others count their event.
        assert set(events) | set(SOFTMAX_COUNTERS) == set(ENGINE_COUNTERS)
        for name in ENGINE_COUNTERS:
            counter = getattr(self, name)
            if name in SOFTMAX_COUNTERS:
                m.d.comb += counter.eq(getattr(sm, name))
            else:
                m.d.sync += counter.eq(counter + events[name])


class _Port:
    """One port of a :class:`KvSram` as the engine drives it: ``addr``, ``data``, ``en`` (its ``wr_`` or ``rd_``
    signals)."""

    def __init__(self, sram, side):
        self.addr, self.data, self.en = (getattr(sram, f"{side}_{name}") for name in ("addr", "data", "en"))
