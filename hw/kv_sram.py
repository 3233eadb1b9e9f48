"""One memory of the KV buffer as a module of its own: the place of an SRAM macro (issue 32, item 4).

The engine's K buffer and V buffer are each one instance of :class:`KvSram`, a cell (one Verilog module,
``kv_sram``, instantiated twice), with the interface of a simple dual-port synchronous SRAM, so a
foundry macro, or a wrapper around one, with these ports can stand in for the generated module:

=========  =====  =============================  =================================================
port       dir    width                          meaning
=========  =====  =============================  =================================================
clk        in     1                              the engine's clock; both ports are synchronous to it
rst        in     1                              the engine's reset; the memory ignores it
wr_en      in     1                              write ``wr_data`` at ``wr_addr`` at this clock edge
wr_addr    in     ``kv_addr_bits``               word address, below ``kv_depth`` when ``wr_en``
wr_data    in     ``kv_word_bits``               one K (or V) row, element i at bits [i*data_bits +: data_bits];
                                                 with per-key scales, the key's scale codes above the row
rd_en      in     1                              read the word at ``rd_addr`` at this clock edge
rd_addr    in     ``kv_addr_bits``               word address, below ``kv_depth`` when ``rd_en``
rd_data    out    ``kv_word_bits``               the word read at the last edge with ``rd_en``; held while
                                                 ``rd_en`` is low (one cycle of read latency)
=========  =====  =============================  =================================================

``kv_depth`` words (``KV_DEPTH.keys`` on the AXI top) of ``kv_word_bits``: ``head_dim * data_bits``, plus
``kv_scale_bits`` with per-key scales (``k_exp_bits + k_mant_bits`` or ``v_exp_bits``, whichever is more: one
module serves both buffers, so the V buffer carries the K buffer's width). The engine never reads and writes in the same
cycle (writes are refused while a tile runs), so read-during-write behaviour does not matter; nor does
the contents after reset (a key is always written before a tile reads it).
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..core.config import EngineConfig
from .common import Cell, data_row

__all__ = ["KvSram", "SRAM_MEMORY", "sram_word"]

SRAM_MEMORY = "sram"
"""The memory's name inside the module (the area flow prices it as SRAM; the Verilog has no initial
contents for it)."""


def sram_word(c: EngineConfig):
    """One word of the buffer: the row, and with per-key scales ``{row, scale}`` (the scale codes above it)."""
    if not c.kv_scale_bits:
        return data_row(c)
    return data.StructLayout({"row": data_row(c), "scale": unsigned(c.kv_scale_bits)})


class KvSram(Cell):
    """``kv_depth`` words of ``head_dim`` signed elements: one write port, one read port (module docstring)."""

    def ports(self, c: EngineConfig):
        return {"wr_en": In(1), "wr_addr": In(unsigned(c.kv_addr_bits)), "wr_data": In(sram_word(c)),
                "rd_en": In(1), "rd_addr": In(unsigned(c.kv_addr_bits)), "rd_data": Out(sram_word(c))}

    def elaborate(self, platform):
        m = Module()
        c = self.config
        mem = Memory(shape=sram_word(c), depth=c.kv_keys, init=[])
        m.submodules[SRAM_MEMORY] = mem
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.en.eq(self.wr_en), wr.addr.eq(self.wr_addr), wr.data.eq(self.wr_data),
                     rd.en.eq(self.rd_en), rd.addr.eq(self.rd_addr), self.rd_data.eq(rd.data)]
        return m
