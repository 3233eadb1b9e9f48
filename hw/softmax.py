"""Pattern-aware online softmax unit: per key, rows of scores in; p, rescale shifts and a skip flag out.

The numbers are those of ``fusioncim.golden.softmax`` (docs/numerics.md
sections 3 to 5): log-domain score ``x`` from the per-row score constant, a
whole-unit running max, fine/coarse LUT exponent with a rounding shift, skip
threshold, lazy threshold, and the running sum ``l = (l >> shift) + p``. The
LUT contents come from ``fusioncim.lut``.

Pipeline (``fusioncim.schedule.SOFTMAX_STAGES``): accept, log-domain
conversion, running max (all rows in parallel, one key a cycle), then the exponent and sum stage with ``softmax_lanes``
lanes, which spends ``ceil(rows / lanes)`` cycles on a key. The stages are
elastic: each takes the previous stage's key when it is empty or its own key
moves on, so a key waits in the early stages while the exponent stage works
through its groups, and a stalled output holds everything without loss.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from ..counters import COUNTER_BITS, SOFTMAX_COUNTERS
from ..lut import luts
from ..schedule import SOFTMAX_STAGES, softmax_latency
from .common import Block

__all__ = ["Softmax", "row_wr_layout", "s_in_layout", "p_out_layout", "sums_layout"]


def row_wr_layout(c: EngineConfig):
    """Set-up of one row slot for a tile: ``{row, c_mant, c_shift, q_pos, active, causal}``."""
    return data.StructLayout({
        "row": unsigned(c.row_bits), "c_mant": unsigned(c.const_bits), "c_shift": unsigned(c.c_shift_bits),
        "q_pos": unsigned(c.pos_bits), "active": unsigned(1), "causal": unsigned(1)})


def s_in_layout(c: EngineConfig):
    """One key's scores and position: ``{scores[rows], key_pos}``."""
    return data.StructLayout({"scores": data.ArrayLayout(signed(c.score_bits), c.rows), "key_pos": unsigned(c.pos_bits)})


def sums_layout(c: EngineConfig):
    """The running sums l of every row."""
    return data.ArrayLayout(unsigned(c.sum_width), c.rows)


def p_out_layout(c: EngineConfig):
    """One key's probabilities: ``{p[rows], shift[rows], skip, key_pos}``."""
    return data.StructLayout({
        "p": data.ArrayLayout(unsigned(c.p_bits), c.rows), "shift": data.ArrayLayout(unsigned(c.shift_bits), c.rows),
        "skip": unsigned(1), "key_pos": unsigned(c.pos_bits)})


