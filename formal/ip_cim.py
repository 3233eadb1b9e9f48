"""Formal properties of the IP-CIM macro (``hw/ip_cim.py``)."""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Signal, signed

from .common import Property, broken, drop_stalled, duplicate, held_inputs, holds, short

__all__ = ["PROPERTIES"]


_env = held_inputs("k", "q_wr")


def _conserved(config, cls):
    # Every accepted key is either in the datapath or waiting on ``s``: none
    # lost, none made up, none duplicated.
    m = Module()
    dut = cls(config)
    n = _env(m, dut).inflight(dut.k, dut.s)
    m.d.comb += Assert(n == dut.busy + dut.s.valid, "keys in = scores out + keys in flight")
    return m


def _scores(config, cls):
    # Each score row is the exact dot product of its key with the stored Q rows
    # (no overflow of score_bits), in key order. The harness keeps its own copy
    # of Q and a two-entry queue of expected rows.
    m = Module()
    dut = cls(config)
    h = _env(m, dut)
    R, d = config.rows, config.head_dim
    q = [[Signal(signed(config.data_bits), name=f"q{r}_{j}") for j in range(d)] for r in range(R)]
    wr = dut.q_wr.payload
    with m.If(dut.q_wr.valid & dut.q_wr.ready):
        for r in range(R):
            with m.If(wr.row == r):
                m.d.sync += [q[r][j].eq(wr.data[j]) for j in range(d)]
    wide = signed(2 * config.data_bits + d.bit_length() + 1)
    dots = []
    for r in range(R):
        s = Signal(wide, name=f"dot{r}")
        m.d.comb += s.eq(sum(q[r][j] * dut.k.payload[j] for j in range(d)))
        dots.append(s)
    queue = [[Signal(wide, name=f"exp{e}_{r}") for r in range(R)] for e in range(2)]
    n = h.inflight(dut.k, dut.s)
    push, pop = dut.k.valid & dut.k.ready, dut.s.valid & dut.s.ready
    # Queue slot 0 is the oldest key; a push lands after what stays.
    with m.If(pop):
        m.d.sync += [queue[0][r].eq(queue[1][r]) for r in range(R)]
    with m.If(push):
        with m.If((n - pop) == 0):
            m.d.sync += [queue[0][r].eq(dots[r]) for r in range(R)]
        with m.Else():
            m.d.sync += [queue[1][r].eq(dots[r]) for r in range(R)]
    with m.If(dut.s.valid):
        exact = [dut.s.payload[r] == queue[0][r] for r in range(R)]
        m.d.comb += Assert((n >= 1) & Cat(*exact).all(), "scores = Q . k exactly, in key order")
    return m


PROPERTIES = [
    Property("ip_cim", "s_holds", "the score stream holds valid and payload until taken", holds(_env, "s"),
             "prove", 4, broken(drop_stalled("s")), "drops a stalled score row"),
    Property("ip_cim", "conserved", "keys in = score rows out + rows in flight (none lost or duplicated)",
             _conserved, "prove", 4, broken(duplicate("s")), "offers a taken score row twice"),
    Property("ip_cim", "exact_scores", "every score row equals Q . k exactly, in key order (no overflow)",
             _scores, "bmc", 5, short("score_bits"), "score_bits one bit short"),
]
