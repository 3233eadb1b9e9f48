"""cocotb tests of the AXI top (``hw/axi.py``) driven by cocotbext-axi's verification IP.

The host's AXI transactions (``FUSIONCIM_AXI_OPS``: ``fusioncim.sim.program.axi_ops``,
the Python host reference) are replayed as they are: K/V and Q frames through
``AxiStreamSource``, register writes and polls through ``AxiLiteMaster``,
output rows back through ``AxiStreamSink``, one frame per tile, with random
``tready`` backpressure and random source idles. Golden's output rows and
counters come from the host program (``FUSIONCIM_PROGRAM``), as for the bare
engine (``tb/engine_tests.py``). Counters are read over
AXI-Lite after a SNAPSHOT; the register addresses and ID values come from
``fusioncim.hw.regmap`` (the map the hardware is built from).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiResp, AxiStreamBus, AxiStreamFrame, AxiStreamSink,
                           AxiStreamSource)

from ..core.counters import ENGINE_COUNTERS
from ..hw.common import decode
from ..hw.controller import cmd_layout
from ..hw.regmap import COUNTER_BASE, ERROR_BITS, IRQ_BITS, by_name, cmd_word, stream_bytes

from ..sim.checks import cycle_budget, program_from_env, record, write_observed
from .streams import CLOCK_NS

OKAY, SLVERR = AxiResp.OKAY, AxiResp.SLVERR




def _pauses(rng, p):
    """A pause generator: each cycle paused with probability ``p``."""
    while True:
        yield rng.random() < p


class AxiTB:
    def __init__(self, dut, cfg, seed):
        self.dut, self.cfg = dut, cfg
        self.regs = by_name(cfg)
        self.bytes = stream_bytes(cfg)
        Clock(dut.aclk, CLOCK_NS, unit="ns").start()
        reset = dict(reset=dut.aresetn, reset_active_level=False)
        self.kv = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_kv"), dut.aclk, **reset)
        self.q = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_q"), dut.aclk, **reset)
        self.o = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_o"), dut.aclk, **reset)
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.aclk, **reset)
        self.rng = random.Random(seed)

    def backpressure(self, p):
        """Random source idles and sink backpressure, each cycle with probability ``p`` (0: none)."""
        for x in (self.kv, self.q, self.o):
            if p:
                x.set_pause_generator(_pauses(random.Random(self.rng.random()), p))
            else:
                x.clear_pause_generator()

    async def reset(self):
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 4)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    # -- registers -----------------------------------------------------------------------------
    async def read(self, name):
        r = await self.lite.read(self.regs[name].offset, 4)
        assert r.resp == OKAY, f"read {name}: {r.resp}"
        return int.from_bytes(r.data, "little")

    async def write(self, name, value):
        r = await self.lite.write(self.regs[name].offset, int(value).to_bytes(4, "little"))
        assert r.resp == OKAY, f"write {name}: {r.resp}"

    def field(self, reg, name, word):
        f = next(f for f in self.regs[reg].fields if f.name == name)
        return (word >> f.lsb) & ((1 << f.width) - 1)

    async def counters(self):
        await self.write("SNAPSHOT", 1)
        out = {}
        for i, name in enumerate(ENGINE_COUNTERS):
            lo = await self.lite.read(COUNTER_BASE + 8 * i, 4)
            hi = await self.lite.read(COUNTER_BASE + 8 * i + 4, 4)
            assert lo.resp == OKAY and hi.resp == OKAY
            out[name] = int.from_bytes(lo.data, "little") | (int.from_bytes(hi.data, "little") << 32)
        return out

    async def wait_idle(self, limit=200_000):
        for _ in range(limit // 8):
            if self.field("STATUS", "idle", await self.read("STATUS")):
                return
        raise AssertionError(f"not idle after about {limit} cycles")

    # -- streams -------------------------------------------------------------------------------
    def frame(self, words, nbytes):
        return AxiStreamFrame(b"".join(w.to_bytes(nbytes, "little") for w in words))

    def rows(self, frame):
        n = self.bytes["o"]
        data = bytes(frame.tdata)
        assert len(data) % n == 0, f"output frame of {len(data)} bytes is not whole rows of {n}"
        return [int.from_bytes(data[i:i + n], "little") for i in range(0, len(data), n)]

    async def command(self, n_keys, n_rows, causal, pattern):
        await self.write("CMD_KEYS", n_keys)
        while not self.field("STATUS", "cmd_ready", await self.read("STATUS")):
            pass
        await self.write("CMD", cmd_word(self.cfg, n_rows, causal, pattern))


def _ops(workloads):
    """The host's AXI transactions of each workload (``FUSIONCIM_AXI_OPS``: ``fusioncim.sim.program.axi_ops``)."""
    ops = json.loads(Path(os.environ["FUSIONCIM_AXI_OPS"]).read_text())
    assert len(ops) == len(workloads)
    return ops


