"""cocotb tests of the generated engine against ``fusioncim.golden.engine``: every output row and every counter.

Run through ``tests/test_engine_rtl.py`` and ``fusioncim simulate``. Knobs
(``tb/common.py``) plus ``FUSIONCIM_WORKLOADS``: a JSON list of workload specs
(``fusioncim/workload.py``), run one after another with a reset between;
``FUSIONCIM_RESULTS``: a folder for ``results.json`` (counters, mismatches,
cycles per workload) and ``out-<i>.npy`` (the RTL's output of workload i).

The host follows ``golden.engine.program``: per KV head it waits for the
engine to be idle, loads the KV buffer, then sends the commands and their Q
rows back to back. Counters are compared exactly; ``cycles`` exactly when no
external stream stalls, else it must not be below the golden count.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from fusioncim import workload as workloads
from fusioncim.counters import ENGINE_COUNTERS
from fusioncim.golden import engine as golden
from fusioncim.hw.controller import cmd_layout, q_layout
from fusioncim.hw.engine import ERR_KEYS, ERR_KV_ADDR, ERR_KV_BUSY, ERR_ROWS, kv_wr_layout
from fusioncim.hw.op_cim import o_out_layout

from . import common
from .streams import Scoreboard, Stalled, StreamSink, StreamSource, always, encode, random_pattern, within


class EngineTB:
    def __init__(self, dut, stall=0.0, salt=0, clock=True):
        self.dut = dut
        self.cfg = common.config()
        self.log = dut._log
        self.seed = common.seed()
        prng = random.Random(self.seed * 7919 + salt)

        def pattern():
            return random_pattern(prng, 1.0 - stall) if stall else always()
        self.stall = stall
        if clock:                              # one clock per cocotb test, however many workloads
            Clock(dut.clk, 10, unit="ns").start()
        c = self.cfg
        self.kv_src = StreamSource(dut, "kv_wr", dut.clk, pattern(), kv_wr_layout(c))
        self.cmd_src = StreamSource(dut, "cmd", dut.clk, pattern(), cmd_layout(c))
        self.q_src = StreamSource(dut, "q_in", dut.clk, pattern(), q_layout(c))
        self.board = Scoreboard(self.log, "o_out")
        self.out = None
        self.where = []             # (head, qrow) of each expected output row, in order
        self.sink = StreamSink(dut, "o_out", dut.clk, self._on_row, pattern(), o_out_layout(c))
        dut.err_clear.value = 0

    def _on_row(self, cycle, beat):
        row, o = beat["row"], beat["o"]
        idx = self.board.matched + len(self.board.errors)
        if self.out is not None and idx < len(self.where):
            h, i = self.where[idx]
            self.out[h, i] = o
        self.board.observe((row, o))

    async def reset(self):
        await common.reset(self.dut)

    # -- payloads (the engine's own layouts) ------------------------------------
    @staticmethod
    def kv_beat(addr, k, v):
        return {"addr": addr, "k": k, "v": v}

    @staticmethod
    def cmd_beat(n_keys, n_rows, causal, pattern):
        return {"n_keys": n_keys, "n_rows": n_rows, "causal": int(causal), "pattern": int(pattern)}

    # -- host -------------------------------------------------------------------
    @property
    def streams(self):
        return (self.kv_src, self.cmd_src, self.q_src, self.sink)

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

    async def load_kv(self, k, v):
        for i in range(len(k)):
            await self.kv_src.send(self.kv_beat(i, k[i], v[i]))

    def expect(self, seg, expected):
        """Expect every output row of the segment's commands, in order, from golden's ``expected [H, Lq, d]``."""
        for cmd in seg.commands:
            for r in range(cmd.n_rows):
                self.board.expect((r, [int(x) for x in expected[cmd.head[r], cmd.qrow[r]]]))
                self.where.append((int(cmd.head[r]), int(cmd.qrow[r])))

    async def send_command(self, cmd):
        await self.cmd_src.send(self.cmd_beat(cmd.n_keys, cmd.n_rows, cmd.causal, cmd.pattern))

    async def send_rows(self, commands):
        for cmd in commands:
            for r in range(cmd.n_rows):
                await self.q_src.send({"q": cmd.q[r], "pos": cmd.pos[r], "c_mant": cmd.c_mant[r],
                                       "c_shift": cmd.c_shift[r]})

    async def run_segment(self, seg, expected):
        await self.wait_idle()
        await self.load_kv(seg.k, seg.v)
        self.expect(seg, expected)

        async def commands():
            for cmd in seg.commands:
                await self.send_command(cmd)
        tasks = [cocotb.start_soon(commands()), cocotb.start_soon(self.send_rows(seg.commands))]
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


def compare_counters(rtl, gold: golden.Counters, *, exact_cycles):
    """Mismatch messages between the RTL's counters and golden's (empty: all equal)."""
    g = gold.to_dict()
    errors = []
    for name in ENGINE_COUNTERS:
        if name == "cycles" and not exact_cycles:
            if rtl[name] < g[name]:
                errors.append(f"cycles {rtl[name]} below the golden schedule's {g[name]} with stalls")
        elif rtl[name] != g[name]:
            errors.append(f"counter {name}: RTL {rtl[name]}, golden {g[name]}")
    return errors


def plan(spec, cfg):
    """A workload, golden's result for it, and the host's command sequence."""
    w = workloads.make(spec, cfg)
    z = w.z
    args = (z.q, z.k, z.v, z.c_mant, z.c_shift, cfg)
    gold = golden.run(*args, causal=w.causal, mode=w.mode)
    return w, gold, golden.program(*args, causal=w.causal, mode=w.mode)


def cycle_budget(gold, stall):
    """Cycles a workload may take before it counts as stalled: four times golden's schedule plus the
    buffer loads, stretched for host stalls (a beat waits ``1 / (1 - stall)`` cycles on average on
    each side), and a fixed margin for resets and idle checks."""
    c = gold.counters
    return int(4 * (c.cycles + c.kv_writes + c.tiles) / (1.0 - stall) ** 2) + 1000


async def run_workload(tb, spec):
    cfg = tb.cfg
    w, gold, prog = plan(spec, cfg)
    tb.out = np.zeros_like(gold.out)
    tb.where = []
    start = tb.sink.cycle

    async def segments():
        for seg in prog:
            await tb.run_segment(seg, gold.out)
    await within(cycle_budget(gold, tb.stall), segments(), tb.streams, f"workload {w.name}")
    rtl = await tb.counters()
    errors = compare_counters(rtl, gold.counters, exact_cycles=tb.stall == 0)
    mismatches = int((tb.out != gold.out).sum())
    err = await tb.err()
    if err:
        errors.append(f"error flags {err:#x} raised by a legal workload")
    return {"name": w.name, "rtl": rtl, "golden": gold.counters.to_dict(), "mismatches": mismatches,
            "elements": int(gold.out.size), "wall_cycles": tb.sink.cycle - start, "errors": errors}, tb.out


@cocotb.test()
async def workloads_bit_exact(dut):
    """Every workload of FUSIONCIM_WORKLOADS: outputs and counters equal golden."""
    specs = json.loads(os.environ.get("FUSIONCIM_WORKLOADS", "[]"))
    assert specs, "FUSIONCIM_WORKLOADS names no workload"
    results = []
    outdir = os.environ.get("FUSIONCIM_RESULTS")
    failures = []
    for i, spec in enumerate(specs):
        tb = EngineTB(dut, stall=float(spec.get("stall", 0.0)), salt=i, clock=i == 0)
        await tb.reset()
        res, out = await run_workload(tb, spec)
        tb.board.check()
        tb.sink.stop()
        res["index"] = i
        results.append(res)
        dut._log.info("workload %d %s: %d cycles, %d keys, %d mismatching elements", i, res["name"],
                      res["rtl"]["cycles"], res["rtl"]["keys"], res["mismatches"])
        failures += [f"workload {i} ({res['name']}): {e}" for e in res["errors"]]
        if outdir:
            np.save(Path(outdir) / f"out-{i}.npy", out)
    if outdir:
        (Path(outdir) / "results.json").write_text(json.dumps(results, indent=1))
    for f in failures:
        dut._log.error(f)
    assert not failures, failures[0]


def _small_program(cfg, seed, keys, queries):
    spec = {"kind": "random", "heads": 1, "kv_heads": 1, "queries": queries, "keys": keys, "seed": seed,
            "causal": False}
    _, gold, prog = plan(spec, cfg)
    return gold, prog[0]


@cocotb.test()
async def bad_commands_flagged(dut):
    """n_keys 0 or beyond the buffer, n_rows 0 or beyond rows: error bit, nothing run, Q rows not taken."""
    tb = EngineTB(dut)
    c = tb.cfg
    await tb.reset()
    gold, seg = _small_program(c, tb.seed, keys=min(9, c.kv_keys), queries=min(3, c.kv_keys))
    await tb.load_kv(seg.k, seg.v)
    limit_rows = (1 << (c.n_rows_bits + 1)) - 1
    cases = [(0, 1, ERR_KEYS), (c.kv_keys + 1, 1, ERR_KEYS), (3, 0, ERR_ROWS), (3, c.rows + 1, ERR_ROWS),
             ((1 << c.n_keys_bits) - 1, limit_rows, None)]
    for n_keys, n_rows, bit in cases:
        await tb.cmd_src.send(tb.cmd_beat(n_keys, n_rows, False, True))
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
    tb.out = np.zeros_like(gold.out)
    await tb.run_segment(seg, gold.out)
    tb.board.check()
    assert await tb.err() == 0


@cocotb.test()
async def kv_write_while_busy_flagged(dut):
    """A KV write during a tile is dropped and flagged; a write beyond the depth too; commands wait while busy."""
    tb = EngineTB(dut)
    c = tb.cfg
    await tb.reset()
    n = min(max(12, 2 * c.rows), c.kv_keys)        # two tiles at least
    gold, seg = _small_program(c, tb.seed + 1, keys=n, queries=n)
    await tb.load_kv(seg.k, seg.v)
    tb.expect(seg, gold.out)
    rtask = cocotb.start_soon(tb.send_rows(seg.commands))
    await tb.send_command(seg.commands[0])
    await ClockCycles(tb.dut.clk, c.rows + 3)
    # Mid-tile: the next command is offered and must wait; a KV write is refused.
    junk = np.full(c.head_dim, c.data_max)
    assert len(seg.commands) > 1
    nxt = seg.commands[1]
    tb.dut.cmd__payload.value = encode(cmd_layout(c), tb.cmd_beat(nxt.n_keys, nxt.n_rows, nxt.causal, nxt.pattern))
    tb.dut.cmd__valid.value = 1
    for _ in range(4):
        await ReadOnly()
        assert tb.dut.idle.value == 0
        assert tb.dut.cmd__ready.value == 0, "command accepted while a tile is in progress"
        await RisingEdge(tb.dut.clk)
    tb.dut.cmd__valid.value = 0
    await tb.kv_src.send(tb.kv_beat(0, junk, junk))
    assert (await tb.err()) == 1 << ERR_KV_BUSY
    for cmd in seg.commands[1:]:
        await tb.send_command(cmd)
    await rtask
    await tb.wait_idle()
    tb.board.check()                      # the refused write changed nothing
    if c.kv_keys < 1 << c.kv_addr_bits:
        await tb.kv_src.send(tb.kv_beat(c.kv_keys, junk, junk))
        assert (await tb.err()) == (1 << ERR_KV_BUSY) | (1 << ERR_KV_ADDR)
