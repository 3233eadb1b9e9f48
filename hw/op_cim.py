"""OP-CIM macro and output normaliser: the digital equivalent of an outer-product CIM array.

``rows x head_dim`` accumulators O stay in the array. Per key the p column
and the v row are broadcast and every cell does
``O = (O >> shift) + p * v`` (docs/numerics.md section 5): the rescale is one
cycle, only when some row's shift is non-zero (alpha = 1 costs nothing), and
the multiply is bit-serial over p, ``op_bits_per_cycle`` bits a cycle, least
significant digit first. A skipped key is accepted without touching the array.
At the end of a tile the normaliser turns each row into ``O / l`` with
``out_frac_bits`` of fraction (a restoring divider per column, one quotient bit
a cycle), streams the rows out and clears the array for the next tile. With
``double_buffer`` the tile's O is copied into a second register bank in the
cycle the tile ends and the array is cleared at once, so the next tile's keys
overlap the division.
Golden model: ``fusioncim.golden.op_cim`` (``update``, ``normalise``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from .common import Block

__all__ = ["OpCim"]


class OpCim(Block):
    """Bit-serial outer-product CIM macro with the end-of-tile normaliser.

    Throughput: a key every ``cycles_per_key = p_bits / op_bits_per_cycle``
    cycles back to back, plus one cycle when it rescales; a skipped key
    takes one cycle and changes nothing. Normalisation: ``norm_cycles_per_row``
    cycles per row, then the row waits on ``o_out``.

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
    busy : Out(1)
        A key update or a normalisation is in progress.
    key_active, norm_active : Out(1)
        The array updates (a digit or a rescale cycle) / the normaliser works
        (not waiting on ``o_out``) this cycle: the engine's busy counters.
    """

    def ports(self, c: EngineConfig):
        R, d = c.rows, c.head_dim
        return {
            "kv_in": In(stream.Signature(data.StructLayout({
                "p": data.ArrayLayout(unsigned(c.p_bits), R), "shift": data.ArrayLayout(unsigned(c.shift_bits), R),
                "skip": unsigned(1), "v": data.ArrayLayout(signed(c.data_bits), d)}))),
            "norm_in": In(stream.Signature(data.StructLayout({
                "l": data.ArrayLayout(unsigned(c.sum_width), R), "n_rows": unsigned(R.bit_length())}))),
            "o_out": Out(stream.Signature(data.StructLayout({
                "row": unsigned(c.row_bits), "o": data.ArrayLayout(signed(c.out_bits), d)}))),
            "o_rd_row": In(unsigned(c.row_bits)),
            "o_rd_data": Out(data.ArrayLayout(signed(c.acc_width), d)),
            "busy": Out(1),
            "key_active": Out(1),
            "norm_active": Out(1),
        }

    @property
    def cycles_per_key(self):
        return self._cfg.op_cycles_per_key

    @property
    def quotient_bits(self):
        """Quotient bits the divider produces: enough for any in-range output plus one to detect overflow."""
        return self._cfg.out_bits + 1

    @property
    def norm_cycles_per_row(self):
        """Cycles per normalised row with ``o_out`` always ready: load, quotient bits, sign, hand-over."""
        return self._cfg.div_cycles

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        R, D, b = c.rows, c.head_dim, c.data_bits
        bpc, G = c.op_bits_per_cycle, c.op_cycles_per_key
        A = c.acc_width
        acc = [[Signal(signed(A), name=f"o{r}_{j}") for j in range(D)] for r in range(R)]

        with m.Switch(self.o_rd_row):
            for r in range(R):
                with m.Case(r):
                    m.d.comb += [self.o_rd_data[j].eq(acc[r][j]) for j in range(D)]
            with m.Default():
                m.d.comb += self.o_rd_data.eq(0)

        # -- key update ---------------------------------------------------------
        p_reg = [Signal(c.p_bits, name=f"p{r}") for r in range(R)]
        shift_reg = [Signal(c.shift_bits, name=f"shift{r}") for r in range(R)]
        v_reg = [Signal(signed(b), name=f"v{j}") for j in range(D)]
        digit_no = Signal(range(max(G, 2)))
        rescaling = Signal()
        updating = Signal()
        last_digit = updating & ~rescaling & (digit_no == G - 1)

        normalising = Signal()
        busy = updating | normalising
        m.d.comb += [self.busy.eq(busy), self.key_active.eq(updating)]
        take_key = self.kv_in.valid & self.kv_in.ready
        db = c.double_buffer
        m.d.comb += [
            # The next key may enter in the last digit cycle: keys go back to back.
            # Single-buffered, the normaliser owns the array until it is done.
            self.kv_in.ready.eq((db | ~normalising) & (~updating | last_digit)),
            self.norm_in.ready.eq(~busy & ~self.kv_in.valid),
        ]

        with m.If(updating):
            with m.If(rescaling):
                for r in range(R):
                    m.d.sync += [acc[r][j].eq(acc[r][j] >> shift_reg[r]) for j in range(D)]
                m.d.sync += rescaling.eq(0)
            with m.Else():
                for r in range(R):
                    digit = Signal(bpc, name=f"digit{r}")
                    m.d.comb += digit.eq(p_reg[r][:bpc])
                    for j in range(D):
                        prod = digit.as_unsigned() * v_reg[j]              # signed, bpc + b + 1 bits
                        weighted = Signal(signed(A), name=f"w{r}_{j}")
                        m.d.comb += weighted.eq(Mux(digit_no == 0, prod, 0))
                        for g in range(1, G):
                            with m.If(digit_no == g):
                                m.d.comb += weighted.eq(prod << (g * bpc))
                        m.d.sync += acc[r][j].eq(acc[r][j] + weighted)
                    m.d.sync += p_reg[r].eq(p_reg[r] >> bpc)
                m.d.sync += digit_no.eq(Mux(last_digit, 0, digit_no + 1))
                with m.If(last_digit):
                    m.d.sync += updating.eq(0)

        kv = self.kv_in.payload
        with m.If(take_key & ~kv.skip):
            m.d.sync += [updating.eq(1), digit_no.eq(0),
                         rescaling.eq(Cat(*[kv.shift[r] != 0 for r in range(R)]).any())]
            m.d.sync += [p_reg[r].eq(kv.p[r]) for r in range(R)]
            m.d.sync += [shift_reg[r].eq(kv.shift[r]) for r in range(R)]
            m.d.sync += [v_reg[j].eq(kv.v[j]) for j in range(D)]

        # -- normalisation: out = sat(sign(O) * floor((|O| 2^(f+1) + l) / (2 l))) --
        f = c.out_frac_bits
        Q = self.quotient_bits
        nw = A + f + 2                       # numerator width
        l_reg = [Signal(c.sum_width, name=f"l{r}") for r in range(R)]
        n_rows = Signal(R.bit_length())
        # The rows the normaliser divides: the array itself, or its copy.
        src = [[Signal(signed(A), name=f"h{r}_{j}") for j in range(D)] for r in range(R)] if db else acc
        row = Signal(c.row_bits)
        phase = Signal(range(Q + 3))         # 0: load, 1..Q: quotient bits, Q+1: output
        num = [Signal(nw + Q, name=f"num{j}") for j in range(D)]
        quo = [Signal(Q, name=f"quo{j}") for j in range(D)]
        neg = [Signal(name=f"neg{j}") for j in range(D)]
        over = [Signal(name=f"over{j}") for j in range(D)]
        den = Signal(c.sum_width + 1 + Q)
        row_acc = [Signal(signed(A), name=f"row_o{j}") for j in range(D)]
        row_l = Signal(c.sum_width)
        with m.Switch(row):
            for r in range(R):
                with m.Case(r):
                    m.d.comb += [row_acc[j].eq(src[r][j]) for j in range(D)]
                    m.d.comb += row_l.eq(l_reg[r])
            with m.Default():
                m.d.comb += [row_acc[j].eq(0) for j in range(D)] + [row_l.eq(0)]

        with m.If(self.norm_in.valid & self.norm_in.ready):
            m.d.sync += [normalising.eq(1), row.eq(0), phase.eq(0), n_rows.eq(self.norm_in.payload.n_rows)]
            m.d.sync += [l_reg[r].eq(self.norm_in.payload.l[r]) for r in range(R)]
            if db:
                for r in range(R):
                    m.d.sync += [src[r][j].eq(acc[r][j]) for j in range(D)]
                    m.d.sync += [acc[r][j].eq(0) for j in range(D)]
        final_row = (row == R - 1) | (row + 1 >= n_rows)
        stalled = (phase == Q + 2) & ~self.o_out.ready
        m.d.comb += self.norm_active.eq(normalising & ~stalled)

        lim = 1 << (c.out_bits - 1)
        with m.If(normalising):
            with m.If(phase == 0):
                d0 = Mux(row_l == 0, 2, row_l << 1)
                m.d.sync += den.eq(d0 << (Q - 1))
                for j in range(D):
                    mag = Mux(row_acc[j] < 0, -row_acc[j], row_acc[j])
                    n0 = Signal(nw, name=f"n0_{j}")
                    m.d.comb += n0.eq((mag.as_unsigned() << (f + 1)) + Mux(row_l == 0, 1, row_l))
                    # A quotient of Q bits or more saturates whatever its low bits.
                    m.d.sync += [num[j].eq(n0), quo[j].eq(0), neg[j].eq(row_acc[j] < 0),
                                 over[j].eq(n0 >= (d0 << Q))]
                m.d.sync += phase.eq(1)
            with m.Elif(phase <= Q):
                # Restoring division, one quotient bit a cycle, most significant first:
                # one subtractor per column against the shared, shifting divisor.
                for j in range(D):
                    trial = Signal(nw + Q + 1, name=f"trial{j}")
                    m.d.comb += trial.eq(num[j] - den)
                    with m.If(~trial[-1]):
                        m.d.sync += [num[j].eq(trial), quo[j].eq(Cat(1, quo[j][:-1]))]
                    with m.Else():
                        m.d.sync += quo[j].eq(Cat(0, quo[j][:-1]))
                m.d.sync += [den.eq(den >> 1), phase.eq(phase + 1)]
            with m.Elif(phase == Q + 1):
                with m.If(~self.o_out.valid):
                    for j in range(D):
                        q = quo[j]
                        pos = Mux(over[j] | (q > lim - 1), lim - 1, q)
                        negv = Mux(over[j] | (q > lim), -lim, -q.as_signed())
                        val = Mux(row_l == 0, 0, Mux(neg[j], negv, pos))
                        m.d.sync += self.o_out.payload.o[j].eq(val)
                    m.d.sync += [self.o_out.payload.row.eq(row), self.o_out.valid.eq(1), phase.eq(Q + 2)]
            with m.Else():
                with m.If(self.o_out.valid & self.o_out.ready):
                    m.d.sync += self.o_out.valid.eq(0)
                    with m.If(final_row):
                        m.d.sync += normalising.eq(0)
                        if not db:
                            for r in range(R):
                                m.d.sync += [acc[r][j].eq(0) for j in range(D)]
                    with m.Else():
                        m.d.sync += [row.eq(row + 1), phase.eq(0)]
        return m
