"""IP-CIM macro: the digital equivalent of an inner-product compute-in-memory array.

``rows`` Q vectors are stored in the array (the stationary operand). A key
vector streams in; it is fed to the array as bit-planes, ``ip_bits_per_cycle``
bits of every element per cycle, most significant group first. Each cycle
every row sums the products of its Q elements with the current key digits in
an adder tree, and a per-row shift-accumulator builds the exact dot product:
``acc = acc * 2**bpc + partial``; the first (most significant) digit is signed.
The numbers are those of ``fusioncim.golden.ip_cim`` (docs/numerics.md §2).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..core.config import EngineConfig
from ..core.schedule import ip_latency
from .common import Block, Cell, add_cell, data_row, swap_port

__all__ = ["IpCim", "IpRow", "q_wr_layout", "scores_layout"]


def q_wr_layout(c: EngineConfig):
    """A Q row to store: ``{row, data[head_dim]}``."""
    return data.StructLayout({"row": unsigned(c.row_bits), "data": data_row(c)})


def scores_layout(c: EngineConfig):
    """The ``rows`` exact scores of one key."""
    return data.ArrayLayout(signed(c.score_bits), c.rows)


def _adder_tree(terms):
    # Balanced, so the logic depth is log2(head_dim) adders, as in a CIM
    # macro's column adder tree.
    terms = list(terms)
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


class IpCim(Block):
    """Bit-serial inner-product CIM macro.

    Throughput: one key every ``cycles_per_key = data_bits / ip_bits_per_cycle``
    cycles, back to back, while the output is consumed. Latency: a key
    accepted in cycle t has its scores valid on ``s`` from cycle
    ``t + latency``.

    Parameters
    ----------
    config : EngineConfig
        Uses ``rows``, ``head_dim``, ``data_bits``, ``ip_bits_per_cycle``.

    Members
    -------
    q_wr : In(stream.Signature(StructLayout({"row", "data"})))
        Writes one Q row (a row address >= rows is ignored). Accepted only
        when no key is being computed, and before any key waiting on ``k``: a
        key sent after a write sees it. With ``q_double_buffer`` the write goes
        to the shadow bank and is always accepted.
    swap : In(1)
        With ``q_double_buffer`` only: the shadow bank becomes the array's Q at
        this clock edge (while no key is being computed).
    q_rd_row : In(config.row_bits)
    q_rd_data : Out(ArrayLayout(signed(data_bits), head_dim))
        Combinational read-back of a stored Q row (for test); 0 for an address >= rows.
    k : In(stream.Signature(ArrayLayout(signed(data_bits), head_dim)))
        Key vectors.
    s : Out(stream.Signature(ArrayLayout(signed(score_bits), rows)))
        The ``rows`` scores of each key, in key order.
    busy : Out(1)
        A key is in the bit-serial datapath.
    active : Out(1)
        The datapath works on a digit this cycle (not held by a stalled output):
        the engine's IP-CIM busy counter.

    Raises
    ------
    TypeError
        ``config`` is not an :class:`EngineConfig`.
    """

    def ports(self, config: EngineConfig):
        return {
            "q_wr": In(stream.Signature(q_wr_layout(config))),
            "q_rd_row": In(unsigned(config.row_bits)),
            "q_rd_data": Out(data_row(config)),
            "k": In(stream.Signature(data_row(config))),
            "s": Out(stream.Signature(scores_layout(config))),
            "busy": Out(1),
            "active": Out(1),
            **swap_port(config, In),
        }

    @property
    def cycles_per_key(self):
        return self._cfg.ip_cycles_per_key

    @property
    def latency(self):
        """Cycles from a key's acceptance on ``k`` to its scores being valid on ``s``."""
        return ip_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        width, dim, rows, digit_bits = cfg.data_bits, cfg.head_dim, cfg.rows, cfg.ip_bits_per_cycle
        n_digits = self.cycles_per_key

        # The array: `rows` rows of `dim` signed elements, written one row at a time.
        cells = [add_cell(m, f"row{r}", IpRow(cfg), platform) for r in range(rows)]
        write = self.q_wr.valid & self.q_wr.ready
        with m.Switch(self.q_rd_row):
            for r, row in enumerate(cells):
                with m.Case(r):
                    m.d.comb += self.q_rd_data.eq(row.q)
            with m.Default():
                m.d.comb += self.q_rd_data.eq(0)

        # The key as bit-planes: a per-element shift register whose top
        # digit_bits bits are the digit of the current cycle.
        key = Signal(dim * width)
        digit_no = Signal(range(max(n_digits, 2)))
        busy = Signal()
        last = busy & (digit_no == n_digits - 1)
        out_free = ~self.s.valid | self.s.ready
        # A stalled output holds the last digit cycle; nothing else moves.
        advance = busy & ~(last & ~out_free)
        take_key = self.k.valid & self.k.ready
        m.d.comb += [
            self.busy.eq(busy),
            self.active.eq(advance),
            self.q_wr.ready.eq(1 if cfg.q_double_buffer else ~busy),
            self.k.ready.eq((~busy | (last & out_free)) & (1 if cfg.q_double_buffer else ~self.q_wr.valid)),
        ]

        elems = [key[j * width:(j + 1) * width] for j in range(dim)]
        first = digit_no == 0
        # Every row takes the whole key register and cuts its digits itself: one event per cycle
        # for an event-driven simulator, where a digit bus assembled from pieces would wake every
        # row's multipliers once per piece.
        for r, row in enumerate(cells):
            m.d.comb += [row.wr_en.eq(write & (self.q_wr.payload.row == r)), row.wr_data.eq(self.q_wr.payload.data),
                         row.key.eq(key), row.first.eq(first), row.advance.eq(advance)]
            if cfg.q_double_buffer:
                m.d.comb += row.swap.eq(self.swap)

        with m.If(advance):
            m.d.sync += key.eq(Cat(*[(e << digit_bits)[:width] for e in elems]))
            m.d.sync += digit_no.eq(Mux(last, 0, digit_no + 1))
            with m.If(last):
                m.d.sync += busy.eq(0)
                m.d.sync += [self.s.payload[r].eq(row.acc_next) for r, row in enumerate(cells)]
        with m.If(take_key):
            m.d.sync += [key.eq(self.k.payload.as_value()), busy.eq(1), digit_no.eq(0)]

        with m.If(self.s.valid & self.s.ready):
            m.d.sync += self.s.valid.eq(0)
        with m.If(advance & last):
            m.d.sync += self.s.valid.eq(1)
        return m


