"""cocotb drivers and monitors for Amaranth stream ports, shared by every testbench.

An Amaranth ``stream.Signature`` port ``NAME`` appears in Verilog as
``NAME__payload``, ``NAME__valid`` and ``NAME__ready``. A transfer happens at
a rising clock edge where valid and ready are both high. Both classes sample
the handshake in the ReadOnly phase before that edge, which gives the same
answer on every simulator.

Idle and backpressure patterns are iterators of booleans, one per cycle
(True: present data / accept data): ``itertools.cycle([1, 1, 1, 0])``,
:func:`random_pattern`, or ``itertools.repeat(True)``.
"""

from __future__ import annotations

import itertools
import random
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

from ..hw.common import decode, encode

__all__ = ["encode", "decode", "random_pattern", "always", "StreamSource", "StreamSink", "Scoreboard", "CLOCK_NS",
           "cycle", "within", "Stalled"]

CLOCK_NS = 10           # every testbench's clock period


def cycle():
    """The current clock cycle (simulation time in whole periods)."""
    return int(get_sim_time("ns")) // CLOCK_NS


class Stalled(AssertionError):
    """The design made no progress within a test's cycle budget; the message says where each stream stood."""


async def within(cycles, awaitable, streams, what):
    """Await ``awaitable``; after ``cycles`` clock cycles fail with :class:`Stalled`, naming each stream's state.

    Every wait of a testbench on the design goes through here (directly or in
    :meth:`StreamSource.send`), so a deadlocked design fails in simulated
    time proportional to the work, not at CI's limit.
    """
    try:
        return await with_timeout(awaitable, int(cycles) * CLOCK_NS, "ns")
    except SimTimeoutError:
        where = "; ".join(s.state() for s in streams)
        raise Stalled(f"{what}: no progress within {int(cycles)} cycles (cycle {cycle()}): {where}") from None


def random_pattern(rng: random.Random, p_true: float):
    """Seeded random booleans, True with probability ``p_true``."""
    while True:
        yield rng.random() < p_true


def always():
    return itertools.repeat(True)


class _Stream:
    """The three signals of an Amaranth stream port ``NAME``, its payload layout, and its last transfer."""

    def __init__(self, dut, name, clk, layout):
        self.name = name
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clk = clk
        self.layout = layout
        self.beats = 0
        self.last = None            # cycle of the last transfer

    def state(self):
        """Where the stream stands, for a stall report."""
        def bit(sig):
            v = sig.value
            return str(v) if not v.is_resolvable else str(int(v))
        since = "no beat yet" if self.last is None else f"last beat at cycle {self.last}"
        return f"{self.name} valid={bit(self.valid)} ready={bit(self.ready)} after {self.beats} beats ({since})"


class StreamSource(_Stream):
    """Drives ``NAME__payload/valid``; :meth:`send` returns once the item is accepted.

    With ``layout``, :meth:`send` takes the payload as :func:`encode` does.
    """

    # A beat offered this many cycles without being taken is a stall, whatever the test.
    MAX_WAIT = 200_000

    def __init__(self, dut, name, clk, idle=None, layout=None):
        super().__init__(dut, name, clk, layout)
        self.idle = idle if idle is not None else always()
        self.valid.value = 0

    @property
    def sent(self):
        return self.beats

    async def send(self, value, gap=0):
        """Offer ``value`` after ``gap`` idle cycles (and the idle pattern's); return once it is taken.

        Call from the write phase of a cycle (after a RisingEdge).
        """
        if gap:
            self.valid.value = 0
            await ClockCycles(self.clk, gap)
        while not next(self.idle):
            self.valid.value = 0
            await RisingEdge(self.clk)
        self.payload.value = value if self.layout is None else encode(self.layout, value)
        self.valid.value = 1
        for _ in range(self.MAX_WAIT):
            await ReadOnly()
            accepted = bool(self.ready.value)
            await RisingEdge(self.clk)
            if accepted:
                break
        else:
            raise Stalled(f"{self.name}: beat {self.sent} offered for {self.MAX_WAIT} cycles and never taken")
        self.valid.value = 0
        self.beats += 1
        self.last = cycle()


class StreamSink(_Stream):
    """Drives ``NAME__ready`` from a pattern; hands each transfer ``(cycle, payload)`` to ``callback``.

    With ``layout`` the payload is decoded (:func:`decode`), else it is the integer.
    ``gaps`` (a list that may grow while the sink runs): before transfer i,
    ``ready`` stays low for ``gaps[i]`` cycles after the previous transfer.
    """

    def __init__(self, dut, name, clk, callback, backpressure=None, layout=None):
        super().__init__(dut, name, clk, layout)
        self.callback = callback
        self.backpressure = backpressure if backpressure is not None else always()
        self.gaps = []
        self.cycle = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        since = 0                  # cycles since the last transfer
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            gap = self.gaps[self.beats] if self.beats < len(self.gaps) else 0
            ready = next(self.backpressure) and since >= gap
            since += 1
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and self.valid.value == 1:
                self.beats += 1
                since = 0
                self.last = cycle()
                word = self.payload.value.to_unsigned()
                self.callback(self.cycle, word if self.layout is None else decode(self.layout, word))

    @property
    def received(self):
        return self.beats

    def stop(self):
        self._task.cancel()


class Scoreboard:
    """In-order comparison of observed items with expected ones; every mismatch is reported."""

    def __init__(self, log, name):
        self.log = log
        self.name = name
        self.expected = deque()
        self.errors = []
        self.matched = 0

    def expect(self, item):
        self.expected.append(item)

    def observe(self, item):
        if not self.expected:
            self.errors.append(f"{self.name}: unexpected item {item!r}")
            return
        want = self.expected.popleft()
        if item != want:
            self.errors.append(f"{self.name}: item {self.matched + len(self.errors)}: got {item!r}, want {want!r}")
        else:
            self.matched += 1

    def check(self):
        """Raise unless every expected item arrived and matched."""
        if self.expected:
            self.errors.append(f"{self.name}: {len(self.expected)} expected item(s) never arrived")
        if self.errors:
            for e in self.errors[:10]:
                self.log.error(e)
            raise AssertionError(f"{self.name}: {len(self.errors)} error(s); first: {self.errors[0]}")
        self.log.info("%s: %d item(s) matched", self.name, self.matched)
