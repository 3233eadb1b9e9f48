"""Timing constraints (SDC) for generated Verilog: ``fusioncim generate BLOCK --sdc [NS]``.

One clock drives the whole design (the AXI top's ``aclk`` feeds the register block, the framing and the
engine alike: there is no clock crossing inside), so the file has one ``create_clock``. The reset is
synchronous (``rst`` high, or ``aresetn`` low on the AXI top) and is timed like any input. Inputs and
outputs get a share of the period as the delay outside the block (``IO_SHARE``), which an integrator
replaces with the real budgets of the surrounding logic.
"""

from __future__ import annotations

from .. import __version__

__all__ = ["IO_SHARE", "clock_port", "sdc_text"]

IO_SHARE = 0.2          # of the period, taken by the logic outside the block on each input and output path


def clock_port(block: str) -> tuple:
    """``(clock, reset)`` port names of ``block``'s Verilog."""
    return ("aclk", "aresetn") if block == "engine_axi" else ("clk", "rst")


def sdc_text(block: str, period_ns: float, source: str, *, prefix="") -> str:
    """The SDC of ``block`` (top module ``prefix + block``) for a clock of ``period_ns``; ``source`` says where
    the period came from (the user, or the estimate of ``fusioncim area``)."""
    if not period_ns > 0:
        raise ValueError(f"the clock period must be positive, not {period_ns}")
    clock, reset = clock_port(block)
    io = round(IO_SHARE * period_ns, 3)
    return f"""# Timing constraints for {prefix}{block}, written by fusioncim {__version__} (fusioncim generate --sdc).
# Clock period {period_ns:.3f} ns ({1000 / period_ns:.0f} MHz): {source}.
# One clock drives the whole design (no clock crossing inside); the reset `{reset}` is synchronous.
create_clock -name {clock} -period {period_ns:.3f} [get_ports {clock}]
set_clock_uncertainty 0.050 [get_clocks {clock}]
# Inputs and outputs: {IO_SHARE:.0%} of the period is left to the logic outside the block; replace these with
# the real budgets of the surrounding design.
set_input_delay {io:.3f} -clock {clock} [all_inputs -no_clocks]
set_output_delay {io:.3f} -clock {clock} [all_outputs]
set_load 0.010 [all_outputs]
"""
