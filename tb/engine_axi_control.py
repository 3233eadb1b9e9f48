"""cocotb tests of the AXI top's register writes by byte, ABORT and the watchdog (issue 32).

Run beside ``tb/engine_axi_tests.py`` in one simulation (``tests/test_engine_axi.py`` names both modules): every byte lane of
every stored register, writes with no strobes, a CMD write with part of its strobes; ABORT with a
command pending, during a Q load, with keys running and with output draining, each followed by a good
tile bit-exact with golden; the watchdog on a host that stops sending Q beats; a refused command with no
Q frame followed by a good tile.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ..hw.controller import cmd_layout
from ..hw.common import decode
from ..hw.regmap import ERROR_BITS, IRQ_BITS, cmd_word
from ..sim.checks import program_from_env
from .engine_axi_tests import OKAY, SLVERR, AxiTB, _collect, _good_tile, _irq, _ops, _wait_rows


async def raw_write(tb, addr, data, strobe):
    """One AXI4-Lite write with the given ``wstrb`` (cocotbext-axi's master sends only runs of bytes, never
    none), driven on the bus beside the idle master; the response."""
    d = tb.dut
    d.s_axil_awaddr.value, d.s_axil_wdata.value, d.s_axil_wstrb.value = addr, data, strobe
    d.s_axil_awvalid.value, d.s_axil_wvalid.value = 1, 1
    while True:
        await ReadOnly()
        taken = int(d.s_axil_awready.value)
        await RisingEdge(d.aclk)
        if taken:
            break
    d.s_axil_awvalid.value, d.s_axil_wvalid.value = 0, 0
    # The master's response channel takes the answer; consumed here, or its next write would take it.
    b = await tb.lite.write_if.b_channel.recv()
    return int(b.bresp)


def _lane_mask(strobe):
    return sum(0xFF << (8 * i) for i in range(4) if strobe >> i & 1)


def _stored_mask(reg):
    return sum(f.mask for f in reg.fields if f.access == "rw")


async def _clear(tb):
    await tb.write("ERROR", 0xFFFFFFFF)
    await tb.write("IRQ_STATUS", 0xFFFFFFFF)


@cocotb.test()
async def writes_honour_the_byte_strobes(dut):
    """Every byte lane of every stored register takes its byte and keeps the others; no strobes, no change;
    w1c and w1p bits act only in strobed bytes; a byte access at an unaligned address reaches its register."""
    cfg, _ = program_from_env()
    tb = AxiTB(dut, cfg, 11)
    await tb.reset()
    assert await tb.read("STATUS") == tb.regs["STATUS"].reset == 3          # idle and cmd_ready after reset
    await tb.write("CMD_KEYS", 0)          # every CMD write below is then refused at once (ERROR.n_keys)
    before, after = 0xA5C3_3C5A, 0x5A3C_C3A5
    for name in ("CMD_KEYS", "IRQ_ENABLE", "WATCHDOG", "CMD"):
        reg = tb.regs[name]
        mask = _stored_mask(reg)
        for strobe in range(16):
            await tb.write(name, before)
            await _clear(tb)
            resp = await raw_write(tb, reg.offset, after, strobe)
            assert resp == OKAY, f"{name} wstrb {strobe:04b}: {resp}"
            lanes = _lane_mask(strobe)
            want = ((before & ~lanes) | (after & lanes)) & mask
            assert await tb.read(name) == want, f"{name} wstrb {strobe:04b}"
            if name == "CMD":
                # A CMD write starts a command (here refused) only with some strobe.
                started = (await tb.read("ERROR")) >> ERROR_BITS["n_keys"][0] & 1
                assert started == (strobe != 0), f"CMD wstrb {strobe:04b}: command started {started}"
        await tb.write(name, 0)
    await _clear(tb)
    # The new user's two examples: a byte store to CMD_KEYS, and 0xFF to byte 1 of IRQ_ENABLE.
    await tb.write("CMD_KEYS", 0x123456)
    await raw_write(tb, tb.regs["CMD_KEYS"].offset, 0xABCDEF98, 0b0001)
    assert await tb.read("CMD_KEYS") == 0x123498
    await tb.write("IRQ_ENABLE", 3)
    w = await tb.lite.write(tb.regs["IRQ_ENABLE"].offset + 1, b"\xff")       # byte 1, at its own address
    assert w.resp == OKAY and await tb.read("IRQ_ENABLE") == 3
    await tb.write("IRQ_ENABLE", 0)
    # w1c: an ERROR bit is cleared only by a 1 in a strobed byte.
    await tb.write("CMD", cmd_word(cfg, 1, 0, 0))                            # refused: ERROR.n_keys
    bit = 1 << ERROR_BITS["n_keys"][0]
    assert await tb.read("ERROR") == bit
    await raw_write(tb, tb.regs["ERROR"].offset, 0xFFFFFFFF, 0b1110)
    assert await tb.read("ERROR") == bit
    await raw_write(tb, tb.regs["ERROR"].offset, 0xFFFFFFFF, 0b0000)
    assert await tb.read("ERROR") == bit
    await raw_write(tb, tb.regs["ERROR"].offset, bit, 0b0001)
    assert await tb.read("ERROR") == 0
    # w1p: SNAPSHOT copies the counters only with its bit in a strobed byte.
    await tb.write("SNAPSHOT", 1)
    writes = await tb.read("KV_WRITES_LO")
    await tb.kv.send(tb.frame([0], tb.bytes["kv"]))                          # one KV write: the counter moves
    await tb.kv.wait()
    await ClockCycles(dut.aclk, 2)
    await raw_write(tb, tb.regs["SNAPSHOT"].offset, 0xFFFFFFFF, 0b1110)
    assert await tb.read("KV_WRITES_LO") == writes
    await raw_write(tb, tb.regs["SNAPSHOT"].offset, 1, 0b0001)
    assert await tb.read("KV_WRITES_LO") == writes + 1
    # A read-only register still refuses a write, whatever its strobes.
    assert await raw_write(tb, tb.regs["STATUS"].offset, 0, 0b0001) == SLVERR
    await _clear(tb)


async def _await_error(tb, name, limit):
    for _ in range(limit):
        await RisingEdge(tb.dut.aclk)
    assert await tb.read("ERROR") == 1 << ERROR_BITS[name][0], f"ERROR.{name} not set"


async def _abort_then_good(tb, good, want, tag, expect_rows=0, sizes=None):
    observed = []
    collector = cocotb.start_soon(_collect(tb, sizes if sizes is not None else [], observed))
    await tb.write("ABORT", 1)
    tb.o.pause = False                       # a sink held back during the ABORT takes the rows now
    await tb.wait_idle(20_000)
    if expect_rows:
        await _wait_rows(tb, observed, expect_rows, 20_000)
    collector.cancel()
    assert len(observed) == expect_rows, f"{tag}: {len(observed)} rows after ABORT, expected {expect_rows}"
    assert await tb.read("STATUS") == 3, f"{tag}: STATUS after ABORT"
    await _clear(tb)
    await _good_tile(tb, good, want, f"after ABORT {tag}")
    await tb.wait_idle()
    await _clear(tb)
    return observed


@cocotb.test()
async def abort_and_the_watchdog_end_every_stall(dut):
    """ABORT in each phase of a tile, the watchdog on a host that stops, a refused command with no Q frame:
    each ends with the engine idle and the next good tile bit-exact with golden."""
    cfg, workloads = program_from_env()
    i = next(i for i, w in enumerate(workloads) if w.name == "directed-small")
    seg, good = workloads[i].segments[0], _ops(workloads)[i]
    want = [w for _, w in seg["o_out"]]
    q_rows = [w for _, w in seg["q_in"]]
    n = len(q_rows)
    cmd = decode(cmd_layout(cfg), seg["cmd"][0][1])
    word = cmd_word(cfg, n, cmd["causal"], cmd["pattern"])
    tb = AxiTB(dut, cfg, 12)
    await tb.reset()
    await _good_tile(tb, good, want, "first tile")                 # the KV buffer holds the head's keys now
    await tb.wait_idle()
    await _clear(tb)

    # The watchdog: a command whose Q beats never come. ERROR.watchdog and the error interrupt.
    await tb.write("IRQ_ENABLE", 1 << IRQ_BITS["error"][0])
    await tb.write("WATCHDOG", 300)
    await tb.command(cmd["n_keys"], n, cmd["causal"], cmd["pattern"])
    await _await_error(tb, "watchdog", 400)
    assert await _irq(tb) == 1
    # Q load: the same stuck tile (its command taken, no row yet), aborted.
    await _abort_then_good(tb, good, want, "during the Q load")
    await tb.write("WATCHDOG", 0)

    # A command pending behind a tile waiting for its Q beats: both dropped.
    await tb.command(cmd["n_keys"], n, cmd["causal"], cmd["pattern"])
    await tb.write("CMD", word)
    assert not tb.field("STATUS", "cmd_ready", await tb.read("STATUS"))
    await _abort_then_good(tb, good, want, "with a command pending")

    # Keys running: the Q frame in, ABORT a few cycles later; nothing comes out.
    await tb.command(cmd["n_keys"], n, cmd["causal"], cmd["pattern"])
    await tb.q.send(tb.frame(q_rows, tb.bytes["q"]))
    await tb.q.wait()
    await ClockCycles(dut.aclk, 3)
    await _abort_then_good(tb, good, want, "with keys running")

    # Output draining: the sink stalls until the tile is being normalised; its rows all still come out.
    tb.o.pause = True
    await tb.command(cmd["n_keys"], n, cmd["causal"], cmd["pattern"])
    await tb.q.send(tb.frame(q_rows, tb.bytes["q"]))
    for _ in range(50_000):
        await ReadOnly()
        if int(dut.m_axis_o_tvalid.value):
            break
        await RisingEdge(dut.aclk)
    rows = await _abort_then_good(tb, good, want, "with output draining", expect_rows=n, sizes=[n])
    assert rows == want, "the tile being normalised at ABORT: its rows"

    # A refused command with no Q frame (n_rows = 0, as a host's bad request), then a good tile: no hang.
    await tb.command(cmd["n_keys"], 0, cmd["causal"], cmd["pattern"])
    assert await tb.read("ERROR") == 1 << ERROR_BITS["n_rows"][0]
    await _clear(tb)
    sizes, observed = [n], []
    collector = cocotb.start_soon(_collect(tb, sizes, observed))
    await tb.command(cmd["n_keys"], n, cmd["causal"], cmd["pattern"])
    await tb.q.send(tb.frame(q_rows, tb.bytes["q"]))
    await _wait_rows(tb, observed, n, 50_000)
    collector.cancel()
    assert observed == want, "the good tile after a refused command with no Q frame"
    await tb.wait_idle()
    assert await tb.read("ERROR") == 0
