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
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["pack", "unpack", "random_pattern", "always", "StreamSource", "StreamSink", "Scoreboard"]


def pack(values, width):
    """Pack integers (element 0 at the least significant bits) into one integer."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack(word, width, count, *, signed=True):
    """Inverse of :func:`pack`."""
    mask = (1 << width) - 1
    vals = [(word >> (i * width)) & mask for i in range(count)]
    if signed:
        vals = [v - (1 << width) if v >> (width - 1) else v for v in vals]
    return vals


def random_pattern(rng: random.Random, p_true: float):
    """Seeded random booleans, True with probability ``p_true``."""
    while True:
        yield rng.random() < p_true


def always():
    return itertools.repeat(True)


class StreamSource:
    """Drives ``NAME__payload/valid``; :meth:`send` returns once the item is accepted."""

    def __init__(self, dut, name, clk, idle=None):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clk = clk
        self.idle = idle if idle is not None else always()
        self.sent = 0
        self.valid.value = 0

    async def send(self, value):
        # Call from the write phase of a cycle (after a RisingEdge).
        while not next(self.idle):
            self.valid.value = 0
            await RisingEdge(self.clk)
        self.payload.value = value
        self.valid.value = 1
        while True:
            await ReadOnly()
            accepted = bool(self.ready.value)
            await RisingEdge(self.clk)
            if accepted:
                break
        self.valid.value = 0
        self.sent += 1


class StreamSink:
    """Drives ``NAME__ready`` from a pattern; hands each transfer ``(cycle, payload)`` to ``callback``."""

    def __init__(self, dut, name, clk, callback, backpressure=None):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.clk = clk
        self.callback = callback
        self.backpressure = backpressure if backpressure is not None else always()
        self.received = 0
        self.cycle = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1
            ready = next(self.backpressure)
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and self.valid.value == 1:
                self.received += 1
                self.callback(self.cycle, self.payload.value.to_unsigned())

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
