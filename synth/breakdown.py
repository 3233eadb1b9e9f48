"""Where a cell's area goes: the OP-CIM column and the IP-CIM row, function by function, from Yosys.

Each function of the cell (multiply, digit weighting, accumulate, rescale shift, storage...) is built
alone at the cell's widths, as a block of its own whose inputs and outputs are ports, and synthesised by
the flow of :mod:`fusioncim.synth.area` (Yosys, ABC, the bundled 45 nm library). The whole cell is
synthesised the same way, beside them. The parts do not add up to the whole exactly: in the cell ABC
maps the functions together (a register's input select with the adder that feeds it, say), so the parts
add up to a little more than the whole; the difference is reported as it is (``rest_um2``).

The parts mirror the expressions of ``hw/op_cim.py`` ``OpColumn`` and ``hw/ip_cim.py`` ``IpRow``;
``tests/test_breakdown.py`` holds the storage parts' flip-flops equal to the whole cells'.

Results are cached in the area cache folder by a hash of the Verilog and the library.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..core.config import EngineConfig
from ..core.files import atomic_write
from .area import FLOW_VERSION, GENERIC_LIBERTY, cache_dir, check_liberty, read_cached, synthesise

__all__ = ["breakdown", "CELLS", "lines"]


class _Part(wiring.Component):
    """One function alone: ``members`` are its ports, ``body(m, self)`` its logic."""

    def __init__(self, members, body):
        self._body = body
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        self._body(m, self)
        return m


def _rows(shape, c):
    return data.ArrayLayout(shape, c.rows)


def op_column_parts(c: EngineConfig):
    """The OP-CIM column's functions, each over all ``rows`` accumulators: {name: component}."""
    from ..hw.op_cim import clear_or_bank
    b, n_digits = c.op_bits_per_cycle, c.op_cycles_per_key
    prod_shape, acc = signed(b + c.v_width + 1), signed(c.acc_width)

    def multiply(m, s):
        m.d.comb += [s.prod[r].eq(s.digits[r].as_unsigned() * s.v) for r in range(c.rows)]

    def weighting(m, s):
        for r in range(c.rows):
            m.d.comb += s.weighted[r].eq(Mux(s.digit_no == 0, s.prod[r], 0))
            for g in range(1, n_digits):
                with m.If(s.digit_no == g):
                    m.d.comb += s.weighted[r].eq(s.prod[r] << (g * b))

    def accumulate(m, s):
        m.d.comb += [s.sum[r].eq(s.acc[r] + s.weighted[r]) for r in range(c.rows)]

    def rescale(m, s):
        m.d.comb += [s.shifted[r].eq(s.acc[r] >> s.shifts[r]) for r in range(c.rows)]

    def storage(m, s):
        with m.If(s.rescale):
            m.d.sync += s.acc.eq(s.shifted)
        with m.If(s.step):
            m.d.sync += s.acc.eq(s.sum)
        clear_or_bank(m, c, s, list(s.acc))

    digit_no = range(max(n_digits, 2))
    return {
        "multiply (p digit x v)": _Part({"digits": In(_rows(unsigned(b), c)), "v": In(signed(c.v_width)),
                                         "prod": Out(_rows(prod_shape, c))}, multiply),
        "digit weighting (shift by the digit's place)": _Part(
            {"prod": In(_rows(prod_shape, c)), "digit_no": In(digit_no), "weighted": Out(_rows(acc, c))}, weighting),
        "accumulate (add)": _Part({"acc": In(_rows(acc, c)), "weighted": In(_rows(acc, c)),
                                   "sum": Out(_rows(acc, c))}, accumulate),
        "rescale shift (O >> shift)": _Part({"acc": In(_rows(acc, c)), "shifts": In(_rows(unsigned(c.shift_bits), c)),
                                             "shifted": Out(_rows(acc, c))}, rescale),
        "storage (accumulators" + (", double-buffer bank)" if c.double_buffer else ")"): _Part(
            {"sum": In(_rows(acc, c)), "shifted": In(_rows(acc, c)), "step": In(1), "rescale": In(1),
             "clear": In(1), "end_tile": In(1), "acc": Out(_rows(acc, c)),
             **({"held": Out(_rows(acc, c))} if c.double_buffer else {})}, storage),
    }


