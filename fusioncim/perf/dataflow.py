"""Event counts and cycles of attention workloads under FusionCIM, its ablations and a baseline (docs/energy.md).

Five dataflows run the same workload on arrays of the same size (``rows`` x
``head_dim``, the engine config's):

``fusioncim``
    The generated engine: QO-stationary, fused IP-CIM -> softmax -> OP-CIM
    pipeline, pattern-aware online softmax. Its events come from the engine's
    counters (:class:`golden.engine.Counters`): measured on the RTL, run on the
    golden model, or (for workloads too long to run) the exact tile structure
    with the data-dependent counters at rates measured on real attention
    (:func:`model_counters`).
``no_fusion``
    The same, but S and P go through SRAM buffers and the three stages of a
    tile run one after another.
``no_qo_stationary``
    K and V stationary in the arrays, ``rows`` keys at a time; Q streams past
    and each query's partial O, running max and sum go to and from an SRAM
    buffer at every key block.
``no_pattern``
    The online softmax without its pattern-aware parts: the fine LUT
    everywhere, no skip threshold, no key skipping, keys in order.
``baseline``
    A conventional non-fused CIM dataflow: for every Q tile, K is re-read and
    written into the IP array ``rows`` keys at a time, S goes to an SRAM buffer,
    a three-pass float32 softmax (max; exp and sum; normalise) reads and writes
    S and P, V is written into the OP array block by block and partial O
    accumulates in a buffer. Phases do not overlap: the serial baseline.
``baseline_pipelined``
    The same events, with the three phases (QK on the IP array, the softmax,
    PV on the OP array) overlapped across Q tiles as a reasonable conventional
    design would: tile t's softmax runs while tile t+1's QK and tile t-1's PV
    do, which takes a second S/P buffer. Each phase starts once its unit is
    free and its input tile is done (:func:`pipelined_cycles`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core import schedule
from ..core.config import kv_buffer_bits
from ..golden import engine
from ..golden.engine import Counters
from ..golden.reference import query_positions
from ..synth import energy as energy_mod

__all__ = ["Workload", "WORKLOADS", "Structure", "structure", "Patterns", "measure_patterns", "rates_of",
           "model_counters", "events_from_counters", "VARIANTS", "variant_events", "no_pattern_config",
           "sizes_for", "ops", "pipelined_cycles", "BASELINES", "Buffers", "traffic", "ONCHIP_EVENTS"]

VARIANTS = ("baseline", "baseline_pipelined", "fusioncim", "no_fusion", "no_qo_stationary", "no_pattern")

BASELINES = ("baseline", "baseline_pipelined")
"""The two conventional dataflows the report sets FusionCIM beside: serial phases and pipelined phases."""

# LLaMA-3 attention shapes: Meta's model cards and config.json (8B: 32 query heads,
# 8 KV heads; 70B: 64 query heads, 8 KV heads; head_dim 128 in both).
_LLAMA3 = {"8b": (32, 8), "70b": (64, 8)}


@dataclass(frozen=True)
class Workload:
    """One attention layer: ``heads`` query heads over ``kv_heads`` KV heads.

    prefill: ``tokens`` queries against ``tokens`` keys, causal. decode:
    ``positions`` queries (the last tokens: the next token, or the draft tokens
    a speculative step verifies) against ``tokens`` keys of context, each
    masked causally by its own position; a tile holds the GQA group at up to
    ``positions`` positions (``core.schedule.tiles_decode``). The models below
    assume this causal structure.
    """
    name: str
    heads: int
    kv_heads: int
    head_dim: int
    mode: str
    tokens: int
    positions: int = 1

    def __post_init__(self):
        for f in ("heads", "kv_heads", "head_dim", "tokens"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"workload {f} must be a positive integer, not {v!r}")
        if self.heads % self.kv_heads:
            raise InputError(f"workload heads {self.heads} must be a multiple of kv_heads {self.kv_heads}")
        if self.mode not in schedule.MODES:
            raise InputError(f"workload mode must be one of {', '.join(schedule.MODES)}, not {self.mode!r}")
        schedule.check_positions(self.positions, self.mode, what="workload positions")
        if self.positions > self.tokens:
            raise InputError(f"workload positions {self.positions} exceed its {self.tokens} tokens")

    @property
    def queries(self):
        return self.tokens if self.mode == "prefill" else self.positions


def _llama(size, mode, tokens, positions=1):
    h, kv = _LLAMA3[size]
    suffix = f"-p{positions}" if positions > 1 else ""
    return Workload(f"llama3-{size}-{mode}-{tokens}{suffix}", h, kv, 128, mode, tokens, positions)


WORKLOADS = {w.name: w for w in [_llama(s, "prefill", t) for s in ("8b", "70b") for t in (512, 2048, 8192)]
             + [_llama(s, "decode", t, p) for s in ("8b", "70b") for t in (2048, 8192) for p in (1, 2, 4)]}


def no_pattern_config(cfg):
    """The online softmax without its pattern-aware parts (the ``no_pattern`` ablation)."""
    return dataclasses.replace(cfg, tiers=False, skip_threshold=None, key_skip=False, key_order="sequential")


# -- the exact tile structure -----------------------------------------------------

@dataclass(frozen=True)
class Structure:
    """Per tile: keys streamed ``n``, real rows ``r``, live (row, key) pairs ``live``; and the segments."""
    n: np.ndarray
    r: np.ndarray
    live: np.ndarray
    kv: np.ndarray
    segments: list

    @property
    def keys(self):
        return int(self.n.sum())


def structure(cfg, wl):
    """The engine's tiles for ``wl`` (golden.engine's tiling), without any data."""
    tiles = schedule.make_tiles(wl.mode, wl.heads, wl.queries, wl.kv_heads, cfg.rows, wl.positions)
    qpos = query_positions(wl.queries, wl.tokens)
    valid = tiles.qrow >= 0
    pos = np.where(valid, qpos[np.maximum(tiles.qrow, 0)], -1)
    hi = pos.max(axis=1)
    n = hi + 1                                 # causal: a tile streams keys up to its latest query
    live = np.where(valid, pos + 1, 0).sum(axis=1)
    return Structure(n=n.astype(np.int64), r=valid.sum(axis=1), live=live.astype(np.int64), kv=tiles.kv,
                     segments=schedule.segments(tiles))


def _cycles(cfg, st, spans, kv_load):
    total = 0
    for seg in st.segments:
        total += schedule.segment_cycles(cfg, spans[seg], st.r[seg]) + kv_load
    return total


# -- data-dependent rates from real attention --------------------------------------

@dataclass(frozen=True)
class Patterns:
    """Data-dependent rates of the online softmax, measured on real attention.

    ``key_skip``: skipped keys per streamed key; ``fine``, ``coarse``,
    ``skipped``, ``rescale``: per live (row, key) pair; ``op_rescale``: keys with
    an OP-CIM rescale cycle per V read.
    """
    key_skip: float
    fine: float
    coarse: float
    skipped: float
    rescale: float
    op_rescale: float
    source: str
    tokens: int = 0          # the sequence length the rates were measured at (0: files of several lengths)
    origin: str = ""         # where they came from, in words (fusioncim.perf.report.patterns)
    stored: bool = False     # read from the rates files shipped in fusioncim/data/patterns

    def to_dict(self):
        return dataclasses.asdict(self)


def rates_of(c: Counters, cfg, source=""):
    """The rates of :class:`Patterns` from a run's counters."""
    live = c.keys * cfg.rows - c.masked_entries
    op_extra = c.op_busy - c.v_reads * cfg.op_cycles_per_key
    return Patterns(key_skip=c.skipped_keys / max(c.keys, 1), fine=c.fine_lookups / max(live, 1),
                    coarse=c.coarse_lookups / max(live, 1), skipped=c.skipped_entries / max(live, 1),
                    rescale=c.rescales / max(live, 1), op_rescale=op_extra / max(c.v_reads, 1), source=source)