async def _wait_rows(tb, observed, n, limit=200_000):
    """Wait until ``n`` output rows have arrived (``limit`` cycles at most)."""
    for _ in range(limit):
        if len(observed) >= n:
            return
        await RisingEdge(tb.dut.aclk)


async def replay(tb, ops, sizes):
    """Carry out the host's AXI transactions (``fusioncim.sim.program.axi_ops``) in order; output frame sizes
    go to ``sizes`` for the collector."""
    streams = {"s_axis_kv": tb.kv, "s_axis_q": tb.q}
    for op in ops:
        kind = op[0]
        if kind == "wait":
            for _ in range(100_000):
                if tb.field(op[1], op[2], await tb.read(op[1])):
                    break
            else:
                raise AssertionError(f"{op[1]}.{op[2]} never read 1")
        elif kind == "write":
            await tb.write(op[1], op[2])
        elif kind == "stream":
            await streams[op[1]].send(AxiStreamFrame(bytes.fromhex(op[2])))
            if op[1] == "s_axis_kv":
                await tb.kv.wait()             # every key in the buffer before the next command
        elif kind == "frame":
            sizes.append(op[2])
        else:
            raise AssertionError(f"unknown transaction {kind!r}")


async def _collect(tb, sizes, observed):
    """Receive one output frame per tile; each must hold exactly that tile's rows."""
    i = 0
    while True:
        while i >= len(sizes):
            await RisingEdge(tb.dut.aclk)
        frame = await tb.o.recv()
        rows = tb.rows(frame)
        assert len(rows) == sizes[i], f"tile {i}: output frame of {len(rows)} rows, the command had {sizes[i]}"
        observed += rows
        i += 1


@cocotb.test()
async def workloads_over_axi(dut):
    """Every workload through the AXI top under random backpressure: outputs, framing and counters equal golden."""
    cfg, workloads = program_from_env()
    # The host's transactions per workload; golden's rows and counters come from the host program.
    ops = _ops(workloads)
    seed = int(os.environ.get("FUSIONCIM_SEED", "1"))
    stall = float(os.environ.get("FUSIONCIM_AXI_STALL", "0.3"))
    tb = AxiTB(dut, cfg, seed)
    outdir = os.environ.get("FUSIONCIM_RESULTS")
    results, failures = [], []
    for i, w in enumerate(workloads):
        await tb.reset()
        tb.backpressure(stall)
        observed, sizes = [], []
        collector = cocotb.start_soon(_collect(tb, sizes, observed))
        start = get_sim_time("ns")

        async def segments():
            await replay(tb, ops[i], sizes)
            await _wait_rows(tb, observed, sum(len(seg["o_out"]) for seg in w.segments), limit=budget)
            await tb.wait_idle()
        budget = int(cycle_budget(w) / (1 - stall) ** 2) + 2000 * sum(len(s["cmd"]) + 1 for s in w.segments)
        await with_timeout(segments(), budget * CLOCK_NS, "ns")
        collector.cancel()
        rtl = await tb.counters()
        err = await tb.read("ERROR")
        wall = int((get_sim_time("ns") - start) / CLOCK_NS)
        # The engine waits on register writes between tiles, so its cycle count is never golden's
        # exact schedule: judged as a run with stalls (not below golden's).
        w.stall = max(w.stall, stall, 1e-9)
        res = record(cfg, w, rtl, err, observed, wall)
        res["index"] = i
        results.append(res)
        if outdir:
            write_observed(outdir, i, observed)
        dut._log.info("workload %d %s: %d cycles, %d mismatching rows", i, res["name"], rtl["cycles"],
                      res["mismatching_rows"])
        failures += [f"workload {i} ({res['name']}): {e}" for e in res["errors"]]
        if res["mismatching_rows"]:
            failures.append(f"workload {i} ({res['name']}): {res['mismatching_rows']} output rows differ")
    if outdir:
        (Path(outdir) / "results.json").write_text(json.dumps(results, indent=1))
    for f in failures:
        dut._log.error(f)
    assert not failures, failures[0]


