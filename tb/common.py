"""What every cocotb testbench module shares: its knobs and the reset sequence.

Knobs come from the environment set by ``fusioncim.rtlsim.run``:
``FUSIONCIM_CONFIG`` (the EngineConfig as JSON, required), ``FUSIONCIM_SEED``
(logged by each testbench), ``FUSIONCIM_KEYS`` (run length).
"""

from __future__ import annotations

import json
import os

from cocotb.triggers import ClockCycles, RisingEdge

from fusioncim.config import EngineConfig

__all__ = ["config", "seed", "keys", "reset"]


def config():
    return EngineConfig(**json.loads(os.environ["FUSIONCIM_CONFIG"]))


def seed():
    return int(os.environ.get("FUSIONCIM_SEED", "1"))


def keys():
    return int(os.environ.get("FUSIONCIM_KEYS", "40"))


async def reset(dut, cycles=3):
    """Hold Amaranth's synchronous ``rst`` high for ``cycles`` clocks, then release it."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
