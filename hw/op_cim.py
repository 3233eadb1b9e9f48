"""OP-CIM macro and output normaliser: the digital equivalent of an outer-product CIM array.

``rows x head_dim`` accumulators O stay in the array. Per key the p column
and the v row are broadcast and every cell does
``O = (O >> shift) + p * v`` (docs/numerics.md section 5): the rescale is one
cycle, only when some row's shift is non-zero (alpha = 1 costs nothing), and
the multiply is bit-serial over p, ``op_bits_per_cycle`` bits a cycle, least
significant digit first. A skipped key is accepted without touching the array.
At the end of a tile the :class:`Normaliser` (a component of its own beside
the array) turns each row into ``O / l`` with ``out_frac_bits`` of fraction (a
restoring divider per column and lane, one quotient bit a cycle, ``norm_lanes``
rows at once), streams the rows out
and the array is cleared for the next tile. With ``double_buffer`` the tile's
O is copied into a second register bank in the cycle the tile ends and the
array is cleared at once, so the next tile's keys overlap the division.
Golden model: ``fusioncim.golden.op_cim`` (``update``, ``normalise``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out, connect, flipped

from ..core.config import EngineConfig
from ..core.schedule import NormPhase, norm_cycles, quotient_bits
from .common import Block, Cell, add_cell, data_row
from .softmax import sums_layout

__all__ = ["OpCim", "Normaliser", "OpColumn", "DivColumn", "kv_in_layout", "norm_in_layout", "o_out_layout", "acc_row_layout",
           "clear_or_bank"]


def kv_in_layout(c: EngineConfig):
    """One key for the array: ``{p[rows], shift[rows], skip, v[head_dim]}``, and with per-key V exponents
    the key's ``v_exp`` (the array adds ``p * (v << v_exp)``)."""
    return data.StructLayout({
        "p": data.ArrayLayout(unsigned(c.p_bits), c.rows), "shift": data.ArrayLayout(unsigned(c.shift_bits), c.rows),
        "skip": unsigned(1), "v": data_row(c), **({"v_exp": unsigned(c.v_exp_bits)} if c.v_exp_bits else {})})


def norm_in_layout(c: EngineConfig):
    """End of a tile: ``{l[rows], n_rows}``."""
    return data.StructLayout({"l": sums_layout(c), "n_rows": unsigned(c.n_rows_bits)})


def o_out_layout(c: EngineConfig):
    """One normalised output row: ``{row, o[head_dim]}``."""
    return data.StructLayout({"row": unsigned(c.row_bits), "o": data.ArrayLayout(signed(c.out_bits), c.head_dim)})


def acc_row_layout(c: EngineConfig):
    """One row of accumulators."""
    return data.ArrayLayout(signed(c.acc_width), c.head_dim)