@cocotb.test()
async def id_registers_describe_the_config(dut):
    """Every constant field reads back its value from the register map (regmap's values from the config)."""
    cfg, _ = program_from_env()
    tb = AxiTB(dut, cfg, 1)
    await tb.reset()
    for reg in tb.regs.values():
        if reg.fields and all(f.access == "const" for f in reg.fields):
            assert await tb.read(reg.name) == reg.reset, reg.name
    assert await tb.read("ROWS") & 0xFFFF == cfg.rows and await tb.read("DIMS") & 0xFFFF == cfg.head_dim
    assert await tb.read("KV_DEPTH") == cfg.kv_keys


@cocotb.test()
async def bad_accesses_answer_slverr(dut):
    """Unmapped addresses and writes to read-only registers answer SLVERR and change nothing."""
    cfg, _ = program_from_env()
    tb = AxiTB(dut, cfg, 2)
    await tb.reset()
    mapped = {r.offset for r in tb.regs.values()}
    for addr in (0x3C, 0x64, 0x0FFC, COUNTER_BASE + 8 * len(ENGINE_COUNTERS)):
        assert addr not in mapped
        r = await tb.lite.read(addr, 4)
        assert r.resp == SLVERR and bytes(r.data) == bytes(4), f"read {addr:#x}: {r.resp}"
        w = await tb.lite.write(addr, b"\xff\xff\xff\xff")
        assert w.resp == SLVERR, f"write {addr:#x}: {w.resp}"
    before = {name: await tb.read(name) for name in ("ID", "ROWS", "STATUS", "CYCLES_LO")}
    for name in before:
        w = await tb.lite.write(tb.regs[name].offset, b"\x55\xaa\x55\xaa")
        assert w.resp == SLVERR, f"write to read-only {name}: {w.resp}"
    assert {name: await tb.read(name) for name in before} == before
    # Writable registers still answer OKAY and hold what was written.
    await tb.write("IRQ_ENABLE", 3)
    assert await tb.read("IRQ_ENABLE") == 3
    await tb.write("CMD_KEYS", 0xABCDEF)
    assert await tb.read("CMD_KEYS") == 0xABCDEF


async def _irq(tb):
    await ReadOnly()
    v = int(tb.dut.irq.value)
    await RisingEdge(tb.dut.aclk)
    return v


async def _good_tile(tb, ops, want, tag):
    """The directed workload's one tile, from the host's transactions: its output frame equals golden's rows."""
    sizes, observed = [], []
    collector = cocotb.start_soon(_collect(tb, sizes, observed))
    await replay(tb, ops, sizes)
    await _wait_rows(tb, observed, len(want))
    collector.cancel()
    assert observed == want, f"{tag}: output differs from golden"


async def _refused_tiles(tb, cfg, cmd, q_rows, good, want):
    """Each bad command and each wrong Q beat count: its ERROR bit and the error interrupt, nothing out,
    both cleared by writing 1; then a good tile is right."""
    n = len(q_rows)
    cases = [               # a refused command takes no Q frame: the host sends none
        ("n_keys", dict(n_keys=0, n_rows=n), []),
        ("n_keys", dict(n_keys=cfg.kv_keys + 1, n_rows=n), []),
        ("n_rows", dict(n_keys=cmd["n_keys"], n_rows=0), []),
        ("n_rows", dict(n_keys=cmd["n_keys"], n_rows=cfg.rows + 1), []),
        ("q_beats", dict(n_keys=cmd["n_keys"], n_rows=n), q_rows[:n - 1]),              # too few
        ("q_beats", dict(n_keys=cmd["n_keys"], n_rows=n), q_rows + q_rows[:1]),         # too many
    ]
    for bit, fields, beats in cases:
        sizes, observed = [], []
        collector = cocotb.start_soon(_collect(tb, sizes, observed))
        await tb.command(fields["n_keys"], fields["n_rows"], cmd["causal"], cmd["pattern"])
        if beats:
            await tb.q.send(tb.frame(beats, tb.bytes["q"]))
            await tb.q.wait()
        await tb.wait_idle()
        collector.cancel()
        tag = f"{bit} {fields} with {len(beats)} Q beats"
        assert observed == [], f"{tag}: a dropped tile sent {len(observed)} rows"
        assert await tb.read("ERROR") == 1 << ERROR_BITS[bit][0], tag
        status = await tb.read("IRQ_STATUS")
        assert status == (1 << IRQ_BITS["error"][0]) | (1 << IRQ_BITS["done"][0]), f"{tag}: IRQ_STATUS {status:#x}"
        assert await _irq(tb) == 1
        await tb.write("ERROR", 1 << ERROR_BITS[bit][0])
        await tb.write("IRQ_STATUS", 3)
        assert await tb.read("ERROR") == 0 and await _irq(tb) == 0, tag
        await _good_tile(tb, good, want, f"after {tag}")
        await tb.wait_idle()
        await tb.write("IRQ_STATUS", 3)