def store_q(m, c: EngineConfig, row):
    """The row's stored Q vector ``row.q``, written from ``row.wr_data`` on ``row.wr_en`` (with
    ``q_double_buffer`` into a shadow bank that ``row.swap`` moves in). Also the storage part of
    ``fusioncim.synth.breakdown``."""
    if c.q_double_buffer:
        shadow = Signal(data_row(c), name="q_shadow")
        with m.If(row.wr_en):
            m.d.sync += shadow.eq(row.wr_data)
        with m.If(row.swap):
            m.d.sync += row.q.eq(shadow)
    else:
        with m.If(row.wr_en):
            m.d.sync += row.q.eq(row.wr_data)


class IpRow(Cell):
    """One row of the IP-CIM array: a stored Q vector, its multipliers and adder tree, and the row's
    shift-accumulator ``acc = acc * 2**bpc + partial`` (the first digit clears it).

    Members
    -------
    wr_en : In(1), wr_data : In(data_row)
        Store a Q vector (with ``q_double_buffer``: in the shadow bank).
    swap : In(1)
        With ``q_double_buffer`` only: the shadow bank's vector becomes the stored one.
    key : In(head_dim * data_bits)
        The key's shift register: the top ``ip_bits_per_cycle`` bits of each element are this cycle's
        digit, sign-extended in the first cycle.
    first, advance : In(1)
        The first (most significant) digit; the datapath moves this cycle.
    q : Out(data_row)
        The stored vector.
    acc_next : Out(signed(score_bits))
        The accumulator after this cycle's digit: the score once the last digit is in.
    """

    def ports(self, c: EngineConfig):
        return {
            "wr_en": In(1),
            "wr_data": In(data_row(c)),
            "key": In(c.head_dim * c.data_bits),
            "first": In(1),
            "advance": In(1),
            "q": Out(data_row(c)),
            "acc_next": Out(signed(c.score_bits)),
            **swap_port(c, In),
        }

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        store_q(m, c, self)
        partial_width = c.data_bits + c.ip_bits_per_cycle + 1 + max(c.head_dim - 1, 0).bit_length()
        width, digit_bits = c.data_bits, c.ip_bits_per_cycle
        digits = []
        for j in range(c.head_dim):
            top = self.key[(j + 1) * width - digit_bits:(j + 1) * width]
            # Sign-extend the digit only in the first (most significant) cycle.
            digits.append(Cat(top, Mux(self.first, top[-1], 0)).as_signed())
        partial = Signal(signed(partial_width))
        m.d.comb += partial.eq(_adder_tree([self.q[j] * digits[j] for j in range(c.head_dim)]))
        acc = Signal(signed(c.score_bits))
        m.d.comb += self.acc_next.eq(Mux(self.first, 0, acc << c.ip_bits_per_cycle) + partial)
        with m.If(self.advance):
            m.d.sync += acc.eq(self.acc_next)
        return m