def measure_patterns(cfg, files, mode, *, decode_queries=32):
    """Run the golden engine on real attention files and return their :class:`Patterns`.

    prefill: every query, causal. decode: the last ``decode_queries`` tokens,
    each with its GQA group as one tile.
    """
    from ..accuracy import attnfile
    from ..accuracy import quant
    total = Counters()
    lengths = set()
    for path in files:
        att = attnfile.load(path)
        lengths.add(att.k.shape[1])
        c = cfg.fit(att.head_dim, att.k.shape[1])
        z = quant.quantise(att.q, att.k, att.v, c, scale=att.scale)
        if mode == "prefill":
            r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, c, causal=True)
        else:
            nq = min(decode_queries, z.q.shape[1])
            r = engine.run(z.q[:, -nq:], z.k, z.v, z.c_mant[:, -nq:], z.c_shift[:, -nq:], c, causal=True,
                           mode="decode")
        total = total + r.counters
    names = ", ".join(sorted({Path(f).name for f in files}))
    return dataclasses.replace(rates_of(total, cfg, source=f"golden model, {mode}, on {names}"),
                               tokens=lengths.pop() if len(lengths) == 1 else 0)


def model_counters(cfg, wl, pat: Patterns, st=None):
    """The engine's counters for ``wl``: structure exact, data-dependent counters at ``pat``'s rates.

    ``cycles`` takes each tile's last key as neither skipped nor rescaled
    (exact then; otherwise at most ``op_cycles_per_key + 2`` high per tile).
    """
    st = st or structure(cfg, wl)
    keys = st.keys
    live = int(st.live.sum())
    rows_total = keys * cfg.rows
    skipped = round(keys * pat.key_skip) if cfg.key_skip else 0
    v_reads = keys - skipped
    c = Counters(
        ideal_cycles=keys * cfg.ip_cycles_per_key, q_load_cycles=len(st.n) * cfg.rows,
        ip_busy=keys * cfg.ip_cycles_per_key, softmax_busy=keys * cfg.softmax_groups,
        op_busy=v_reads * cfg.op_cycles_per_key + round(v_reads * pat.op_rescale),
        norm_busy=int(schedule.norm_cycles(cfg, st.r).sum()), tiles=len(st.n), keys=keys, skipped_keys=skipped,
        k_reads=keys, v_reads=v_reads, fine_lookups=round(live * pat.fine), coarse_lookups=round(live * pat.coarse),
        skipped_entries=round(live * pat.skipped), masked_entries=rows_total - live,
        rescales=round(live * pat.rescale), cim_writes=int(st.r.sum()), kv_writes=wl.tokens * len(st.segments))
    c.cycles = _cycles(cfg, st, schedule.plain_tile_span(cfg, st.n), 0)
    return c


