"""The engine's activity counters: one list that hw, golden, formal, the testbenches and the docs read.

:class:`Counters` is the record (golden fills it, the RTL's counter ports are
read into it); every field but ``ideal_cycles`` is a 40-bit output port of
``hw/engine.py`` of the same name, in the same order. Each field says which
block counts it (the softmax unit's own counters pass through the engine) and
its largest step in one cycle, which the formal property
``engine.counter_steps`` asserts. Semantics: docs/numerics.md section 7.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["COUNTER_BITS", "Counters", "ENGINE_COUNTERS", "SOFTMAX_COUNTERS", "step"]

COUNTER_BITS = 40          # wraps after 2**40 / step cycles (docs/formal.md)


def _counter(doc, block="engine", per_cycle=1):
    # per_cycle: largest step in one cycle, 1 or "rows" (an entry counter counts rows).
    return field(default=0, metadata={"doc": doc, "block": block, "per_cycle": per_cycle, "hw": True})


@dataclass
class Counters:
    """Activity the hardware exposes, summed over tiles (docs/numerics.md §7)."""
    cycles: int = _counter("the generated engine's schedule (docs/numerics.md §7)")
    ideal_cycles: int = field(default=0, metadata={"doc": "keys x IP-CIM cycles per key (derived; no port)",
                                                   "hw": False})
    q_load_cycles: int = _counter("row slots set up in the softmax unit")
    ip_busy: int = _counter("cycles the IP-CIM datapath advances")
    softmax_busy: int = _counter("cycles the softmax exponent stage works on a group of rows")
    op_busy: int = _counter("cycles the OP-CIM array updates (a digit or a rescale)")
    norm_busy: int = _counter("cycles the normaliser works (not waiting on o_out)")
    tiles: int = _counter("tiles ended")
    keys: int = _counter("keys streamed past a tile (= K reads)", "softmax")
    skipped_keys: int = _counter("keys whose V read and OP-CIM update were skipped", "softmax")
    k_reads: int = _counter("K rows read from the KV buffer")
    v_reads: int = _counter("V rows read from the KV buffer")
    fine_lookups: int = _counter("(row, key) pairs served by the fine LUT", "softmax", "rows")
    coarse_lookups: int = _counter("(row, key) pairs served by the coarse LUT", "softmax", "rows")
    skipped_entries: int = _counter("(row, key) pairs forced to p = 0 by the skip threshold", "softmax", "rows")
    masked_entries: int = _counter("(row, key) pairs masked (causal, or empty row slot)", "softmax", "rows")
    rescales: int = _counter("(row, key) rescale events", "softmax", "rows")
    cim_writes: int = _counter("Q rows written into the IP-CIM")
    kv_writes: int = _counter("keys (K and V rows) written into the KV buffer")
    ip_stalls: int = _counter("cycles the IP-CIM waits on the softmax: 0 by design (docs/numerics.md §7)")

    def __add__(self, other):
        return Counters(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                           for f in dataclasses.fields(self)})

    def to_dict(self):
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(Counters)}

ENGINE_COUNTERS = tuple(n for n, f in _FIELDS.items() if f.metadata["hw"])
"""The engine's counter ports, in port order."""

SOFTMAX_COUNTERS = tuple(n for n in ENGINE_COUNTERS if _FIELDS[n].metadata["block"] == "softmax")
"""The softmax unit's counter ports (``hw/softmax.py``), which the engine passes through."""


def step(name, config):
    """Largest amount counter ``name`` grows by in one cycle for ``config``."""
    s = _FIELDS[name].metadata["per_cycle"]
    return config.rows if s == "rows" else s
