"""The small configs the formal properties are proven on.

Solvers need small state: 2 rows, head_dim 2, 4-bit data, a 4-key buffer.
Every width still comes from the config's own rules (``fusioncim.core.config``), so
a property proven here is proven for the generator's logic at this size.
"""

from __future__ import annotations

from ..core.config import EngineConfig

__all__ = ["FORMAL", "FORMAL_LANES", "narrower", "quick"]

FORMAL = EngineConfig(
    head_dim=2, rows=2, data_bits=4, ip_bits_per_cycle=2, op_bits_per_cycle=4, log_frac_bits=2, x_int_bits=4,
    const_bits=3, prob_bits=4, fine_lut_bits=2, coarse_lut_bits=1, fine_window=2, skip_threshold=5,
    sink_keys=1, diag_window=2, max_seq_len=4, out_frac_bits=1, kv_depth=4)

# The softmax with one exponent lane (two cycles a key) and a lazy threshold (p one bit wider).
FORMAL_LANES = FORMAL.replace(softmax_lanes=1, lazy_threshold=1, op_bits_per_cycle=5)


def quick(config: EngineConfig) -> EngineConfig:
    """The regression's copy of a formal config: one element per row (``head_dim`` 1), the smallest
    that still exercises every property and catches every broken variant (``tests/test_formal.py``
    shows both on it). ``make formal`` proves the full configs."""
    return config.replace(head_dim=1)


def narrower(config: EngineConfig, width: str) -> EngineConfig:
    """A broken copy of ``config`` whose derived ``width`` (e.g. ``"sum_width"``) is one bit short.

    The config's validation refuses such a width, which is the point: it only
    exists to show that a property catches the overflow.
    """
    base = type(config)

    class Narrow(base):
        pass
    setattr(Narrow, width, property(lambda self: getattr(base, width).fget(self) - 1))
    Narrow.__name__ = f"{base.__name__}_{width}_minus_1"
    return Narrow(**{f: getattr(config, f) for f in config.__dataclass_fields__})