# -- events ------------------------------------------------------------------------

def events_from_counters(cfg, c: Counters):
    """The energy events of the fusioncim dataflow, from the engine's counters alone."""
    d, R = cfg.head_dim, cfg.rows
    ip_bitplane = c.ip_busy * R * d * cfg.ip_bits_per_cycle
    op_bitplane = c.v_reads * R * d * cfg.p_bits
    lookups = c.fine_lookups + c.coarse_lookups
    return {
        "ip_bitplane": ip_bitplane, "ip_row_add": c.ip_busy * R,
        "op_bitplane": op_bitplane, "op_acc_add": op_bitplane // cfg.op_bits_per_cycle,
        "op_rescale": c.rescales * d,
        "sm_convert": c.keys * R, "sm_compare": c.keys * R, "sm_lookup": lookups, "sm_accumulate": lookups,
        "sm_rescale": c.rescales,
        "norm_step": c.norm_busy * d,
        "kv_read_bits": (c.k_reads + c.v_reads) * d * cfg.data_bits,
        "kv_write_bits": c.kv_writes * 2 * d * cfg.data_bits,
        "qo_read_bits": c.cim_writes * d * cfg.data_bits,
        "qo_write_bits": c.cim_writes * d * cfg.out_bits,
        "cim_write_bits": c.cim_writes * d * cfg.data_bits,
        "dram_bits": c.cim_writes * d * (cfg.data_bits + cfg.out_bits) + c.kv_writes * 2 * d * cfg.data_bits,
    }


def _io(cfg, c):
    # Buffer fills and DRAM traffic every dataflow shares: Q in, O out, K and V once per KV head.
    e = events_from_counters(cfg, c)
    return {k: e[k] for k in ("kv_write_bits", "dram_bits")}


