"""cocotb tests of the generated engine: drive a host program, compare every output row and every counter.

Run through ``fusioncim.sim.simulate.run_workloads`` (the regression's
``tests/test_engine_rtl.py``, ``fusioncim simulate``). The parent process
makes the workloads, runs the golden model once and writes the host program
(``fusioncim/sim/program.py``: every stream beat with its stall gap, the expected
output rows and golden's counters); this process computes nothing of its own.
Knobs (``tb/common.py``) plus ``FUSIONCIM_PROGRAM``, the host-program file,
and ``FUSIONCIM_RESULTS``, a folder for ``results.json`` (counters,
mismatching rows, cycles per workload) and ``observed-<i>.txt`` (the RTL's output
words of workload i, hexadecimal, one a line).

Per segment the host waits for the engine to be idle, loads the KV buffer,
then sends the commands and their Q rows back to back. Counters are
compared exactly; ``cycles`` exactly when no beat has a stall gap, else it
must not be below golden's count. Every wait has a cycle budget
(``tb/streams.py`` ``within``): a stalled design fails and says where.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ..core.counters import ENGINE_COUNTERS
from ..hw.controller import cmd_layout
from ..hw.engine import ERR_KEYS, ERR_KV_ADDR, ERR_KV_BUSY, ERR_ROWS, kv_wr_layout

from . import common
from ..sim.checks import compare_counters, cycle_budget, program_from_env, record, write_observed
from .streams import CLOCK_NS, Scoreboard, Stalled, StreamSink, StreamSource, encode, within




class EngineTB:
    def __init__(self, dut, cfg, clock=True):
        self.dut = dut
        self.cfg = cfg
        self.log = dut._log
        if clock:                              # one clock per cocotb test, however many workloads
            Clock(dut.clk, CLOCK_NS, unit="ns").start()
        self.kv_src = StreamSource(dut, "kv_wr", dut.clk)
        self.cmd_src = StreamSource(dut, "cmd", dut.clk)
        self.q_src = StreamSource(dut, "q_in", dut.clk)
        self.board = Scoreboard(self.log, "o_out")
        self.observed = []
        self.sink = StreamSink(dut, "o_out", dut.clk, self._on_row)
        dut.err_clear.value = 0
        dut.abort_tile.value = 0

    def _on_row(self, cycle, word):
        self.observed.append(word)
        self.board.observe(word)

    @property
    def streams(self):
        return (self.kv_src, self.cmd_src, self.q_src, self.sink)

    async def reset(self):
        await common.reset(self.dut)

    async def wait_idle(self, limit=100_000):
        """Wait until the engine is idle with every expected row out; :class:`Stalled` after ``limit`` cycles."""
        for _ in range(limit):
            await ReadOnly()
            done = self.dut.idle.value == 1 and not self.board.expected
            await RisingEdge(self.dut.clk)
            if done:
                return
        raise Stalled(f"engine not idle after {limit} cycles with {len(self.board.expected)} row(s) still "
                      f"expected: " + "; ".join(s.state() for s in self.streams))

    @staticmethod
    async def send_all(src, beats):
        for gap, word in beats:
            await src.send(word, gap)

    def expect(self, seg):
        for gap, word in seg["o_out"]:
            self.board.expect(word)
            self.sink.gaps.append(gap)

    async def run_segment(self, seg):
        await self.wait_idle()
        await self.send_all(self.kv_src, seg["kv_wr"])
        self.expect(seg)
        tasks = [cocotb.start_soon(self.send_all(self.cmd_src, seg["cmd"])),
                 cocotb.start_soon(self.send_all(self.q_src, seg["q_in"]))]
        for t in tasks:
            await t
        await self.wait_idle()

    async def counters(self):
        await ReadOnly()
        vals = {name: int(getattr(self.dut, name).value) for name in ENGINE_COUNTERS}
        await RisingEdge(self.dut.clk)
        return vals

    async def err(self):
        await ReadOnly()
        e = int(self.dut.err.value)
        await RisingEdge(self.dut.clk)
        return e


async def run_workload(tb, w):
    start = tb.sink.cycle

    async def segments():
        for seg in w.segments:
            await tb.run_segment(seg)
    await within(cycle_budget(w), segments(), tb.streams, f"workload {w.name}")
    rtl = await tb.counters()
    err = await tb.err()
    return record(tb.cfg, w, rtl, err, tb.observed, tb.sink.cycle - start)


@cocotb.test()
async def workloads_bit_exact(dut):
    """Every workload of the host program: outputs and counters equal golden."""
    cfg, workloads = program_from_env()
    outdir = os.environ.get("FUSIONCIM_RESULTS")
    results, failures = [], []
    for i, w in enumerate(workloads):
        tb = EngineTB(dut, cfg, clock=i == 0)
        await tb.reset()
        res = await run_workload(tb, w)
        tb.board.check()
        tb.sink.stop()
        res["index"] = i
        results.append(res)
        dut._log.info("workload %d %s: %d cycles, %d keys, %d mismatching rows", i, res["name"],
                      res["rtl"]["cycles"], res["rtl"]["keys"], res["mismatching_rows"])
        failures += [f"workload {i} ({res['name']}): {e}" for e in res["errors"]]
        if outdir:
            write_observed(outdir, i, tb.observed)
    if outdir:
        (Path(outdir) / "results.json").write_text(json.dumps(results, indent=1))
    for f in failures:
        dut._log.error(f)
    assert not failures, failures[0]


def _directed(workloads, name):
    found = [w for w in workloads if w.name == name]
    assert found, f"the host program has no workload {name!r} (tests/test_engine_rtl.py DIRECTED)"
    return found[0].segments[0]


@cocotb.test()
async def bad_commands_flagged(dut):
    """n_keys 0 or beyond the buffer, n_rows 0 or beyond rows: error bit, nothing run, Q rows not taken."""
    c, workloads = program_from_env()
    seg = _directed(workloads, "directed-small")
    tb = EngineTB(dut, c)
    await tb.reset()
    await tb.send_all(tb.kv_src, seg["kv_wr"])
    limit_rows = (1 << (c.n_rows_bits + 1)) - 1
    cases = [(0, 1, ERR_KEYS), (c.kv_keys + 1, 1, ERR_KEYS), (3, 0, ERR_ROWS), (3, c.rows + 1, ERR_ROWS),
             ((1 << c.n_keys_bits) - 1, limit_rows, None)]
    for n_keys, n_rows, bit in cases:
        await tb.cmd_src.send(encode(cmd_layout(c), {"n_keys": n_keys, "n_rows": n_rows, "causal": 0, "pattern": 1}))
        tb.dut.q_in__valid.value = 1              # a row on offer must not be taken
        for _ in range(8):
            await ReadOnly()
            assert tb.dut.q_in__ready.value == 0, "Q row taken after a rejected command"
            assert tb.dut.idle.value == 1, "rejected command started a tile"
            await RisingEdge(tb.dut.clk)
        tb.dut.q_in__valid.value = 0
        err = await tb.err()
        want = (1 << ERR_KEYS) | (1 << ERR_ROWS) if bit is None else 1 << bit
        assert err == want, f"n_keys {n_keys}, n_rows {n_rows}: err {err:#x}, want {want:#x}"
        tb.dut.err_clear.value = 1
        await RisingEdge(tb.dut.clk)
        tb.dut.err_clear.value = 0
        assert await tb.err() == 0, "err_clear did not clear"
    assert tb.sink.received == 0, "a rejected command produced output"
    # The engine still works afterwards.
    await within(100_000, tb.run_segment(seg), tb.streams, "directed-small after bad commands")
    tb.board.check()
    assert await tb.err() == 0


@cocotb.test()
async def kv_write_while_busy_flagged(dut):
    """A KV write during a tile is dropped and flagged; a write beyond the depth too; commands wait while busy."""
    c, workloads = program_from_env()
    seg = _directed(workloads, "directed-two-tiles")
    assert len(seg["cmd"]) > 1
    tb = EngineTB(dut, c)
    await tb.reset()
    await tb.send_all(tb.kv_src, seg["kv_wr"])
    tb.expect(seg)
    rtask = cocotb.start_soon(tb.send_all(tb.q_src, seg["q_in"]))
    await tb.cmd_src.send(seg["cmd"][0][1])
    await ClockCycles(tb.dut.clk, c.rows + 3)
    # Mid-tile: the next command is offered and must wait (with q_double_buffer it is taken, to load
    # while the tile runs); a KV write is refused.
    junk = [c.data_max] * c.head_dim
    tb.dut.cmd__payload.value = seg["cmd"][1][1]
    tb.dut.cmd__valid.value = 1
    if c.q_double_buffer:
        await ReadOnly()
        assert tb.dut.idle.value == 0
        assert tb.dut.cmd__ready.value == 1, "next command not taken for preloading while a tile runs"
        await RisingEdge(tb.dut.clk)
        sent = 2
    else:
        for _ in range(4):
            await ReadOnly()
            assert tb.dut.idle.value == 0
            assert tb.dut.cmd__ready.value == 0, "command accepted while a tile is in progress"
            await RisingEdge(tb.dut.clk)
        sent = 1
    tb.dut.cmd__valid.value = 0
    await tb.kv_src.send(encode(kv_wr_layout(c), {"addr": 0, "k": junk, "v": junk}))
    assert (await tb.err()) == 1 << ERR_KV_BUSY
    await tb.send_all(tb.cmd_src, seg["cmd"][sent:])
    await rtask
    await within(100_000, tb.wait_idle(), tb.streams, "directed-two-tiles")
    tb.board.check()                      # the refused write changed nothing
    if c.kv_keys < 1 << c.kv_addr_bits:
        await tb.kv_src.send(encode(kv_wr_layout(c), {"addr": c.kv_keys, "k": junk, "v": junk}))
        assert (await tb.err()) == (1 << ERR_KV_BUSY) | (1 << ERR_KV_ADDR)


@cocotb.test()
async def abort_drops_the_tile(dut):
    """A host that stops sending a tile's Q rows: abort drops that tile (and, later, a tile whose keys run),
    nothing reaches o_out, the engine is idle again, and the next program runs bit-exact with every
    counter's increase equal to golden's."""
    c, workloads = program_from_env()
    w = next((w for w in workloads if w.name == "directed-two-tiles"), None)
    assert w is not None, "the host program has no workload 'directed-two-tiles'"
    seg = w.segments[0]
    assert c.rows >= 2 and len(seg["q_in"]) >= c.rows
    tb = EngineTB(dut, c)
    await tb.reset()
    await tb.send_all(tb.kv_src, seg["kv_wr"])

    async def abort(what):
        await ReadOnly()
        assert dut.idle.value == 0, f"{what}: the engine is idle before the abort"
        await RisingEdge(dut.clk)
        dut.abort_tile.value = 1
        await RisingEdge(dut.clk)
        dut.abort_tile.value = 0
        await within(1_000, tb.wait_idle(), tb.streams, f"abort {what}")

    # 1. The command and the first of its rows, then nothing: the load waits for ever until aborted.
    await tb.cmd_src.send(seg["cmd"][0][1])
    await tb.q_src.send(seg["q_in"][0][1])
    await ClockCycles(dut.clk, 20)
    await abort("during a load")
    # 2. A whole tile, aborted once its keys stream.
    await tb.cmd_src.send(seg["cmd"][0][1])
    await tb.send_all(tb.q_src, seg["q_in"][:c.rows])
    await ClockCycles(dut.clk, 6)
    await abort("while keys run")
    assert tb.sink.received == 0, "an aborted tile put rows on o_out"
    # 3. The same program again, whole: bit-exact, and the counters grow by golden's counts.
    before = await tb.counters()
    await within(100_000, tb.run_segment(seg), tb.streams, "directed-two-tiles after aborts")
    tb.board.check()
    after = await tb.counters()
    grown = {k: after[k] - before[k] for k in after}
    errors = compare_counters(grown, w.counters, exact_cycles=w.exact_cycles)
    assert not errors, errors
