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

__all__ = ["NormPhase", "quotient_bits", "norm_phase_cycles", "norm_group_cycles", "norm_cycles", "SOFTMAX_STAGES",
           "softmax_latency", "softmax_depth", "ip_latency", "ip_depth", "TILE_HANDOFFS", "tile_overhead"]


class NormPhase(enum.Enum, shape=2):
    """Phases of the OP-CIM's normaliser for one group of ``norm_lanes`` output rows, in order."""
    LOAD = 0          # |O| 2^(f+1) + l and the divisor 2 l into each lane's divider
    DIVIDE = 1        # one quotient bit a cycle, most significant first, every lane at once
    ROUND = 2         # sign and saturation in every lane; the group's first row goes onto o_out
    HANDOVER = 3      # the group's rows handed over one a cycle (waits while o_out is not ready)


def quotient_bits(cfg) -> int:
    """Quotient bits the divider produces: enough for any in-range output plus one to detect overflow."""
    return cfg.out_bits + 1


def norm_phase_cycles(cfg) -> dict:
    """Cycles each :class:`NormPhase` takes for a full group with ``o_out`` always ready."""
    return {NormPhase.LOAD: 1, NormPhase.DIVIDE: quotient_bits(cfg), NormPhase.ROUND: 1,
            NormPhase.HANDOVER: cfg.norm_lanes}


def norm_group_cycles(cfg) -> int:
    """The normaliser's period per full group of ``norm_lanes`` rows: ``out_bits + 3 + norm_lanes``
    (``out_bits + 4`` a row with one lane)."""
    return sum(norm_phase_cycles(cfg).values())


def norm_cycles(cfg, n_rows):
    """Cycles (``norm_busy``) the normaliser spends on a tile of ``n_rows`` rows with ``o_out`` ready:
    ``ceil(n_rows / norm_lanes)`` groups of load, divide and round, and one handover cycle a row.
    Works on integers and on numpy arrays of row counts."""
    groups = -(-n_rows // cfg.norm_lanes)
    return groups * (norm_group_cycles(cfg) - cfg.norm_lanes) + n_rows


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
