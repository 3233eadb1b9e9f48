"""What every cocotb testbench module shares: its knobs and the reset sequence.

Knobs come from the environment set by ``fusioncim.sim.rtlsim.run``:
``FUSIONCIM_CONFIG`` (the EngineConfig as JSON, required), ``FUSIONCIM_SEED``
(logged by each testbench), ``FUSIONCIM_KEYS`` (run length).
"""

from __future__ import annotations

import json
import os

import random

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from ..core.config import EngineConfig

from .streams import CLOCK_NS

__all__ = ["config", "seed", "keys", "reset", "BlockTB"]


def config():
    return EngineConfig(**json.loads(os.environ["FUSIONCIM_CONFIG"]))


def seed():
    return int(os.environ.get("FUSIONCIM_SEED", "1"))


def keys():
    return int(os.environ.get("FUSIONCIM_KEYS", "40"))


class BlockTB:
    """What a block's testbench starts from: its config and seed from the environment, two seeded
    generators (``rng`` NumPy for data, ``prng`` for stall patterns; ``salt`` varies them per
    test) and the clock."""

    def __init__(self, dut, salt=0):
        self.dut = dut
        self.cfg = config()
        self.log = dut._log
        self.seed = seed()
        self.rng = np.random.default_rng(self.seed + salt)
        self.prng = random.Random(self.seed ^ salt)
        Clock(dut.clk, CLOCK_NS, unit="ns").start()

    async def reset(self):
        await reset(self.dut)

    @classmethod
    async def start(cls, dut, **kwargs):
        """The testbench, built and with the design out of reset."""
        tb = cls(dut, **kwargs)
        await tb.reset()
        return tb


async def reset(dut, cycles=3):
    """Hold Amaranth's synchronous ``rst`` high for ``cycles`` clocks, then release it."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