@cocotb.test()
async def errors_drop_the_tile_and_interrupt(dut):
    """Bad commands, too few or too many Q beats, a KV address beyond the buffer and a command overrun:
    each sets its ERROR bit and the error interrupt, drops the tile without hanging; the next tile is right."""
    cfg, workloads = program_from_env()
    i = next(i for i, w in enumerate(workloads) if w.name == "directed-small")
    seg, good = workloads[i].segments[0], _ops(workloads)[i]
    want = [w for _, w in seg["o_out"]]
    tb = AxiTB(dut, cfg, 3)
    await tb.reset()
    tb.backpressure(0.2)
    q_rows = [w for _, w in seg["q_in"]]
    n = len(q_rows)
    cmd = decode(cmd_layout(cfg), seg["cmd"][0][1])
    assert n >= 2 and cmd["n_rows"] == n

    # A tile that completes: done interrupt, cleared by writing 1.
    await tb.write("IRQ_ENABLE", (1 << IRQ_BITS["done"][0]) | (1 << IRQ_BITS["error"][0]))
    assert await _irq(tb) == 0
    await _good_tile(tb, good, want, "first tile")
    await tb.wait_idle()
    assert await tb.read("IRQ_STATUS") == 1 << IRQ_BITS["done"][0] and await _irq(tb) == 1
    await tb.write("IRQ_STATUS", 1 << IRQ_BITS["done"][0])
    assert await tb.read("IRQ_STATUS") == 0 and await _irq(tb) == 0
    assert await tb.read("ERROR") == 0

    await _refused_tiles(tb, cfg, cmd, q_rows, good, want)

    # A KV beat beyond the buffer (when the address field can name one): dropped and flagged.
    if cfg.kv_keys < (1 << cfg.kv_addr_bits):
        await tb.kv.send(tb.frame([cfg.kv_keys], tb.bytes["kv"]))       # {addr: kv_keys, k: 0, v: 0}
        await tb.kv.wait()
        await ClockCycles(dut.aclk, 4)
        assert await tb.read("ERROR") == 1 << ERROR_BITS["kv_addr"][0]
        assert await _irq(tb) == 1
        await tb.write("ERROR", 0xFF)
        await tb.write("IRQ_STATUS", 3)
        await _good_tile(tb, good, want, "after a KV beat beyond the buffer")
        await tb.wait_idle()

    # A CMD write while one is pending is dropped and flagged; the pending one runs.
    await tb.write("IRQ_STATUS", 3)
    await tb.write("CMD_KEYS", cmd["n_keys"])
    word = cmd_word(cfg, n, cmd["causal"], cmd["pattern"])
    await tb.write("CMD", word)                 # taken by the sequencer: waits for its Q beats
    await tb.write("CMD", word)                 # pending
    await tb.write("CMD", word)                 # overrun: dropped
    assert await tb.read("ERROR") == 1 << ERROR_BITS["cmd_overrun"][0]
    sizes, observed = [n, n], []
    collector = cocotb.start_soon(_collect(tb, sizes, observed))
    await tb.q.send(tb.frame(q_rows, tb.bytes["q"]))
    await tb.q.send(tb.frame(q_rows, tb.bytes["q"]))
    await tb.q.wait()
    await _wait_rows(tb, observed, 2 * n)
    collector.cancel()
    assert observed == want * 2, "the pending command after an overrun"

