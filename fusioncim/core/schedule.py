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

from dataclasses import dataclass

import numpy as np
from amaranth.lib import enum

from .errors import InputError

__all__ = ["NormPhase", "quotient_bits", "norm_phase_cycles", "norm_group_cycles", "norm_cycles", "SOFTMAX_STAGES",
           "softmax_latency", "softmax_depth", "ip_latency", "ip_depth", "TILE_HANDOFFS", "tile_overhead",
           "MODES", "Tiles", "tiles_prefill", "tiles_decode", "make_tiles", "check_positions", "key_order",
           "tile_keys", "tile_span", "plain_tile_span", "op_cycles", "segment_cycles", "segments"]


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


# -- Tiling and the inter-tile schedule (docs/numerics.md §6-§7): which query rows form a tile, the
# order keys stream past it, and the cycles a tile and a run of tiles take. Golden's counters,
# the host program and the dataflow model all read them from here.

MODES = ("prefill", "decode")


@dataclass(frozen=True)
class Tiles:
    """Which query rows go together: ``qrow [T, R]`` (index into Lq, -1 empty), ``head [T, R]``, ``kv [T]``."""
    qrow: np.ndarray
    head: np.ndarray
    kv: np.ndarray

    def __len__(self):
        return len(self.kv)


def tiles_prefill(H, Lq, Hkv, rows):
    """Each query head's rows in chunks of ``rows`` consecutive positions."""
    per = -(-Lq // rows)
    r = np.arange(per * rows).reshape(per, rows)
    qrow = np.where(r < Lq, r, -1)
    qrow = np.tile(qrow, (H, 1))
    head = np.repeat(np.arange(H), per)[:, None] * np.ones(rows, np.int64)
    kv = np.repeat(np.arange(H) // (H // Hkv), per)
    return Tiles(qrow=qrow, head=np.where(qrow >= 0, head, -1), kv=kv)


def tiles_decode(H, Lq, Hkv, rows, positions=1):
    """For each KV head, ``positions`` consecutive query positions at a time with the group's query heads.

    A tile holds the ``H // Hkv`` query heads of one GQA group at up to
    ``positions`` consecutive positions, position-major (row ``i * group + g``
    is position ``i`` of the chunk, head ``g`` of the group): multi-token
    decode and speculative verification. With one position a group larger
    than ``rows`` is split into chunks of ``rows`` heads; with more,
    ``group * positions`` must fit ``rows`` (:func:`check_positions`).
    """
    group = H // Hkv
    qrow, head, kv = [], [], []
    for h in range(Hkv):
        for i0 in range(0, Lq, positions):
            i = np.arange(i0, min(i0 + positions, Lq))
            q_entries = np.repeat(i, group)
            h_entries = np.tile(h * group + np.arange(group), len(i))
            per = -(-len(q_entries) // rows)
            pad = per * rows - len(q_entries)
            qrow.append(np.concatenate([q_entries, np.full(pad, -1)]).reshape(per, rows))
            head.append(np.concatenate([h_entries, np.full(pad, -1)]).reshape(per, rows))
            kv.append(np.full(per, h))
    if not kv:
        return Tiles(qrow=np.zeros((0, rows), np.int64), head=np.zeros((0, rows), np.int64),
                     kv=np.zeros(0, np.int64))
    return Tiles(qrow=np.concatenate(qrow).astype(np.int64), head=np.concatenate(head).astype(np.int64),
                 kv=np.concatenate(kv).astype(np.int64))


def make_tiles(mode, H, Lq, Hkv, rows, positions=1):
    """The tiles of ``mode`` (:func:`tiles_prefill` or :func:`tiles_decode`), ``positions`` checked first."""
    check_positions(positions, mode, H // Hkv, rows)
    if mode == "prefill":
        return tiles_prefill(H, Lq, Hkv, rows)
    return tiles_decode(H, Lq, Hkv, rows, positions)


def check_positions(positions, mode, group=None, rows=None, *, what="positions"):
    """Refuse a ``positions`` (query positions per decode tile) the tiling cannot hold, naming the numbers.

    Without ``group`` and ``rows`` only the rules that need no config: a positive integer, decode only.
    """
    if isinstance(positions, bool) or not isinstance(positions, (int, np.integer)) or positions < 1:
        raise InputError(f"{what} must be a positive integer, not {positions!r}")
    if positions > 1 and mode != "decode":
        raise InputError(f"{what} {positions} applies to decode only; a prefill tile already holds "
                         f"consecutive positions of one head")
    if group is not None and positions > 1 and positions * group > rows:
        raise InputError(f"{what} {positions} x GQA group {group} = {positions * group} rows exceed the "
                         f"engine's rows {rows}; use at most {max(rows // group, 1)} position(s)")


def key_order(n_keys, hi, cfg):
    """The order keys ``[0, n_keys)`` stream past a tile whose latest query sits at ``hi``.

    "sequential": 0, 1, ... . "pattern": the ``sink_keys`` first keys, then the
    ``diag_window`` keys ending at ``hi`` from the latest down, then the rest in order.
    """
    if cfg.key_order == "sequential" or n_keys == 0:
        return np.arange(n_keys)
    sink = np.arange(min(cfg.sink_keys, n_keys))
    top = min(hi, n_keys - 1)
    diag = np.arange(top, max(top - cfg.diag_window, len(sink) - 1), -1)
    diag = diag[diag >= len(sink)]
    # The diagonal window is a run of consecutive keys: the rest lie either side of it.
    lo, hi_diag = (int(diag[-1]), int(diag[0]) + 1) if len(diag) else (len(sink), len(sink))
    rest = np.concatenate([np.arange(len(sink), lo), np.arange(hi_diag, n_keys)])
    return np.concatenate([sink, diag, rest]).astype(np.int64)


def tile_keys(qpos_rows, valid_rows, Lk, causal):
    """``(keys streamed, latest query)`` of a tile: all keys, or under causal masking up to its latest query."""
    if not valid_rows.any():
        return 0, 0
    hi = int(qpos_rows[valid_rows].max())
    return (hi + 1 if causal else Lk), hi


def tile_span(cfg, n_keys, skipped, any_rescale):
    """Cycles of one tile from its command to the end of its last key (docs/numerics.md §7).

    ``skipped`` and ``any_rescale`` are per streamed key, in stream order. The
    command cycle, ``rows`` load cycles, then key i enters the IP-CIM at
    ``cpk * i``; its p reaches the OP-CIM ``cpk + 2 + softmax_latency`` cycles (``fusioncim.core.schedule``)
    later, which needs ``op_cycles_per_key`` (+1 with a rescale) and one more to
    see the array idle; a skipped key ends at the V read.
    """
    cpk = cfg.ip_cycles_per_key
    i = np.arange(n_keys)
    tail = np.where(skipped, 0, op_cycles(cfg, skipped, any_rescale) + 1)
    return tile_overhead(cfg) + int((cpk * i + tail).max())


def segment_cycles(cfg, spans, n_rows):
    """Cycles of back-to-back tiles against one KV buffer load, the last tile's division included.

    With ``double_buffer`` a tile may end once the previous tile's division is
    done, and the next command follows the end of a tile at once; without, the
    next command waits for the division. With ``q_double_buffer`` the next
    command and its load follow the previous tile's start (its swap), and a
    loaded tile starts one cycle after the previous tile's end (single-buffered:
    after its division).
    """
    if cfg.q_double_buffer:
        return _segment_cycles_preloaded(cfg, spans, n_rows)
    t_end = -1                   # cycle of the previous tile's end (its O handed to the divider)
    free = 0                     # first cycle the divider can take a tile
    start = 0                    # command cycle of the next tile
    for span, rows in zip(spans, n_rows):
        t_end = max(start + int(span) - 1, free)
        drain = int(norm_cycles(cfg, int(rows)))
        free = t_end + drain + 1
        start = free if not cfg.double_buffer else t_end + 1
    return free


def _segment_cycles_preloaded(cfg, spans, n_rows):
    # A span counts the command cycle and the `rows` load cycles before the first key issue; here
    # the keys follow the swap instead.
    free = 0                     # first cycle the divider can take a tile
    run_free = 0                 # first cycle the run is idle
    cmd = 0                      # command cycle of the next tile
    for span, rows in zip(spans, n_rows):
        loaded = cmd + cfg.rows + 1                      # first cycle the loaded tile can start
        swap = max(loaded, run_free, free if not cfg.double_buffer else 0)
        t_end = max(swap + int(span) - 1 - cfg.rows, free)
        free = t_end + int(norm_cycles(cfg, int(rows))) + 1
        run_free = t_end + 1
        cmd = swap + 1
    return free


def plain_tile_span(cfg, n_keys):
    """:func:`tile_span` of tiles of ``n_keys`` keys (an integer or an array) none of which is skipped or
    rescaled: the last key issued is the last to finish. The dataflow model's span; a test holds the two equal."""
    return tile_overhead(cfg) + cfg.ip_cycles_per_key * (n_keys - 1) + cfg.op_cycles_per_key + 1


def op_cycles(cfg, skipped, any_rescale):
    # OP-CIM cycles per key: bit-serial over p, plus one for a rescale shift;
    # nothing at all for a skipped key.
    return np.where(skipped, 0, cfg.op_cycles_per_key + any_rescale.astype(np.int64))


def segments(tiles):
    """Runs of consecutive tiles on one KV head: the host loads the buffer once per run."""
    cut = np.flatnonzero(np.diff(tiles.kv)) + 1
    return np.split(np.arange(len(tiles)), cut)