def _baseline(cfg, wl, st, c):
    d, R, b = cfg.head_dim, cfg.rows, cfg.data_bits
    n, r = st.n, st.r
    blocks = -(-n // R)
    live = int(st.live.sum())
    ip_bitplane = int((blocks * R * r).sum()) * d * b
    op_bitplane = int((blocks * R * r).sum()) * d * cfg.p_bits
    ev = {
        "ip_bitplane": ip_bitplane, "ip_row_add": ip_bitplane // (d * cfg.ip_bits_per_cycle),
        "op_bitplane": op_bitplane, "op_acc_add": op_bitplane // cfg.op_bits_per_cycle,
        # pass 1: S -> float, max; pass 2: S -> float, subtract, exp, sum; pass 3: x 1/l, P -> integer
        "fp_convert": 3 * live, "fp_add": 3 * live, "fp_exp": live, "fp_mul": live,
        # S written and read twice; P written as float32 and read, written as p and read by PV
        "sp_write_bits": live * (cfg.score_bits + 32 + cfg.p_bits),
        "sp_read_bits": live * (2 * cfg.score_bits + 32 + cfg.p_bits),
        "kv_read_bits": 2 * st.keys * d * b,
        "cim_write_bits": 2 * st.keys * d * b,
        # Q re-read per K block; partial O read and written per V block; final O out
        "qo_read_bits": int((blocks * r).sum()) * d * (b + cfg.acc_width),
        "qo_write_bits": int((blocks * r).sum()) * d * cfg.acc_width + int(r.sum()) * d * cfg.out_bits,
        **_io(cfg, c),
    }
    cycles = int(sum(_baseline_phases(cfg, st)).sum()) + wl.tokens * len(st.segments)
    return ev, cycles


def _baseline_phases(cfg, st):
    """Per tile, the cycles of the baseline's three phases: QK (each K block written into the IP array, then
    the tile's rows), the three-pass softmax over the live rows (``lanes`` entries a cycle), PV (each V block
    written into the OP array, then the rows) and the final O out."""
    R = cfg.rows
    n, r = st.n, st.r
    blocks = -(-n // R)
    qk = blocks * (R + r * cfg.ip_cycles_per_key)
    sm = 3 * -(-(r * n) // cfg.lanes)
    pv = blocks * (R + r * cfg.op_cycles_per_key) + R
    return qk, sm, pv


def pipelined_cycles(phases):
    """Cycles of tiles whose phases run on their own units, overlapped across tiles.

    ``phases`` is a list of per-tile cycle arrays, one per phase in order. A
    phase of tile t starts when the same unit has finished tile t - 1 and the
    previous phase has finished tile t: ``end[p][t] = max(end[p][t-1],
    end[p-1][t]) + phases[p][t]``. Solved in closed form with running maxima.
    """
    end = None
    for ph in phases:
        ph = np.asarray(ph, np.int64)
        run = np.cumsum(ph)
        if end is None:
            end = run
        else:
            # end[t] = run[t] + max over j <= t of (prev_end[j] - run[j - 1])
            before = np.concatenate([[0], run[:-1]])
            end = run + np.maximum.accumulate(end - before)
    return int(end[-1]) if end is not None and len(end) else 0


def _baseline_pipelined(cfg, wl, st, c):
    ev, _ = _baseline(cfg, wl, st, c)
    qk, sm, pv = _baseline_phases(cfg, st)
    # The pipeline drains at the end of each KV head's tiles and the buffer is reloaded, as for fusioncim.
    cycles = sum(pipelined_cycles([qk[seg], sm[seg], pv[seg]]) for seg in st.segments)
    return ev, cycles + wl.tokens * len(st.segments)


def _no_fusion(cfg, wl, st, c):
    ev = events_from_counters(cfg, c)
    R = cfg.rows
    ev["sp_write_bits"] = c.keys * R * (cfg.score_bits + cfg.p_bits)
    ev["sp_read_bits"] = c.keys * R * cfg.score_bits + c.v_reads * R * cfg.p_bits
    # Stages one after another: load, all keys through the IP-CIM, all through
    # the softmax, the kept ones through the OP-CIM; the division still overlaps.
    keep = 1 - c.skipped_keys / max(c.keys, 1)
    spans = R + 1 + st.n * (cfg.ip_cycles_per_key + cfg.softmax_groups) \
        + np.ceil(st.n * keep * cfg.op_cycles_per_key).astype(np.int64) + schedule.softmax_latency(cfg) + len(schedule.TILE_HANDOFFS)
    return ev, _cycles(cfg, st, spans, wl.tokens)


def _no_qo_stationary(cfg, wl, st, c):
    d, R, b = cfg.head_dim, cfg.rows, cfg.data_bits
    qpos = query_positions(wl.queries, wl.tokens)
    kblocks = -(-wl.tokens // R)
    # Query-block pairs: each query meets every key block up to its position.
    per_query = qpos // R + 1
    qb = wl.heads * int(per_query.sum())
    ev = events_from_counters(cfg, c)
    state_bits = d * cfg.acc_width + cfg.x_bits + cfg.sum_width
    ev.update({
        "ip_bitplane": qb * R * d * b, "ip_row_add": qb * R * cfg.ip_cycles_per_key,
        "op_bitplane": qb * R * d * cfg.p_bits, "op_acc_add": qb * R * d * cfg.op_cycles_per_key,
        "sm_convert": qb * R, "sm_compare": qb * R,
        "kv_read_bits": wl.kv_heads * kblocks * R * 2 * d * b,
        "cim_write_bits": wl.kv_heads * kblocks * R * 2 * d * b,
        "qo_read_bits": qb * (d * b + state_bits),
        "qo_write_bits": qb * state_bits + c.cim_writes * d * cfg.out_bits,
    })
    # Per KV head and key block: write the block (rows cycles), then the group's queries stream.
    group = wl.heads // wl.kv_heads
    # The final divisions overlap the next blocks (not counted).
    cycles = wl.kv_heads * (kblocks * R + group * int(per_query.sum()) * cfg.ip_cycles_per_key) \
        + wl.tokens * wl.kv_heads
    return ev, cycles


def variant_events(variant, cfg, wl, counters, counters_no_pattern, st=None, buffers=None):
    """``(events, cycles)`` of ``variant`` for ``wl``, given the fusioncim engine's counters with and without
    the pattern-aware softmax. ``events["dram_bits"]`` is the off-chip traffic with the on-chip buffers of
    ``buffers`` (:class:`Buffers`; default: every working set fits, :func:`traffic`)."""
    st = st or structure(cfg, wl)
    c = counters
    if variant == "fusioncim":
        ev, cycles = events_from_counters(cfg, c), c.cycles + wl.tokens * len(st.segments)
    elif variant == "no_pattern":
        ev, cycles = (events_from_counters(no_pattern_config(cfg), counters_no_pattern),
                      counters_no_pattern.cycles + wl.tokens * len(st.segments))
    elif variant == "baseline":
        ev, cycles = _baseline(cfg, wl, st, c)
    elif variant == "baseline_pipelined":
        ev, cycles = _baseline_pipelined(cfg, wl, st, c)
    elif variant == "no_fusion":
        ev, cycles = _no_fusion(cfg, wl, st, c)
    elif variant == "no_qo_stationary":
        ev, cycles = _no_qo_stationary(cfg, wl, st, c)
    else:
        raise InputError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    ev["dram_bits"] = sum(traffic(variant, cfg, wl, st, c, buffers)["offchip"].values())
    return ev, cycles


# -- on-chip capacities and off-chip traffic -----------------------------------------

ONCHIP_EVENTS = ("kv_read_bits", "kv_write_bits", "sp_read_bits", "sp_write_bits", "qo_read_bits", "qo_write_bits",
                 "cim_write_bits")
"""The events that move bits to and from on-chip SRAM and the CIM arrays: the on-chip traffic."""


@dataclass(frozen=True)
class Buffers:
    """On-chip capacities every dataflow is held to (None: the working set always fits).

    ``kv_keys``: keys the KV buffer holds (None: the config's ``kv_keys``);
    ``sp_bytes``: the S/P buffer of the dataflows that keep scores and
    probabilities (baseline, no_fusion), per Q tile; ``qo_bytes``: the buffer
    of partial O, running max and sum (baseline's partial O per tile;
    no_qo_stationary's state of every query of a KV head). A working set that
    does not fit is written to DRAM and read back (the buffer stages it: its
    on-chip accesses stay as they are), per tile.
    """
    kv_keys: int | None = None
    sp_bytes: int | None = None
    qo_bytes: int | None = None

    def __post_init__(self):
        for f in ("kv_keys", "sp_bytes", "qo_bytes"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"buffer {f} must be a positive integer or None, not {v!r}")


def _spills(bits, capacity_bytes):
    """Per tile: its working set of ``bits`` does not fit a buffer of ``capacity_bytes`` (None: always fits)."""
    bits = np.asarray(bits)
    return np.zeros(bits.shape, bool) if capacity_bytes is None else bits > 8 * capacity_bytes


def traffic(variant, cfg, wl, st, c, buffers=None):
    """Off-chip traffic (bits, by what moves) and on-chip capacities of ``variant`` for ``wl``.

    Every dataflow fetches K and V once per KV head when the KV buffer holds
    the sequence, else each tile's keys again per tile (no_qo_stationary, K/V
    stationary, loads each key block once either way); reads Q and writes O
    once; and spills a per-tile S/P or Q/O working set that does not fit its
    buffer (written and read back). Returns ``{"offchip": {part: bits}}``.
    """
    b = buffers or Buffers()
    d, R, bits = cfg.head_dim, cfg.rows, cfg.data_bits
    kv_row = 2 * d * bits
    kv_cap = b.kv_keys if b.kv_keys is not None else cfg.kv_keys
    rows_total = int(st.r.sum())
    off = {"q_o": rows_total * d * (bits + cfg.out_bits)}
    if variant == "no_qo_stationary":
        off["kv"] = wl.kv_heads * wl.tokens * kv_row
        qpos = query_positions(wl.queries, wl.tokens)
        group = wl.heads // wl.kv_heads
        state = d * cfg.acc_width + cfg.x_bits + cfg.sum_width
        qb = wl.heads * int((qpos // R + 1).sum())            # query-block meetings
        # The queries of one KV head's group, with their state, must stay on chip between key blocks.
        off["qo_spill"] = qb * (d * bits + 2 * state) if _spills(group * wl.queries * (d * bits + state), b.qo_bytes) else 0
        return {"offchip": off}
    if wl.tokens <= kv_cap:
        off["kv"] = len(st.segments) * wl.tokens * kv_row
    else:
        off["kv"] = st.keys * kv_row                             # each tile streams its keys from DRAM
    if variant in BASELINES:
        spill = _spills(st.live * (cfg.score_bits + 32 + cfg.p_bits), b.sp_bytes)
        # Written (S, P as float32, p) and read back (S twice, P float32, p) when it does not fit.
        off["sp_spill"] = int((st.live[spill] * (3 * cfg.score_bits + 64 + 2 * cfg.p_bits)).sum())
        blocks = -(-st.n // R)
        o_ws = st.r * d * cfg.acc_width
        spill_o = _spills(o_ws, b.qo_bytes)
        off["qo_spill"] = int((2 * blocks[spill_o] * o_ws[spill_o]).sum())
    elif variant == "no_fusion":
        spill = _spills(st.n * R * (cfg.score_bits + cfg.p_bits), b.sp_bytes)
        keep = c.v_reads / max(c.keys, 1)
        off["sp_spill"] = int(round(float((st.n[spill] * R * (2 * cfg.score_bits + cfg.p_bits
                                                               + keep * cfg.p_bits)).sum())))
    return {"offchip": off}


def sizes_for(cfg, wl, buffers=None):
    """Memory sizes (bytes) that set per-access energies: the buffers' capacities where
    :class:`Buffers` bounds them, else what the workload needs (the S/P buffer a whole tile's
    scores, the Q/O buffer 1 MiB)."""
    b = buffers or Buffers()
    keys = wl.tokens if b.kv_keys is None else min(wl.tokens, b.kv_keys)
    return energy_mod.Sizes(kv_buffer=kv_buffer_bits(keys, wl.head_dim, cfg.data_bits, cfg.kv_scale_bits) // 8,
                            sp_buffer=b.sp_bytes or cfg.rows * wl.tokens * 8, qo_buffer=b.qo_bytes or 1 << 20,
                            cim_array=cfg.rows * wl.head_dim * cfg.data_bits // 8)


def ops(st, cfg):
    """Operations of the workload: 2 per multiply-accumulate of QK^T and of PV over the live (query, key) pairs."""
    return 2 * 2 * int(st.live.sum()) * cfg.head_dim