class Softmax(Block):
    """Online LUT softmax for one Q tile of ``rows`` rows.

    Throughput: one key every ``cycles_per_key = ceil(rows / lanes)`` cycles
    (the config guarantees that this keeps up with the IP-CIM). Latency: a key
    accepted in cycle t leaves on ``p_out`` from cycle ``t + latency``
    (one cycle per stage of ``schedule.SOFTMAX_STAGES``, then ``cycles_per_key``).

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    row_wr : In(stream)
        ``{row, c_mant, c_shift, q_pos, active, causal}``: sets up one row for a
        new tile and clears its running max and sum. Accepted only while no key
        is in the first three stages.
    s_in : In(stream)
        ``{scores[rows], key_pos}``: the IP-CIM's scores of one key and its position.
    p_out : Out(stream)
        ``{p[rows], shift[rows], skip, key_pos}``: probabilities, the rescale
        shift to apply to O and l before adding p (0: no rescale), and the
        all-rows-zero flag (only with ``key_skip``).
    l : Out(ArrayLayout(unsigned(sum_width), rows))
        The running sums, for the final normalisation (done in the OP-CIM's
        normaliser, hw/op_cim.py).
    active : Out(1)
        The exponent stage works on a group of rows this cycle: the engine's
        softmax busy counter (``cycles_per_key`` cycles per key).
    keys, skipped_keys, fine_lookups, coarse_lookups, skipped_entries, masked_entries, rescales : Out(40)
        Activity counters since reset (``fusioncim.counters.SOFTMAX_COUNTERS``).
    """

    def ports(self, c: EngineConfig):
        ports = {
            "row_wr": In(stream.Signature(row_wr_layout(c))),
            "s_in": In(stream.Signature(s_in_layout(c))),
            "p_out": Out(stream.Signature(p_out_layout(c))),
            "l": Out(sums_layout(c)),
            "active": Out(1),
        }
        ports.update({name: Out(COUNTER_BITS) for name in SOFTMAX_COUNTERS})
        return ports

    @property
    def latency(self):
        """Cycles from a key's acceptance on ``s_in`` to its result being valid on ``p_out``."""
        return softmax_latency(self._cfg)

    @property
    def cycles_per_key(self):
        """Cycles between accepted keys at full rate: ``ceil(rows / lanes)``."""
        return self._cfg.softmax_groups

    def _exponent(self, m, ln, d, live, fine_rom, coarse_rom, dw):
        """One exponent lane: p and the (fine, coarse, skipped, masked) flags for distance ``d``."""
        c = self._cfg
        F = c.log_frac_bits
        n = Signal(signed(dw - F + 1), name=f"n{ln}")
        f = Signal(F, name=f"f{ln}")
        m.d.comb += [n.eq(d >> F), f.eq(d[:F])]
        use_coarse = Signal(name=f"coarse{ln}")
        m.d.comb += use_coarse.eq((d >= (c.fine_window << F)) if c.tiers else 0)
        base = Signal(c.prob_bits, name=f"base{ln}")
        fine_idx = f[F - c.fine_lut_bits:] if c.fine_lut_bits else Const(0, 1)
        coarse_idx = f[F - c.coarse_lut_bits:] if c.coarse_lut_bits else Const(0, 1)
        # Asynchronous ROM read ports: emitted as continuous assignments, which
        # every simulator evaluates at time 0 (a constant case table in an
        # always block stays X in Icarus until its index first changes).
        fine_rd = fine_rom.read_port(domain="comb")
        coarse_rd = coarse_rom.read_port(domain="comb")
        m.d.comb += [fine_rd.addr.eq(fine_idx), coarse_rd.addr.eq(coarse_idx)]
        m.d.comb += base.eq(Mux(use_coarse, coarse_rd.data, fine_rd.data))
        # Right shift with round-half-up, saturating at prob_bits + 1 (docs/numerics.md section 4).
        rs = Signal(range(c.prob_bits + 2), name=f"rs{ln}")
        m.d.comb += rs.eq(Mux(n < 0, 0, Mux(n > c.prob_bits + 1, c.prob_bits + 1, n)))
        right = Signal(c.prob_bits + 1, name=f"right{ln}")
        m.d.comb += right.eq((base + ((Const(1, c.prob_bits + 2) << rs) >> 1)) >> rs)
        p = Signal(c.p_bits, name=f"p{ln}")
        if c.lazy_threshold:
            ls = Signal(range(c.lazy_threshold + 1), name=f"ls{ln}")
            m.d.comb += ls.eq(Mux(-n > c.lazy_threshold, c.lazy_threshold, -n))
            m.d.comb += p.eq(Mux(n < 0, base << ls, right))
        else:
            m.d.comb += p.eq(right)
        skip = (d >= (c.skip_threshold << F)) if c.skip_threshold is not None else Const(0, 1)
        p_final = Signal(c.p_bits, name=f"p_final{ln}")
        m.d.comb += p_final.eq(Mux(live & ~skip, p, 0))
        return p_final, (live & ~skip & ~use_coarse, live & ~skip & use_coarse, live & skip, ~live)

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        rows = _RowState(c)
        m.d.comb += [self.l[r].eq(rows.lsum[r]) for r in range(c.rows)]
        st = _Pipeline(c)
        # Each stage takes the previous stage's key when it is empty or its
        # own key moves on (an elastic pipeline), so a key can wait in the
        # early stages while the exponent stage works through its groups.
        out_free = ~self.p_out.valid | self.p_out.ready
        free2 = ~st.v2 | (st.last & out_free)         # stage 2 loads from stage 1
        free1 = ~st.v1 | free2
        free0 = ~st.v0 | free1
        m.d.comb += [
            # A pending row set-up goes first: keys sent after it see it.
            self.s_in.ready.eq(free0 & ~self.row_wr.valid),
            self.row_wr.ready.eq(~(st.v0 | st.v1 | st.v2)),
        ]
        self._row_setup(m, rows)
        self._accept(m, rows, st, free0)
        self._log2(m, rows, st, free1)
        self._running_max(m, rows, st, free2)
        commit = st.v2 & (~st.last | out_free)
        m.d.comb += self.active.eq(commit)
        lane_p, tiers = self._exponent_stage(m, st)
        p_row = self._sum_and_stage(m, rows, st, lane_p, commit)
        all_zero = Signal()
        m.d.comb += all_zero.eq(Cat(*[p != 0 for p in p_row]) == 0)
        skip = all_zero if c.key_skip else 0
        with m.If(self.p_out.valid & self.p_out.ready):
            m.d.sync += self.p_out.valid.eq(0)          # taken; refilled below if a key is ready
        with m.If(out_free & (~st.v2 | st.last)):      # the output register loads from stage 3
            m.d.sync += [self.p_out.valid.eq(st.v2), self.p_out.payload.key_pos.eq(st.kpos2),
                         self.p_out.payload.skip.eq(skip)]
            m.d.sync += [self.p_out.payload.p[r].eq(p_row[r]) for r in range(c.rows)]
            m.d.sync += [self.p_out.payload.shift[r].eq(st.shift2[r]) for r in range(c.rows)]
        self._count(m, st, tiers, commit, skip)
        return m

    def _row_setup(self, m, rows):
        # Row set-up: parameters, and a fresh running max and sum.
        wr = self.row_wr.payload
        with m.If(self.row_wr.valid & self.row_wr.ready):
            for r in range(self._cfg.rows):
                with m.If(wr.row == r):
                    m.d.sync += [rows.c_mant[r].eq(wr.c_mant), rows.c_shift[r].eq(wr.c_shift),
                                 rows.q_pos[r].eq(wr.q_pos), rows.active[r].eq(wr.active),
                                 rows.causal[r].eq(wr.causal), rows.seen[r].eq(0), rows.lsum[r].eq(0),
                                 rows.run_max[r].eq(0)]

    def _accept(self, m, rows, st, free0):
        # Stage "accept": the scores, and which rows see this key.
        kin = self.s_in.payload.key_pos
        live_in = Cat(*[rows.active[r] & (~rows.causal[r] | (kin <= rows.q_pos[r])) for r in range(self._cfg.rows)])
        with m.If(free0):
            m.d.sync += [st.v0.eq(self.s_in.valid & self.s_in.ready), st.kpos0.eq(kin), st.live0.eq(live_in)]
            m.d.sync += [st.s0[r].eq(self.s_in.payload.scores[r]) for r in range(self._cfg.rows)]

    def _log2(self, m, rows, st, free1):
        # Stage "log2": x = sat(round_half_up(s * c_mant / 2**c_shift)).
        c = self._cfg
        prod_width = c.score_bits + c.const_bits + 1
        with m.If(free1):
            m.d.sync += [st.v1.eq(st.v0), st.kpos1.eq(st.kpos0), st.live1.eq(st.live0)]
            for r in range(c.rows):
                prod = Signal(signed(prod_width), name=f"prod{r}")
                half = Signal(prod_width, name=f"half{r}")
                m.d.comb += [prod.eq(st.s0[r] * rows.c_mant[r]),
                             half.eq((Const(1, prod_width) << rows.c_shift[r])[:prod_width] >> 1)]
                rounded = Signal(signed(prod_width + 1), name=f"rounded{r}")
                m.d.comb += rounded.eq((prod + half) >> rows.c_shift[r])
                m.d.sync += st.x1[r].eq(Mux(rounded > c.x_max, c.x_max, Mux(rounded < c.x_min, c.x_min, rounded)))

    def _running_max(self, m, rows, st, free2):
        # Stage "running max": state read and written here, one key a cycle, in order.
        c = self._cfg
        F = c.log_frac_bits
        tau = c.lazy_threshold << F
        with m.If(free2):
            m.d.sync += [st.v2.eq(st.v1), st.kpos2.eq(st.kpos1), st.live2.eq(st.live1)]
            for r in range(c.rows):
                x, run_max, seen = st.x1[r], rows.run_max[r], rows.seen[r]
                ceil_x = Signal(signed(st.max_width), name=f"ceil{r}")
                m.d.comb += ceil_x.eq(((x + ((1 << F) - 1)) >> F) << F)
                grow = Signal(name=f"grow{r}")
                m.d.comb += grow.eq(st.live1[r] & (~seen | (x > run_max + tau)))
                new_m = Signal(signed(st.max_width), name=f"new_m{r}")
                m.d.comb += new_m.eq(Mux(grow, ceil_x, run_max))
                delta = Signal(st.max_width + 1, name=f"delta{r}")
                m.d.comb += delta.eq((new_m - run_max) >> F)
                rescale_now = grow & seen
                counted = rescale_now if c.rescale_on_growth_only else (st.live1[r] & seen)
                m.d.sync += [
                    st.d2[r].eq(new_m - x),
                    st.shift2[r].eq(Mux(rescale_now, Mux(delta > c.acc_width, c.acc_width, delta), 0)),
                    st.resc2[r].eq(counted),
                ]
                with m.If(st.v1):
                    m.d.sync += [run_max.eq(new_m), seen.eq(seen | st.live1[r])]

    def _exponent_stage(self, m, st):
        """The exponent lanes: ``lanes`` rows a cycle, ``groups`` cycles a key. Returns (p, tier flags) per lane."""
        c = self._cfg
        fine, coarse = luts(c)
        m.submodules.fine_lut = fine_rom = Memory(shape=unsigned(c.prob_bits), depth=len(fine),
                                                  init=[int(vv) for vv in fine])
        m.submodules.coarse_lut = coarse_rom = Memory(shape=unsigned(c.prob_bits), depth=len(coarse),
                                                      init=[int(vv) for vv in coarse])
        lanes, groups = c.lanes, c.softmax_groups
        if groups == 1:
            lane_d = st.d2
            lane_live = [st.live2[r] for r in range(c.rows)]
            lane_ok = [Const(1, 1)] * lanes
        else:
            # Pad to every value the index can take, so each mux case is covered.
            span = 1 << (st.group * lanes + (lanes - 1)).shape().width
            pad = span - c.rows
            d_arr = Array(st.d2 + [Const(0, signed(st.dist_width))] * pad)
            live_arr = Array([st.live2[r] for r in range(c.rows)] + [Const(0, 1)] * pad)
            lane_d, lane_live, lane_ok = [], [], []
            for ln in range(lanes):
                idx = st.group * lanes + ln
                ld = Signal(signed(st.dist_width), name=f"lane_d{ln}")
                lv = Signal(name=f"lane_live{ln}")
                m.d.comb += [ld.eq(d_arr[idx]), lv.eq(live_arr[idx])]
                lane_d.append(ld)
                lane_live.append(lv)
                lane_ok.append(idx < c.rows)
        lane_p, tiers = [], []
        for ln in range(lanes):
            p, flags = self._exponent(m, ln, lane_d[ln], lane_live[ln], fine_rom, coarse_rom, st.dist_width)
            lane_p.append(p)
            tiers.append(tuple(flag & lane_ok[ln] for flag in flags))
        return lane_p, tiers

    def _sum_and_stage(self, m, rows, st, lane_p, commit):
        # Running sums; rows of earlier groups wait in p_stage, the last group goes straight out.
        c = self._cfg
        lanes, groups = c.lanes, c.softmax_groups
        p_stage = [Signal(c.p_bits, name=f"p_stage{r}") for r in range(c.rows)]
        p_row = [lane_p[r % lanes] if r // lanes == groups - 1 else p_stage[r] for r in range(c.rows)]
        for r in range(c.rows):
            with m.If(commit & (st.group == r // lanes)):
                m.d.sync += [p_stage[r].eq(lane_p[r % lanes]),
                             rows.lsum[r].eq((rows.lsum[r] >> st.shift2[r]) + lane_p[r % lanes])]
        with m.If(commit):
            m.d.sync += st.group.eq(Mux(st.last, 0, st.group + 1))
        return p_row

    def _count(self, m, st, tiers, commit, skip):
        def popcount(bits):
            return sum(b.as_unsigned() for b in bits)
        with m.If(commit):
            m.d.sync += [
                self.fine_lookups.eq(self.fine_lookups + popcount(t[0] for t in tiers)),
                self.coarse_lookups.eq(self.coarse_lookups + popcount(t[1] for t in tiers)),
                self.skipped_entries.eq(self.skipped_entries + popcount(t[2] for t in tiers)),
                self.masked_entries.eq(self.masked_entries + popcount(t[3] for t in tiers)),
            ]
        with m.If(commit & st.last):
            m.d.sync += [
                self.keys.eq(self.keys + 1),
                self.skipped_keys.eq(self.skipped_keys + skip),
                self.rescales.eq(self.rescales + popcount(st.resc2[r] for r in range(self._cfg.rows))),
            ]


class _RowState:
    """Per-row tile parameters and running state (max, seen, sum)."""

    def __init__(self, c):
        rows = range(c.rows)
        self.c_mant = [Signal(c.const_bits, name=f"c_mant{r}") for r in rows]
        self.c_shift = [Signal(c.c_shift_bits, name=f"c_shift{r}") for r in rows]
        self.q_pos = [Signal(c.pos_bits, name=f"q_pos{r}") for r in rows]
        self.active = [Signal(name=f"active{r}") for r in rows]
        self.causal = [Signal(name=f"causal{r}") for r in rows]
        self.run_max = [Signal(signed(c.x_bits + 2), name=f"m{r}") for r in rows]   # ceil(x) can pass x_max
        self.seen = [Signal(name=f"seen{r}") for r in rows]
        self.lsum = [Signal(c.sum_width, name=f"l{r}") for r in rows]


class _Pipeline:
    """The key's registers between stages (one set per entry of ``schedule.SOFTMAX_STAGES``), and the
    exponent stage's group counter."""

    def __init__(self, c):
        rows = range(c.rows)
        assert len(SOFTMAX_STAGES) == 3, "one register set per stage below"
        self.max_width = c.x_bits + 2            # running max
        self.dist_width = c.x_bits + 3           # distance m - x, sign included
        # Named explicitly: Amaranth infers names from local variables, not attributes.
        self.v0, self.v1, self.v2 = (Signal(name=f"v{i}") for i in range(3))
        self.kpos0, self.kpos1, self.kpos2 = (Signal(c.pos_bits, name=f"kpos{i}") for i in range(3))
        self.live0, self.live1, self.live2 = (Signal(c.rows, name=f"live{i}") for i in range(3))
        self.s0 = [Signal(signed(c.score_bits), name=f"s0_{r}") for r in rows]
        self.x1 = [Signal(signed(c.x_bits), name=f"x1_{r}") for r in rows]
        self.d2 = [Signal(signed(self.dist_width), name=f"d2_{r}") for r in rows]
        self.shift2 = [Signal(c.shift_bits, name=f"shift2_{r}") for r in rows]
        self.resc2 = Signal(c.rows, name="resc2")
        self.group = Signal(range(max(c.softmax_groups, 2)), name="group")
        self.last = self.group == c.softmax_groups - 1
