"""Pattern-aware online softmax unit: per key, rows of scores in; p, rescale shifts and a skip flag out.

The numbers are those of ``fusioncim.golden.softmax`` (docs/numerics.md
sections 3 to 5): log-domain score ``x`` from the per-row score constant, a
whole-unit running max, fine/coarse LUT exponent with a rounding shift, skip
threshold, lazy threshold, and the running sum ``l = (l >> shift) + p``. The
LUT contents come from ``fusioncim.core.lut``.

Pipeline (``fusioncim.core.schedule.SOFTMAX_STAGES``): accept, log-domain
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

from ..core.config import EngineConfig
from ..core.counters import COUNTER_BITS, SOFTMAX_COUNTERS
from ..core.lut import luts
from ..core.schedule import SOFTMAX_STAGES, softmax_latency
from .common import Block, Cell, add_cell, swap_port

__all__ = ["Softmax", "SoftmaxRow", "ExpLane", "row_wr_layout", "s_in_layout", "p_out_layout", "sums_layout"]


def row_wr_layout(c: EngineConfig):
    """Set-up of one row slot for a tile: ``{row, c_mant, c_shift, q_pos, active, causal}``."""
    return data.StructLayout({
        "row": unsigned(c.row_bits), "c_mant": unsigned(c.const_bits), "c_shift": unsigned(c.c_shift_bits),
        "q_pos": unsigned(c.pos_bits), "active": unsigned(1), "causal": unsigned(1)})


def s_in_layout(c: EngineConfig):
    """One key's scores and position: ``{scores[rows], key_pos}``, and with per-key K scales the key's
    ``k_scale`` (its exponent in the low ``k_exp_bits``, its mantissa above)."""
    scale = {"k_scale": unsigned(c.k_scale_bits)} if c.k_scale_bits else {}
    return data.StructLayout({"scores": data.ArrayLayout(signed(c.score_bits), c.rows), "key_pos": unsigned(c.pos_bits),
                              **scale})


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
        is in the first three stages. With ``q_double_buffer`` it sets up the
        row's shadow and is always accepted; ``swap`` starts the tile.
    swap : In(1)
        With ``q_double_buffer`` only: every row takes its shadow set-up and
        clears its running max and sum at this clock edge (while no key is in
        the unit).
    s_in : In(stream)
        ``{scores[rows], key_pos}``: the IP-CIM's scores of one key and its position (and with per-key K
        scales its ``k_scale``, applied in the log-domain step).
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
        Activity counters since reset (``fusioncim.core.counters.SOFTMAX_COUNTERS``).
    """

    def ports(self, c: EngineConfig):
        ports = {
            "row_wr": In(stream.Signature(row_wr_layout(c))),
            "s_in": In(stream.Signature(s_in_layout(c))),
            "p_out": Out(stream.Signature(p_out_layout(c))),
            "l": Out(sums_layout(c)),
            "active": Out(1),
            **swap_port(c, In),
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

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        cells = [add_cell(m, f"row{r}", SoftmaxRow(c), platform) for r in range(c.rows)]
        m.d.comb += [self.l[r].eq(row.lsum) for r, row in enumerate(cells)]
        st = _Pipeline(c)
        # Each stage takes the previous stage's key when it is empty or its
        # own key moves on (an elastic pipeline), so a key can wait in the
        # early stages while the exponent stage works through its groups.
        out_free = ~self.p_out.valid | self.p_out.ready
        free2 = ~st.v2 | (st.last & out_free)         # stage 2 loads from stage 1
        free1 = ~st.v1 | free2
        free0 = ~st.v0 | free1
        if c.q_double_buffer:
            # Set-ups go to the shadow: keys never wait for them.
            m.d.comb += [self.s_in.ready.eq(free0), self.row_wr.ready.eq(1)]
        else:
            m.d.comb += [
                # A pending row set-up goes first: keys sent after it see it.
                self.s_in.ready.eq(free0 & ~self.row_wr.valid),
                self.row_wr.ready.eq(~(st.v0 | st.v1 | st.v2)),
            ]
        setup = self.row_wr.valid & self.row_wr.ready
        for r, row in enumerate(cells):
            m.d.comb += [row.setup.eq(setup & (self.row_wr.payload.row == r)), row.wr.eq(self.row_wr.payload),
                         row.score.eq(self.s_in.payload.scores[r]), row.key_pos.eq(self.s_in.payload.key_pos),
                         row.free0.eq(free0), row.free1.eq(free1), row.free2.eq(free2), row.v1.eq(st.v1),
                         row.live1.eq(st.live1[r])]
            if c.k_scale_bits:
                m.d.comb += [row.k_scale.eq(self.s_in.payload.k_scale), row.k_scale0.eq(st.kscale0)]
            if c.q_double_buffer:
                m.d.comb += row.swap.eq(self.swap)
        # Stage "accept": which rows see this key; the rows' stages move with the valid bits.
        with m.If(free0):
            m.d.sync += [st.v0.eq(self.s_in.valid & self.s_in.ready), st.kpos0.eq(self.s_in.payload.key_pos),
                         st.live0.eq(Cat(*[row.live for row in cells]))]
            if c.k_scale_bits:
                m.d.sync += st.kscale0.eq(self.s_in.payload.k_scale)
        with m.If(free1):
            m.d.sync += [st.v1.eq(st.v0), st.kpos1.eq(st.kpos0), st.live1.eq(st.live0)]
        with m.If(free2):
            m.d.sync += [st.v2.eq(st.v1), st.kpos2.eq(st.kpos1), st.live2.eq(st.live1)]
        commit = st.v2 & (~st.last | out_free)
        m.d.comb += self.active.eq(commit)
        lane_p, tiers = self._exponent_stage(m, st, cells, platform)
        p_row = self._sum_and_stage(m, cells, st, lane_p, commit)
        all_zero = Signal()
        m.d.comb += all_zero.eq(Cat(*[p != 0 for p in p_row]) == 0)
        skip = all_zero if c.key_skip else 0
        with m.If(self.p_out.valid & self.p_out.ready):
            m.d.sync += self.p_out.valid.eq(0)          # taken; refilled below if a key is ready
        with m.If(out_free & (~st.v2 | st.last)):      # the output register loads from stage 3
            m.d.sync += [self.p_out.valid.eq(st.v2), self.p_out.payload.key_pos.eq(st.kpos2),
                         self.p_out.payload.skip.eq(skip)]
            m.d.sync += [self.p_out.payload.p[r].eq(p_row[r]) for r in range(c.rows)]
            m.d.sync += [self.p_out.payload.shift[r].eq(row.shift2) for r, row in enumerate(cells)]
        self._count(m, st, cells, tiers, commit, skip)
        return m

    def _exponent_stage(self, m, st, cells, platform):
        """The exponent lanes: ``lanes`` rows a cycle, ``groups`` cycles a key. Returns (p, tier flags) per lane."""
        c = self._cfg
        lanes, groups = c.lanes, c.softmax_groups
        dist = signed(_dist_width(c))
        if groups == 1:
            lane_d = [row.d2 for row in cells]
            lane_live = [st.live2[r] for r in range(c.rows)]
            lane_ok = [Const(1, 1)] * lanes
        else:
            # Pad to every value the index can take, so each mux case is covered.
            span = 1 << (st.group * lanes + (lanes - 1)).shape().width
            pad = span - c.rows
            d_arr = Array([row.d2 for row in cells] + [Const(0, dist)] * pad)
            live_arr = Array([st.live2[r] for r in range(c.rows)] + [Const(0, 1)] * pad)
            lane_d, lane_live, lane_ok = [], [], []
            for ln in range(lanes):
                idx = st.group * lanes + ln
                ld = Signal(dist, name=f"lane_d{ln}")
                lv = Signal(name=f"lane_live{ln}")
                m.d.comb += [ld.eq(d_arr[idx]), lv.eq(live_arr[idx])]
                lane_d.append(ld)
                lane_live.append(lv)
                lane_ok.append(idx < c.rows)
        lane_p, tiers = [], []
        for ln in range(lanes):
            lane = add_cell(m, f"lane{ln}", ExpLane(c), platform)
            m.d.comb += [lane.d.eq(lane_d[ln]), lane.live.eq(lane_live[ln])]
            lane_p.append(lane.p)
            flags = (lane.fine, lane.coarse, lane.skipped, lane.masked)
            tiers.append(tuple(flag & lane_ok[ln] for flag in flags))
        return lane_p, tiers

    def _sum_and_stage(self, m, cells, st, lane_p, commit):
        # Running sums (in the rows); rows of earlier groups wait in p_stage, the last group goes straight out.
        c = self._cfg
        lanes, groups = c.lanes, c.softmax_groups
        p_row = []
        for r, row in enumerate(cells):
            summing = commit & (st.group == r // lanes)
            m.d.comb += [row.sum_en.eq(summing), row.p.eq(lane_p[r % lanes])]
            if r // lanes == groups - 1:
                p_row.append(lane_p[r % lanes])
            else:
                p_stage = Signal(c.p_bits, name=f"p_stage{r}")
                with m.If(summing):
                    m.d.sync += p_stage.eq(lane_p[r % lanes])
                p_row.append(p_stage)
        with m.If(commit):
            m.d.sync += st.group.eq(Mux(st.last, 0, st.group + 1))
        return p_row

    def _count(self, m, st, cells, tiers, commit, skip):
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
                self.rescales.eq(self.rescales + popcount(row.resc2 for row in cells)),
            ]


def _max_width(c):
    return c.x_bits + 2            # the running max: ceil(x) can pass x_max


def _dist_width(c):
    return c.x_bits + 3            # the distance m - x, sign included


class SoftmaxRow(Cell):
    """One row of the softmax unit: its tile parameters, running max and sum, and its slice of the
    accept, log2 and running-max stages.

    Members
    -------
    setup : In(1), wr : In(row_wr_layout)
        Set the row up for a new tile (parameters; max, seen and sum cleared); with
        ``q_double_buffer`` the parameters go to the shadow.
    swap : In(1)
        With ``q_double_buffer`` only: take the shadow parameters; max, seen and sum cleared.
    score : In(signed(score_bits)), key_pos : In(pos_bits)
        The key on ``s_in``.
    k_scale, k_scale0 : In(k_scale_bits)
        With per-key K scales only: the scale of the key on ``s_in`` and of the key in the accept stage
        (exponent low, mantissa above).
    free0, free1, free2 : In(1)
        Stages accept / log2 / running max take the previous stage's key.
    v1 : In(1), live1 : In(1)
        A key is in the log2 stage; it is live in this row.
    sum_en : In(1), p : In(p_bits)
        Add this row's p to the sum (after the key's rescale).
    live : Out(1)
        The key on ``s_in`` is live in this row (active and, if causal, not after the row's position).
    d2 : Out(signed), shift2 : Out(shift_bits), resc2 : Out(1)
        The running-max stage's results: distance ``m - x``, rescale shift, and whether the row counts a rescale.
    lsum : Out(sum_width)
        The running sum l.
    """

    def ports(self, c: EngineConfig):
        return {
            "setup": In(1),
            "wr": In(row_wr_layout(c)),
            "score": In(signed(c.score_bits)),
            "key_pos": In(unsigned(c.pos_bits)),
            "free0": In(1),
            "free1": In(1),
            "free2": In(1),
            "v1": In(1),
            "live1": In(1),
            "sum_en": In(1),
            "p": In(unsigned(c.p_bits)),
            "live": Out(1),
            "d2": Out(signed(_dist_width(c))),
            "shift2": Out(unsigned(c.shift_bits)),
            "resc2": Out(1),
            "lsum": Out(unsigned(c.sum_width)),
            **swap_port(c, In),
            **({"k_scale": In(unsigned(c.k_scale_bits)), "k_scale0": In(unsigned(c.k_scale_bits))}
               if c.k_scale_bits else {}),
        }

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        c_mant, c_shift = Signal(c.const_bits), Signal(c.c_shift_bits)
        q_pos, active, causal = Signal(c.pos_bits), Signal(), Signal()
        run_max = Signal(signed(_max_width(c)))
        seen = Signal()
        # Row set-up: parameters, and a fresh running max and sum.
        params = [c_mant, c_shift, q_pos, active, causal]
        wr = [self.wr.c_mant, self.wr.c_shift, self.wr.q_pos, self.wr.active, self.wr.causal]
        if c.q_double_buffer:
            shadow = [Signal.like(p, name=f"{p.name}_shadow") for p in params]
            with m.If(self.setup):
                m.d.sync += [sh.eq(w) for sh, w in zip(shadow, wr)]
            with m.If(self.swap):
                m.d.sync += [p.eq(sh) for p, sh in zip(params, shadow)]
                m.d.sync += [seen.eq(0), self.lsum.eq(0), run_max.eq(0)]
        else:
            with m.If(self.setup):
                m.d.sync += [p.eq(w) for p, w in zip(params, wr)]
                m.d.sync += [seen.eq(0), self.lsum.eq(0), run_max.eq(0)]
        # Stage "accept": the score (times the key's K mantissa factor), and whether the row sees this key.
        m.d.comb += self.live.eq(active & (~causal | (self.key_pos <= q_pos)))
        s0 = Signal(signed(c.score_bits + (c.k_mant_bits + 1 if c.k_mant_bits else 0)))
        with m.If(self.free0):
            if c.k_mant_bits:
                factor = Signal(c.k_mant_bits + 1)
                m.d.comb += factor.eq((1 << c.k_mant_bits) + self.k_scale[c.k_exp_bits:])
                m.d.sync += s0.eq(self.score * factor)
            else:
                m.d.sync += s0.eq(self.score)
        # Stage "log2": x = sat(round_half_up(s * (2^kmb + mant) * c_mant / 2**(c_shift - exp))), which is
        # docs/numerics.md section 3's x: c_shift >= the key's exponent (k_exp_max) is part of the contract.
        prod_width = len(s0) + c.const_bits + 1
        x1 = Signal(signed(c.x_bits))
        with m.If(self.free1):
            prod = Signal(signed(prod_width))
            half = Signal(prod_width)
            if c.k_exp_bits:
                shift = Signal(c.c_shift_bits)
                m.d.comb += shift.eq(c_shift - self.k_scale0[:c.k_exp_bits])
            else:
                shift = c_shift
            m.d.comb += [prod.eq(s0 * c_mant), half.eq((Const(1, prod_width) << shift)[:prod_width] >> 1)]
            rounded = Signal(signed(prod_width + 1))
            m.d.comb += rounded.eq((prod + half) >> shift)
            m.d.sync += x1.eq(Mux(rounded > c.x_max, c.x_max, Mux(rounded < c.x_min, c.x_min, rounded)))
        # Stage "running max": state read and written here, one key a cycle, in order.
        F = c.log_frac_bits
        tau = c.lazy_threshold << F
        with m.If(self.free2):
            ceil_x = Signal(signed(_max_width(c)))
            m.d.comb += ceil_x.eq(((x1 + ((1 << F) - 1)) >> F) << F)
            grow = Signal()
            m.d.comb += grow.eq(self.live1 & (~seen | (x1 > run_max + tau)))
            new_m = Signal(signed(_max_width(c)))
            m.d.comb += new_m.eq(Mux(grow, ceil_x, run_max))
            delta = Signal(_max_width(c) + 1)
            m.d.comb += delta.eq((new_m - run_max) >> F)
            rescale_now = grow & seen
            counted = rescale_now if c.rescale_on_growth_only else (self.live1 & seen)
            m.d.sync += [
                self.d2.eq(new_m - x1),
                self.shift2.eq(Mux(rescale_now, Mux(delta > c.acc_width, c.acc_width, delta), 0)),
                self.resc2.eq(counted),
            ]
            with m.If(self.v1):
                m.d.sync += [run_max.eq(new_m), seen.eq(seen | self.live1)]
        # The running sum: l = (l >> shift) + p.
        with m.If(self.sum_en):
            m.d.sync += self.lsum.eq((self.lsum >> self.shift2) + self.p)
        return m


class ExpLane(Cell):
    """One exponent lane: ``p = 2^-(d / 2^F)`` from the fine or coarse LUT with a rounding shift,
    0 past the skip threshold or for a masked row; combinational.

    Members
    -------
    d : In(signed), live : In(1)
        The distance ``m - x`` of the row in this lane, and whether the key is live in it.
    p : Out(p_bits)
    fine, coarse, skipped, masked : Out(1)
        Which way the entry went (the softmax unit's lookup counters).
    """

    def ports(self, c: EngineConfig):
        return {"d": In(signed(_dist_width(c))), "live": In(1), "p": Out(unsigned(c.p_bits)),
                "fine": Out(1), "coarse": Out(1), "skipped": Out(1), "masked": Out(1)}

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        d, live = self.d, self.live
        fine, coarse = luts(c)
        m.submodules.fine_lut = fine_rom = Memory(shape=unsigned(c.prob_bits), depth=len(fine),
                                                  init=[int(vv) for vv in fine])
        m.submodules.coarse_lut = coarse_rom = Memory(shape=unsigned(c.prob_bits), depth=len(coarse),
                                                      init=[int(vv) for vv in coarse])
        F = c.log_frac_bits
        n = Signal(signed(_dist_width(c) - F + 1))
        f = Signal(F)
        m.d.comb += [n.eq(d >> F), f.eq(d[:F])]
        use_coarse = Signal()
        m.d.comb += use_coarse.eq((d >= (c.fine_window << F)) if c.tiers else 0)
        base = Signal(c.prob_bits)
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
        rs = Signal(range(c.prob_bits + 2))
        m.d.comb += rs.eq(Mux(n < 0, 0, Mux(n > c.prob_bits + 1, c.prob_bits + 1, n)))
        right = Signal(c.prob_bits + 1)
        m.d.comb += right.eq((base + ((Const(1, c.prob_bits + 2) << rs) >> 1)) >> rs)
        p = Signal(c.p_bits)
        if c.lazy_threshold:
            ls = Signal(range(c.lazy_threshold + 1))
            m.d.comb += ls.eq(Mux(-n > c.lazy_threshold, c.lazy_threshold, -n))
            m.d.comb += p.eq(Mux(n < 0, base << ls, right))
        else:
            m.d.comb += p.eq(right)
        skip = (d >= (c.skip_threshold << F)) if c.skip_threshold is not None else Const(0, 1)
        m.d.comb += [self.p.eq(Mux(live & ~skip, p, 0)),
                     self.fine.eq(live & ~skip & ~use_coarse), self.coarse.eq(live & ~skip & use_coarse),
                     self.skipped.eq(live & skip), self.masked.eq(~live)]
        return m


class _Pipeline:
    """The key's control registers between stages (one set per entry of ``schedule.SOFTMAX_STAGES``;
    the rows' data registers are in :class:`SoftmaxRow`), and the exponent stage's group counter."""

    def __init__(self, c):
        assert len(SOFTMAX_STAGES) == 3, "one register set per stage below"
        # Named explicitly: Amaranth infers names from local variables, not attributes.
        self.v0, self.v1, self.v2 = (Signal(name=f"v{i}") for i in range(3))
        self.kpos0, self.kpos1, self.kpos2 = (Signal(c.pos_bits, name=f"kpos{i}") for i in range(3))
        self.live0, self.live1, self.live2 = (Signal(c.rows, name=f"live{i}") for i in range(3))
        if c.k_scale_bits:                                          # with per-key K scales
            self.kscale0 = Signal(c.k_scale_bits, name="kscale0")
        self.group = Signal(range(max(c.softmax_groups, 2)), name="group")
        self.last = self.group == c.softmax_groups - 1