class Normaliser(Block):
    """Divides ``norm_lanes`` rows of accumulators at a time by their running sums:
    ``out = sat(sign(O) floor((|O| 2^(f+1) + l) / 2l))``.

    A tile's rows ``0 .. n_rows - 1`` go in groups of ``norm_lanes`` through the
    phases of :class:`fusioncim.core.schedule.NormPhase`: every lane divides its row
    at once, then the group's rows are handed over one a cycle
    (``schedule.norm_cycles`` with ``o_out`` ready). The rows themselves stay
    outside: the normaliser names the group on ``group_sel`` and gets rows
    ``group_sel x norm_lanes + lane`` on ``group_o``.

    Members
    -------
    start : In(stream)
        ``{l[rows], n_rows}``: a tile to normalise; ready while idle.
    group_sel : Out(range(groups)), group_o : In(ArrayLayout(ArrayLayout(signed(acc_width), head_dim), norm_lanes))
        The group being divided, and the accumulators of its rows, one per lane.
    o_out : Out(stream)
        ``{row, o[head_dim]}``, row 0 first.
    busy : Out(1)
        A tile is being normalised.
    active : Out(1)
        Working this cycle (not waiting on ``o_out``): the engine's ``norm_busy``.
    done : Out(1)
        The tile's last row is handed over this cycle.
    """

    def ports(self, c: EngineConfig):
        return {
            "start": In(stream.Signature(norm_in_layout(c))),
            "group_sel": Out(range(max(-(-c.rows // c.norm_lanes), 2))),
            "group_o": In(data.ArrayLayout(acc_row_layout(c), c.norm_lanes)),
            "o_out": Out(stream.Signature(o_out_layout(c))),
            "busy": Out(1),
            "active": Out(1),
            "done": Out(1),
        }

    def cycles(self, n_rows):
        """Cycles a tile of ``n_rows`` rows takes with ``o_out`` ready."""
        return norm_cycles(self._cfg, n_rows)

    def _lane(self, m, platform, k, l_reg, phase, rounding):
        # Division lane k: its row's l (the group's k-th row), the shared divisor register, and one
        # divider column per element; returns the columns' outputs.
        c, lanes, n_quot = self._cfg, self._cfg.norm_lanes, quotient_bits(self._cfg)
        group, busy = self.group_sel, self.busy
        row_l = Signal(c.sum_width, name=f"row_l{k}")
        with m.Switch(group):
            for g, l_row in enumerate(l_reg[k::lanes]):
                with m.Case(g):
                    m.d.comb += row_l.eq(l_row)
            with m.Default():
                m.d.comb += row_l.eq(0)
        den = Signal(c.sum_width + 1 + n_quot, name=f"den{k}")
        divisor = Signal(c.sum_width + 1, name=f"divisor{k}")
        m.d.comb += divisor.eq(Mux(row_l == 0, 2, row_l << 1))
        with m.If(busy & (phase == NormPhase.LOAD)):
            m.d.sync += den.eq(divisor << (n_quot - 1))
        with m.If(busy & (phase == NormPhase.DIVIDE)):
            m.d.sync += den.eq(den >> 1)
        cols = []
        for j in range(c.head_dim):
            col = add_cell(m, f"div{j}" if lanes == 1 else f"div{k}_{j}", DivColumn(c), platform)
            m.d.comb += [col.acc.eq(self.group_o[k][j]), col.row_l.eq(row_l), col.divisor.eq(divisor),
                         col.den.eq(den), col.load.eq(busy & (phase == NormPhase.LOAD)),
                         col.step.eq(busy & (phase == NormPhase.DIVIDE)), col.round.eq(rounding)]
            cols.append(col.o)
        return cols

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        lanes = c.norm_lanes
        n_quot = quotient_bits(c)
        l_reg = [Signal(c.sum_width, name=f"l{r}") for r in range(c.rows)]
        n_rows = Signal(c.n_rows_bits)
        group = self.group_sel
        row = Signal(range(c.rows + lanes))      # the group's first row
        m.d.comb += row.eq(group * lanes)
        lane = Signal(range(max(lanes, 2)))      # the lane being handed over
        phase = Signal(NormPhase)
        bit_no = Signal(range(max(n_quot, 2)))
        busy = self.busy
        m.d.comb += self.start.ready.eq(~busy)
        with m.If(self.start.valid & self.start.ready):
            m.d.sync += [busy.eq(1), group.eq(0), phase.eq(NormPhase.LOAD), n_rows.eq(self.start.payload.n_rows)]
            m.d.sync += [l_reg[r].eq(self.start.payload.l[r]) for r in range(c.rows)]

        handing_over = phase == NormPhase.HANDOVER
        taken = self.o_out.valid & self.o_out.ready
        out_row = Signal(range(c.rows + lanes))
        m.d.comb += out_row.eq(row + lane)
        # The row handed over is the group's last real one: the lanes are used up, or the tile's rows.
        group_end = (lane == lanes - 1) | (out_row + 1 >= n_rows) | (out_row == c.rows - 1)
        final_row = (out_row + 1 >= n_rows) | (out_row == c.rows - 1)
        m.d.comb += [self.active.eq(busy & ~(handing_over & ~self.o_out.ready)),
                     self.done.eq(busy & handing_over & taken & final_row)]
        rounding = busy & (phase == NormPhase.ROUND) & ~self.o_out.valid
        m.d.comb += self.o_out.payload.row.eq(out_row)
        outs = [self._lane(m, platform, k, l_reg, phase, rounding) for k in range(lanes)]
        if lanes == 1:
            m.d.comb += [self.o_out.payload.o[j].eq(o) for j, o in enumerate(outs[0])]
        else:
            # The last lane takes the default arm: a case over a counter that never reaches its
            # width's last value would be incomplete (Verilator's CASEINCOMPLETE).
            with m.Switch(lane):
                for k in range(lanes - 1):
                    with m.Case(k):
                        m.d.comb += [self.o_out.payload.o[j].eq(o) for j, o in enumerate(outs[k])]
                with m.Default():
                    m.d.comb += [self.o_out.payload.o[j].eq(o) for j, o in enumerate(outs[-1])]

        # An if-chain rather than a case: Verilator reports a case statement
        # whose arms assign combinational signals as incomplete (CASEINCOMPLETE).
        with m.If(busy):
            with m.If(phase == NormPhase.LOAD):
                m.d.sync += [bit_no.eq(0), phase.eq(NormPhase.DIVIDE)]
            with m.Elif(phase == NormPhase.DIVIDE):
                m.d.sync += bit_no.eq(bit_no + 1)
                with m.If(bit_no == n_quot - 1):
                    m.d.sync += phase.eq(NormPhase.ROUND)
            with m.Elif(phase == NormPhase.ROUND):
                with m.If(~self.o_out.valid):
                    m.d.sync += [lane.eq(0), self.o_out.valid.eq(1), phase.eq(NormPhase.HANDOVER)]
            with m.Else():                                   # NormPhase.HANDOVER
                with m.If(taken):
                    with m.If(final_row):
                        m.d.sync += [busy.eq(0), self.o_out.valid.eq(0)]
                    with m.Elif(group_end):
                        m.d.sync += [self.o_out.valid.eq(0), group.eq(group + 1), phase.eq(NormPhase.LOAD)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
        return m


class DivColumn(Cell):
    """One column of the normaliser: a restoring divider ``|O| 2^(f+1) + l`` by ``2l``, one quotient
    bit a cycle, then sign and saturation to ``out_bits`` (0 for a row whose sum is 0).

    Members
    -------
    acc : In(signed(acc_width)), row_l : In(sum_width)
        The row's accumulator in this column and the row's sum, read in the load cycle.
    divisor, den : In
        ``2l`` (2 when l is 0), and the shared divisor shifted to this cycle's quotient bit.
    load, step, round : In(1)
        The phase: take the numerator; one quotient bit; form the output.
    o : Out(signed(out_bits))
        The normalised value, from the round cycle on.
    """

    def ports(self, c: EngineConfig):
        n_quot = quotient_bits(c)
        return {
            "acc": In(signed(c.acc_width)),
            "row_l": In(unsigned(c.sum_width)),
            "divisor": In(unsigned(c.sum_width + 1)),
            "den": In(unsigned(c.sum_width + 1 + n_quot)),
            "load": In(1),
            "step": In(1),
            "round": In(1),
            "o": Out(signed(c.out_bits)),
        }

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        n_quot = quotient_bits(c)
        frac = c.out_frac_bits
        num_width = c.acc_width + frac + 2
        num = Signal(num_width + n_quot)
        quo = Signal(n_quot)
        neg = Signal()
        over = Signal()
        acc, row_l = self.acc, self.row_l
        with m.If(self.load):
            mag = Mux(acc < 0, -acc, acc)
            num0 = Signal(num_width)
            m.d.comb += num0.eq((mag.as_unsigned() << (frac + 1)) + Mux(row_l == 0, 1, row_l))
            # A quotient of n_quot bits or more saturates whatever its low bits.
            m.d.sync += [num.eq(num0), quo.eq(0), neg.eq(acc < 0), over.eq(num0 >= (self.divisor << n_quot))]
        with m.If(self.step):
            # One subtractor per column against the shared, shifting divisor.
            trial = Signal(num_width + n_quot + 1)
            m.d.comb += trial.eq(num - self.den)
            with m.If(~trial[-1]):
                m.d.sync += [num.eq(trial), quo.eq(Cat(1, quo[:-1]))]
            with m.Else():
                m.d.sync += quo.eq(Cat(0, quo[:-1]))
        with m.If(self.round):
            lim = 1 << (c.out_bits - 1)
            pos = Mux(over | (quo > lim - 1), lim - 1, quo)
            negv = Mux(over | (quo > lim), -lim, -quo.as_signed())
            m.d.sync += self.o.eq(Mux(row_l == 0, 0, Mux(neg, negv, pos)))
        return m


class OpCim(Block):
    """Bit-serial outer-product CIM macro with the end-of-tile normaliser.

    Throughput: a key every ``cycles_per_key = p_bits / op_bits_per_cycle``
    cycles back to back, plus one cycle when it rescales; a skipped key
    takes one cycle and changes nothing. Normalisation:
    ``Normaliser.cycles(n_rows)`` cycles a tile, a row waiting on ``o_out`` when it is not ready.

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    kv_in : In(stream)
        ``{p[rows], shift[rows], skip, v[head_dim]}``: one key's probabilities
        and rescale shifts (from the softmax unit) and its value row.
    norm_in : In(stream)
        ``{l[rows], n_rows}``: ends the tile; rows ``0 .. n_rows - 1`` (1 to
        ``rows``) are normalised. Accepted when no key is in flight and the
        normaliser is free.
    o_out : Out(stream)
        ``{row, o[head_dim]}``: normalised rows, row 0 first; after the last
        row the accumulators are cleared.
    o_rd_row : In(row_bits), o_rd_data : Out(ArrayLayout(signed(acc_width), head_dim))
        Combinational read of one row's accumulators (for test).
    clear : In(1)
        Clear the array's accumulators (an aborted tile, with no key in flight); the normaliser and a
        double-buffered bank it divides are not touched.
    busy : Out(1)
        A key update or a normalisation is in progress.
    key_active, norm_active : Out(1)
        The array updates (a digit or a rescale cycle) / the normaliser works
        (not waiting on ``o_out``) this cycle: the engine's busy counters.
    """

    def ports(self, c: EngineConfig):
        return {
            "kv_in": In(stream.Signature(kv_in_layout(c))),
            "norm_in": In(stream.Signature(norm_in_layout(c))),
            "o_out": Out(stream.Signature(o_out_layout(c))),
            "o_rd_row": In(unsigned(c.row_bits)),
            "o_rd_data": Out(acc_row_layout(c)),
            "clear": In(1),
            "busy": Out(1),
            "key_active": Out(1),
            "norm_active": Out(1),
        }

    @property
    def cycles_per_key(self):
        return self._cfg.op_cycles_per_key

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        cols = [add_cell(m, f"col{j}", OpColumn(c), platform) for j in range(c.head_dim)]
        updating, rescaling, digit_no, take_next = self._key_update(m, cols)

        norm = add_cell(m, "norm", Normaliser(c), platform)
        # A tile ends once no key is in flight; single-buffered, the normaliser
        # owns the array until it is done.
        ends = ~updating & ~self.kv_in.valid
        m.d.comb += [norm.start.valid.eq(self.norm_in.valid & ends),
                     norm.start.payload.eq(self.norm_in.payload),
                     self.norm_in.ready.eq(norm.start.ready & ends),
                     self.kv_in.ready.eq((c.double_buffer | ~norm.busy) & take_next),
                     self.busy.eq(updating | norm.busy),
                     self.key_active.eq(updating),
                     self.norm_active.eq(norm.active)]
        connect(m, norm.o_out, flipped(self.o_out))
        start = norm.start.valid & norm.start.ready
        for j, col in enumerate(cols):
            m.d.comb += [col.step.eq(updating & ~rescaling), col.rescale.eq(updating & rescaling),
                         col.digit_no.eq(digit_no),
                         # Double-buffered the tile's O moves to the bank as the tile ends;
                         # single-buffered the array is cleared once its last row is out.
                         col.end_tile.eq(start if c.double_buffer else norm.done),
                         col.clear.eq(self.clear),
]
        # The row reads are here, not in the columns, so a read nobody uses (the test port
        # o_rd inside the engine) is removed by synthesis like any unused logic.
        _read(m, [[col.acc[r] for col in cols] for r in range(c.rows)], self.o_rd_row, self.o_rd_data)
        bank = [[(col.held if c.double_buffer else col.acc)[r] for col in cols] for r in range(c.rows)]
        for k in range(c.norm_lanes):
            # Lane k of group g divides row g x norm_lanes + k.
            _read(m, bank[k::c.norm_lanes], norm.group_sel, norm.group_o[k])
        return m

    def _key_update(self, m, cols):
        """The key's registers and digit counter: ``O = (O >> shift) + p * v``, bit-serial over p, in the columns.

        Returns ``(updating, rescaling, digit_no, take_next)``: a key is in the array, its rescale cycle,
        the digit, the array can take the next key.
        """
        c = self._cfg
        digit_bits, n_digits = c.op_bits_per_cycle, c.op_cycles_per_key
        # One register each for all rows' p and shifts, so the buses every column reads change in
        # one event a cycle (an event-driven simulator wakes every reader once per changed piece).
        p_all = Signal(data.ArrayLayout(unsigned(c.p_bits), c.rows), name="p")
        shift_all = Signal(data.ArrayLayout(unsigned(c.shift_bits), c.rows), name="shift")
        p_reg = list(p_all)
        v_reg = [Signal(signed(c.v_width), name=f"v{j}") for j in range(c.head_dim)]
        digit_no = Signal(range(max(n_digits, 2)))
        rescaling = Signal()
        updating = Signal()
        last_digit = updating & ~rescaling & (digit_no == n_digits - 1)
        # Every column sees the same digits and shifts.
        digits = Signal(cols[0].digits.shape())
        shifts = Signal(cols[0].shifts.shape())
        m.d.comb += [digits.eq(Cat(*[p[:digit_bits] for p in p_reg])), shifts.eq(shift_all)]
        for j, col in enumerate(cols):
            m.d.comb += [col.v.eq(v_reg[j]), col.digits.eq(digits), col.shifts.eq(shifts)]

        with m.If(updating):
            with m.If(rescaling):
                m.d.sync += rescaling.eq(0)
            with m.Else():
                m.d.sync += p_all.eq(Cat(*[p >> digit_bits for p in p_reg]))
                m.d.sync += digit_no.eq(Mux(last_digit, 0, digit_no + 1))
                with m.If(last_digit):
                    m.d.sync += updating.eq(0)

        kv = self.kv_in.payload
        with m.If(self.kv_in.valid & self.kv_in.ready & ~kv.skip):
            m.d.sync += [updating.eq(1), digit_no.eq(0),
                         rescaling.eq(Cat(*[kv.shift[r] != 0 for r in range(c.rows)]).any())]
            m.d.sync += [p_all.eq(kv.p), shift_all.eq(kv.shift)]
            # With per-key V exponents the key's row is held shifted: v << v_exp, v_width bits.
            v_exp = kv.v_exp if c.v_exp_bits else 0
            m.d.sync += [v_reg[j].eq(kv.v[j] << v_exp) for j in range(c.head_dim)]
        # The next key may enter in the last digit cycle: keys go back to back.
        return updating, rescaling, digit_no, ~updating | last_digit


class OpColumn(Cell):
    """One column of the OP-CIM array: the ``rows`` accumulators of one output element, their
    multiply-accumulate ``O = (O >> shift) + p * v`` (a digit of p a cycle), and with
    ``double_buffer`` the column's bank for the normaliser.

    Members
    -------
    v : In(signed(v_width))
        This column's element of the key's value row, shifted by the key's V exponent.
    digits : In(ArrayLayout(op_bits_per_cycle, rows)), shifts : In(ArrayLayout(shift_bits, rows))
        Every row's current digit of p, and its rescale shift.
    digit_no : In
        Which digit (its weight).
    step, rescale : In(1)
        Add this cycle's digit products; shift every accumulator right by its row's shift.
    end_tile : In(1)
        The tile ends (double-buffered: copy into the bank and clear) or its last row is out
        (single-buffered: clear).
    clear : In(1)
        Clear the accumulators (an aborted tile), the bank untouched.
    acc : Out(ArrayLayout(signed(acc_width), rows))
        The accumulators.
    held : Out(ArrayLayout(signed(acc_width), rows))
        With ``double_buffer`` only: the bank the normaliser divides.
    """

    def ports(self, c: EngineConfig):
        return {
            "v": In(signed(c.v_width)),
            "digits": In(data.ArrayLayout(unsigned(c.op_bits_per_cycle), c.rows)),
            "shifts": In(data.ArrayLayout(unsigned(c.shift_bits), c.rows)),
            "digit_no": In(range(max(c.op_cycles_per_key, 2))),
            "step": In(1),
            "rescale": In(1),
            "end_tile": In(1),
            "clear": In(1),
            "acc": Out(data.ArrayLayout(signed(c.acc_width), c.rows)),
            **({"held": Out(data.ArrayLayout(signed(c.acc_width), c.rows))} if c.double_buffer else {}),
        }

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        digit_bits, n_digits = c.op_bits_per_cycle, c.op_cycles_per_key
        acc = list(self.acc)
        with m.If(self.rescale):
            m.d.sync += [a.eq(a >> self.shifts[r]) for r, a in enumerate(acc)]
        with m.If(self.step):
            for r, a in enumerate(acc):
                prod = self.digits[r].as_unsigned() * self.v              # signed, digit_bits + v_width + 1 bits
                weighted = Signal(signed(c.acc_width), name=f"w{r}")
                m.d.comb += weighted.eq(Mux(self.digit_no == 0, prod, 0))
                for g in range(1, n_digits):
                    with m.If(self.digit_no == g):
                        m.d.comb += weighted.eq(prod << (g * digit_bits))
                m.d.sync += a.eq(a + weighted)
        clear_or_bank(m, c, self, acc)
        return m


def clear_or_bank(m, c: EngineConfig, col, acc):
    """The accumulators ``acc`` cleared on ``col.clear``, and at ``col.end_tile`` (double-buffered first copied
    into ``col.held``). After the column's updates, so they win. Also in ``fusioncim.synth.breakdown`` and
    ``bench/op_column_cuts.py``."""
    with m.If(col.clear):
        m.d.sync += [a.eq(0) for a in acc]
    with m.If(col.end_tile):
        if c.double_buffer:
            m.d.sync += [h.eq(a) for h, a in zip(col.held, acc)]
        m.d.sync += [a.eq(0) for a in acc]


def _read(m, rows, sel, out):
    # Combinational read of one row of registers; 0 for an address past the last row. One process
    # for the whole row: Icarus runs the OP-CIM at d = 128 27x slower when each column is a
    # multiplexer of its own feeding a piece of the row (133 s against 4.8 s for its tests).
    with m.Switch(sel):
        for r, regs in enumerate(rows):
            with m.Case(r):
                m.d.comb += [out[j].eq(reg) for j, reg in enumerate(regs)]
        with m.Default():
            m.d.comb += out.eq(0)
