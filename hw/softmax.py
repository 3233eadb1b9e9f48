"""Pattern-aware online softmax unit: per key, rows of scores in; p, rescale shifts and a skip flag out.

The numbers are those of ``fusioncim.golden.softmax`` (docs/numerics.md
sections 3 to 5): log-domain score ``x`` from the per-row score constant, a
whole-unit running max, fine/coarse LUT exponent with a rounding shift, skip
threshold, lazy threshold, and the running sum ``l = (l >> shift) + p``. The
LUT contents come from ``golden.softmax.luts``.

Pipeline: accept, log-domain conversion, running max (all rows in parallel,
one key a cycle), then the exponent and sum stage with ``softmax_lanes``
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
from .common import Block
from ..golden.softmax import luts

__all__ = ["Softmax", "COUNTERS"]

COUNTERS = ("keys", "skipped_keys", "fine_lookups", "coarse_lookups", "skipped_entries", "masked_entries",
            "rescales")
COUNTER_BITS = 40          # as the engine's: it passes these counters through


class Softmax(Block):
    """Online LUT softmax for one Q tile of ``rows`` rows.

    Throughput: one key every ``cycles_per_key = ceil(rows / lanes)`` cycles
    (the config guarantees that this keeps up with the IP-CIM). Latency: a key
    accepted in cycle t leaves on ``p_out`` from cycle ``t + latency``
    (``3 + cycles_per_key``).

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
        Activity counters since reset (golden ``engine.Counters`` semantics).
    """

    def ports(self, c: EngineConfig):
        R = c.rows
        ports = {
            "row_wr": In(stream.Signature(data.StructLayout({
                "row": unsigned(c.row_bits), "c_mant": unsigned(c.const_bits),
                "c_shift": unsigned(c.c_shift_bits), "q_pos": unsigned(c.pos_bits),
                "active": unsigned(1), "causal": unsigned(1)}))),
            "s_in": In(stream.Signature(data.StructLayout({
                "scores": data.ArrayLayout(signed(c.score_bits), R), "key_pos": unsigned(c.pos_bits)}))),
            "p_out": Out(stream.Signature(data.StructLayout({
                "p": data.ArrayLayout(unsigned(c.p_bits), R), "shift": data.ArrayLayout(unsigned(c.shift_bits), R),
                "skip": unsigned(1), "key_pos": unsigned(c.pos_bits)}))),
            "l": Out(data.ArrayLayout(unsigned(c.sum_width), R)),
            "active": Out(1),
        }
        ports.update({name: Out(COUNTER_BITS) for name in COUNTERS})
        return ports

    @property
    def latency(self):
        """Cycles from a key's acceptance on ``s_in`` to its result being valid on ``p_out``."""
        return self._cfg.softmax_latency

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
        R, F = c.rows, c.log_frac_bits
        tau = c.lazy_threshold << F
        xw = c.x_bits
        mw = xw + 2                      # running max: ceil(x) can pass x_max
        dw = xw + 3                      # distance m - x, sign included

        # -- per-row tile parameters and state ------------------------------
        c_mant = [Signal(c.const_bits, name=f"c_mant{r}") for r in range(R)]
        c_shift = [Signal(c.c_shift_bits, name=f"c_shift{r}") for r in range(R)]
        q_pos = [Signal(c.pos_bits, name=f"q_pos{r}") for r in range(R)]
        active = [Signal(name=f"active{r}") for r in range(R)]
        causal = [Signal(name=f"causal{r}") for r in range(R)]
        run_max = [Signal(signed(mw), name=f"m{r}") for r in range(R)]
        seen = [Signal(name=f"seen{r}") for r in range(R)]
        lsum = [Signal(c.sum_width, name=f"l{r}") for r in range(R)]
        m.d.comb += [self.l[r].eq(lsum[r]) for r in range(R)]

        # -- pipeline registers ------------------------------------------------
        v0, v1, v2 = Signal(), Signal(), Signal()
        s0 = [Signal(signed(c.score_bits), name=f"s0_{r}") for r in range(R)]
        live0 = Signal(R)
        kpos0, kpos1, kpos2 = Signal(c.pos_bits), Signal(c.pos_bits), Signal(c.pos_bits)
        x1 = [Signal(signed(xw), name=f"x1_{r}") for r in range(R)]
        live1, live2 = Signal(R), Signal(R)
        d2 = [Signal(signed(dw), name=f"d2_{r}") for r in range(R)]
        shift2 = [Signal(c.shift_bits, name=f"shift2_{r}") for r in range(R)]
        resc2 = Signal(R)

        # Exponent stage: `lanes` rows a cycle, G cycles a key. Each stage
        # takes the previous stage's key when it is empty or its own key moves
        # on (an elastic pipeline), so a key can wait in stages 0-1 while the
        # exponent stage works through its groups.
        L, G = c.lanes, c.softmax_groups
        g3 = Signal(range(max(G, 2)))
        last = g3 == G - 1
        out_free = ~self.p_out.valid | self.p_out.ready
        free2 = ~v2 | (last & out_free)         # stage 2 loads from stage 1
        free1 = ~v1 | free2
        free0 = ~v0 | free1
        out_load = out_free & (~v2 | last)      # the output register loads from stage 3
        commit = v2 & (~last | out_free)
        m.d.comb += self.active.eq(commit)
        m.d.comb += [
            # A pending row set-up goes first: keys sent after it see it.
            self.s_in.ready.eq(free0 & ~self.row_wr.valid),
            self.row_wr.ready.eq(~(v0 | v1 | v2)),
        ]

        # Row set-up: parameters, and a fresh running max and sum.
        wr = self.row_wr.payload
        with m.If(self.row_wr.valid & self.row_wr.ready):
            for r in range(R):
                with m.If(wr.row == r):
                    m.d.sync += [c_mant[r].eq(wr.c_mant), c_shift[r].eq(wr.c_shift), q_pos[r].eq(wr.q_pos),
                                 active[r].eq(wr.active), causal[r].eq(wr.causal), seen[r].eq(0),
                                 lsum[r].eq(0), run_max[r].eq(0)]

        # Stage 0: accept; which rows see this key.
        kin = self.s_in.payload.key_pos
        live_in = Cat(*[active[r] & (~causal[r] | (kin <= q_pos[r])) for r in range(R)])
        with m.If(free0):
            m.d.sync += [v0.eq(self.s_in.valid & self.s_in.ready), kpos0.eq(kin), live0.eq(live_in)]
            m.d.sync += [s0[r].eq(self.s_in.payload.scores[r]) for r in range(R)]

        # Stage 1: x = sat(round_half_up(s * c_mant / 2**c_shift)).
        xmin, xmax = c.x_min, c.x_max
        pw = c.score_bits + c.const_bits + 1
        with m.If(free1):
            m.d.sync += [v1.eq(v0), kpos1.eq(kpos0), live1.eq(live0)]
            for r in range(R):
                prod = Signal(signed(pw), name=f"prod{r}")
                half = Signal(pw, name=f"half{r}")
                m.d.comb += [prod.eq(s0[r] * c_mant[r]),
                             half.eq((Const(1, pw) << c_shift[r])[:pw] >> 1)]
                rounded = Signal(signed(pw + 1), name=f"rounded{r}")
                m.d.comb += rounded.eq((prod + half) >> c_shift[r])
                m.d.sync += x1[r].eq(Mux(rounded > xmax, xmax, Mux(rounded < xmin, xmin, rounded)))

        # Stage 2: running max (state read and written here, one key a cycle, in order).
        with m.If(free2):
            m.d.sync += [v2.eq(v1), kpos2.eq(kpos1), live2.eq(live1)]
            for r in range(R):
                x = x1[r]
                ceil_x = Signal(signed(mw), name=f"ceil{r}")
                m.d.comb += ceil_x.eq(((x + ((1 << F) - 1)) >> F) << F)
                grow = Signal(name=f"grow{r}")
                m.d.comb += grow.eq(live1[r] & (~seen[r] | (x > run_max[r] + tau)))
                new_m = Signal(signed(mw), name=f"new_m{r}")
                m.d.comb += new_m.eq(Mux(grow, ceil_x, run_max[r]))
                delta = Signal(mw + 1, name=f"delta{r}")
                m.d.comb += delta.eq((new_m - run_max[r]) >> F)
                rescale_now = grow & seen[r]
                counted = rescale_now if c.rescale_on_growth_only else (live1[r] & seen[r])
                m.d.sync += [
                    d2[r].eq(new_m - x),
                    shift2[r].eq(Mux(rescale_now, Mux(delta > c.acc_width, c.acc_width, delta), 0)),
                    resc2[r].eq(counted),
                ]
                with m.If(v1):
                    m.d.sync += [run_max[r].eq(new_m), seen[r].eq(seen[r] | live1[r])]

        # Stage 3: exponent (lanes), running sum, output register, counters.
        fine, coarse = luts(c)
        m.submodules.fine_lut = fine_rom = Memory(shape=unsigned(c.prob_bits), depth=len(fine),
                                                  init=[int(vv) for vv in fine])
        m.submodules.coarse_lut = coarse_rom = Memory(shape=unsigned(c.prob_bits), depth=len(coarse),
                                                      init=[int(vv) for vv in coarse])
        if G == 1:
            lane_d = d2
            lane_live = [live2[r] for r in range(R)]
            lane_ok = [Const(1, 1)] * L
        else:
            # Pad to every value the index can take, so each mux case is covered.
            span = 1 << (g3 * L + (L - 1)).shape().width
            pad = span - R
            d_arr = Array(d2 + [Const(0, signed(dw))] * pad)
            live_arr = Array([live2[r] for r in range(R)] + [Const(0, 1)] * pad)
            lane_d, lane_live, lane_ok = [], [], []
            for ln in range(L):
                idx = g3 * L + ln
                ld = Signal(signed(dw), name=f"lane_d{ln}")
                lv = Signal(name=f"lane_live{ln}")
                m.d.comb += [ld.eq(d_arr[idx]), lv.eq(live_arr[idx])]
                lane_d.append(ld)
                lane_live.append(lv)
                lane_ok.append(idx < R)
        lane_p, tiers = [], []
        for ln in range(L):
            p, flags = self._exponent(m, ln, lane_d[ln], lane_live[ln], fine_rom, coarse_rom, dw)
            lane_p.append(p)
            tiers.append(tuple(flag & lane_ok[ln] for flag in flags))

        # Rows of earlier groups wait in p_stage; the last group goes straight out.
        p_stage = [Signal(c.p_bits, name=f"p_stage{r}") for r in range(R)]
        p_row = [lane_p[r % L] if r // L == G - 1 else p_stage[r] for r in range(R)]
        for r in range(R):
            with m.If(commit & (g3 == r // L)):
                m.d.sync += [p_stage[r].eq(lane_p[r % L]),
                             lsum[r].eq((lsum[r] >> shift2[r]) + lane_p[r % L])]
        with m.If(commit):
            m.d.sync += g3.eq(Mux(last, 0, g3 + 1))

        all_zero = Signal()
        m.d.comb += all_zero.eq(Cat(*[p != 0 for p in p_row]) == 0)
        with m.If(self.p_out.valid & self.p_out.ready):
            m.d.sync += self.p_out.valid.eq(0)          # taken; refilled below if a key is ready
        with m.If(out_load):
            m.d.sync += [self.p_out.valid.eq(v2), self.p_out.payload.key_pos.eq(kpos2),
                         self.p_out.payload.skip.eq(all_zero if c.key_skip else 0)]
            m.d.sync += [self.p_out.payload.p[r].eq(p_row[r]) for r in range(R)]
            m.d.sync += [self.p_out.payload.shift[r].eq(shift2[r]) for r in range(R)]

        def popcount(bits):
            return sum(b.as_unsigned() for b in bits)
        with m.If(commit):
            m.d.sync += [
                self.fine_lookups.eq(self.fine_lookups + popcount(t[0] for t in tiers)),
                self.coarse_lookups.eq(self.coarse_lookups + popcount(t[1] for t in tiers)),
                self.skipped_entries.eq(self.skipped_entries + popcount(t[2] for t in tiers)),
                self.masked_entries.eq(self.masked_entries + popcount(t[3] for t in tiers)),
            ]
        with m.If(commit & last):
            m.d.sync += [
                self.keys.eq(self.keys + 1),
                self.skipped_keys.eq(self.skipped_keys + (all_zero if c.key_skip else 0)),
                self.rescales.eq(self.rescales + popcount(resc2[r] for r in range(R))),
            ]
        return m
