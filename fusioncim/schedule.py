"""Schedule facts of the generated blocks, stated once: the phases and stages they are built from.

The hardware is built from these declarations (``hw/op_cim.py``'s normaliser
steps through :class:`NormPhase`; ``hw/softmax.py`` has one register stage per
entry of :data:`SOFTMAX_STAGES`; ``hw/engine.py`` puts one register per entry
of :data:`TILE_HANDOFFS` on the way of a key), and each block exposes the
figures as properties. The golden model's cycle count and the dataflow model
read them from here, and each block's tests measure the hardware against them
(docs/numerics.md section 7).
"""

from __future__ import annotations

from amaranth.lib import enum

__all__ = ["NormPhase", "quotient_bits", "norm_phase_cycles", "norm_cycles_per_row", "SOFTMAX_STAGES",
           "softmax_latency", "softmax_depth", "ip_latency", "ip_depth", "TILE_HANDOFFS", "tile_overhead"]


class NormPhase(enum.Enum, shape=2):
    """Phases of the OP-CIM's normaliser for one output row, in order."""
    LOAD = 0          # |O| 2^(f+1) + l and the divisor 2 l into the divider
    DIVIDE = 1        # one quotient bit a cycle, most significant first
    ROUND = 2         # sign and saturation; the row goes onto o_out
    HANDOVER = 3      # o_out taken (waits while it is not ready)


def quotient_bits(cfg) -> int:
    """Quotient bits the divider produces: enough for any in-range output plus one to detect overflow."""
    return cfg.out_bits + 1


def norm_phase_cycles(cfg) -> dict:
    """Cycles each :class:`NormPhase` takes with ``o_out`` always ready."""
    return {NormPhase.LOAD: 1, NormPhase.DIVIDE: quotient_bits(cfg), NormPhase.ROUND: 1, NormPhase.HANDOVER: 1}


def norm_cycles_per_row(cfg) -> int:
    """The normaliser's period per output row (``norm_busy`` per row): ``out_bits + 4``."""
    return sum(norm_phase_cycles(cfg).values())


SOFTMAX_STAGES = ("accept", "log2", "running max")
"""Register stages of the softmax unit before its exponent stage, each one cycle per key."""


def softmax_latency(cfg) -> int:
    """Cycles from a key's acceptance by the softmax unit to its p leaving: the stages, then the
    exponent stage's ``ceil(rows / lanes)`` cycles."""
    return len(SOFTMAX_STAGES) + cfg.softmax_groups


def softmax_depth(cfg) -> int:
    """Keys the softmax unit holds at most: one per register stage and one in the output register."""
    return len(SOFTMAX_STAGES) + 1


def ip_latency(cfg) -> int:
    """Cycles from a key's acceptance by the IP-CIM to its scores being valid: the digits, then the output register."""
    return cfg.ip_cycles_per_key + 1


def ip_depth(cfg) -> int:
    """Keys the IP-CIM holds at most: one in the bit-serial datapath, one in its output register."""
    return 2


TILE_HANDOFFS = ("command", "K read", "IP-CIM accept", "V read", "OP-CIM accept")
"""One-cycle steps on a tile's way through the engine besides the blocks' own latencies (hw/engine.py)."""


def tile_overhead(cfg) -> int:
    """The part of a tile's span it pays whatever its keys: command and hand-offs, the ``rows`` load
    cycles, and the first key's way through the IP-CIM and the softmax unit (docs/numerics.md §7)."""
    return cfg.rows + cfg.ip_cycles_per_key + softmax_latency(cfg) + len(TILE_HANDOFFS)