def ip_row_parts(c: EngineConfig):
    """The IP-CIM row's functions: {name: component}."""
    from ..hw.common import data_row
    from ..hw.ip_cim import _adder_tree, store_q
    b, d = c.ip_bits_per_cycle, c.head_dim
    digit, prod = signed(b + 1), signed(c.data_bits + b + 1)
    partial = signed(c.data_bits + b + 1 + max(d - 1, 0).bit_length())

    def multiply(m, s):
        m.d.comb += [s.prod[j].eq(s.q[j] * s.digits[j]) for j in range(d)]

    def tree(m, s):
        m.d.comb += s.partial.eq(_adder_tree(list(s.prod)))

    def accumulate(m, s):
        m.d.comb += s.acc_next.eq(Mux(s.first, 0, s.acc << b) + s.partial)

    def storage(m, s):
        store_q(m, c, s)
        # The accumulator's top ip_bits_per_cycle bits are shifted out unread (acc << b): the cell has no
        # flip-flops for them, and neither has this part.
        acc = Signal(signed(c.score_bits - b), name="acc")
        with m.If(s.advance):
            m.d.sync += acc.eq(s.acc_next)
        m.d.comb += s.acc.eq(acc)

    def digits(m, s):
        for j in range(d):
            top = s.key[(j + 1) * c.data_bits - b:(j + 1) * c.data_bits]
            m.d.comb += s.digits[j].eq(Cat(top, Mux(s.first, top[-1], 0)).as_signed())

    score = signed(c.score_bits)
    return {
        "key digits (sign extension)": _Part({"key": In(d * c.data_bits), "first": In(1),
                                              "digits": Out(data.ArrayLayout(digit, d))}, digits),
        "multiply (q x key digit)": _Part({"q": In(data_row(c)), "digits": In(data.ArrayLayout(digit, d)),
                                           "prod": Out(data.ArrayLayout(prod, d))}, multiply),
        "adder tree": _Part({"prod": In(data.ArrayLayout(prod, d)), "partial": Out(partial)}, tree),
        "accumulate (shift-add)": _Part({"acc": In(score), "partial": In(partial), "first": In(1),
                                         "acc_next": Out(score)}, accumulate),
        "storage (Q" + (", its shadow bank" if c.q_double_buffer else "") + ", accumulator)": _Part(
            {"wr_en": In(1), "wr_data": In(data_row(c)), "advance": In(1), "acc_next": In(score),
             "q": Out(data_row(c)), "acc": Out(signed(c.score_bits - b)), **({"swap": In(1)} if c.q_double_buffer else {})},
            storage),
    }


def _whole(name, c):
    from ..hw.ip_cim import IpRow
    from ..hw.op_cim import OpColumn
    return {"op_column": OpColumn, "ip_row": IpRow}[name](c)


CELLS = {"op_column": op_column_parts, "ip_row": ip_row_parts}
"""The cells broken down, by their module names in the engine's netlist."""


def _synth(component, top, lib_text):
    """Area of one component synthesised alone, cached by its Verilog and the library."""
    from amaranth.back import verilog
    text = verilog.convert(component, name=top, emit_src=False)
    key = hashlib.sha256(b"%d\0breakdown\0" % FLOW_VERSION + text.encode() + b"\0" + lib_text).hexdigest()[:24]
    cached = cache_dir() / f"breakdown-{key}.json"
    out = read_cached(cached)
    if out is not None:
        return out
    with tempfile.TemporaryDirectory(prefix="fusioncim-breakdown-") as tmp:
        path = Path(tmp) / f"{top}.v"
        path.write_text(text)
        r = synthesise(path, top, tmp, GENERIC_LIBERTY, lib_text)
    out = {k: r[k] for k in ("area_um2", "transistors", "flip_flops")}
    atomic_write(cached, lambda f: f.write(json.dumps(out)))
    return out


def breakdown(cfg: EngineConfig, cells=tuple(CELLS), progress=None):
    """{cell: {"whole": {area_um2, transistors, flip_flops}, "parts": [{"function", ...}], "rest_um2"}} for ``cfg``,
    on the bundled library. ``progress(text)`` is called before each synthesis."""
    lib_text = check_liberty(GENERIC_LIBERTY)
    result = {}
    for cell in cells:
        if progress:
            progress(f"synthesising the {cell} and its functions alone ...")
        whole = _synth(_whole(cell, cfg), cell, lib_text)
        parts = [{"function": name, **_synth(part, "part", lib_text)} for name, part in CELLS[cell](cfg).items()]
        for p in parts:
            p["share"] = round(p["area_um2"] / whole["area_um2"], 4)
        result[cell] = {"whole": whole, "parts": parts,
                        "rest_um2": round(whole["area_um2"] - sum(p["area_um2"] for p in parts), 1)}
    return result


def lines(result, modules=None):
    """Printable lines of :func:`breakdown`'s result; ``modules`` (``estimate``'s per-module figures) adds each
    cell's instances."""
    out = []
    for cell, r in result.items():
        w = r["whole"]
        inst = (modules or {}).get(cell, {}).get("instances")
        out.append(f"{cell}{f' ({inst} instances)' if inst else ''}: {w['area_um2']:,.0f} µm² each, "
                   f"{w['flip_flops']:,} flip-flops; by function, each synthesised alone:")
        for p in sorted(r["parts"], key=lambda p: -p["area_um2"]):
            out.append(f"  {p['function']:<46} {p['area_um2']:>9,.0f} µm²  {p['share']:6.1%}"
                       + (f"  ({p['flip_flops']:,} flip-flops)" if p["flip_flops"] else ""))
        out.append(f"  {'the whole cell minus these parts':<46} {r['rest_um2']:>9,.0f} µm²  "
                   f"{r['rest_um2'] / w['area_um2']:6.1%}  (below 0 where ABC maps functions together in the cell)")
    return out
