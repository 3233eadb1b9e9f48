"""Candidate cuts of the OP-CIM column, each synthesised beside the column as built (issue 34, item 3).

The column (``hw/op_cim.py`` ``OpColumn``) is 67% of the default engine's transistors; ``fusioncim
area engine --breakdown`` gives its area function by function. Each variant below is the column with
one change, written here as an area model (an ``OpColumn`` subclass) and synthesised alone by the same
flow (``synth.area.synthesise``: Yosys, ABC, the bundled 45 nm library). The variants are NOT verified
designs: they show what a change would save, before anyone builds it into the generator, golden and
the schedule. Each says whether it keeps the numerics and the cycle schedule:

* ``clamp``: the rescale shift clamped to ``acc_width - 1`` places (an arithmetic shift by more leaves
  the sign in every bit either way): same numerics, same schedule.
* ``merged``: the rescale folded into the first digit's add, ``O = (O >> s) + w0`` (the shift amount
  zero on later digits): same numerics, one cycle fewer for a key that rescales.
* ``shared``: one shifter for all the column's rows, a row a cycle: same numerics, a rescale takes one
  cycle per row that rescales instead of one in all.
* ``radix4``: the digit of p as 2-bit pieces, each selecting 0, v, 2v or 3v (3v formed once per
  column in a real design; here once per row) and added: the same product, same schedule.
* ``radix4+clamp+merged``: those three together (the numerics kept, no cycle added).
* ``single``: no double-buffer bank (``double_buffer=False``): the normaliser holds the array, so the
  next tile waits for the division; shown for scale.

Run: ``.venv/bin/python bench/op_column_cuts.py [--config default] [--json FILE]``. The table in
docs/energy.md ("Where the area goes") comes from this command.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal, signed

from fusioncim.core.config import PRESETS
from fusioncim.hw.op_cim import OpColumn, clear_or_bank
from fusioncim.synth.area import GENERIC_LIBERTY, check_liberty, synthesise


class Variant(OpColumn):
    """The column with one change; ``kind`` names it (see the module's docstring)."""

    def __init__(self, cfg, kind):
        self.changes = set(kind.split("+"))
        super().__init__(cfg)

    def _product(self, m, r):
        c, v = self._cfg, self.v
        digit = self.digits[r].as_unsigned()
        if "radix4" not in self.changes:
            return digit * v
        three = Signal(signed(c.v_width + 2), name="v3")          # one per column in a real design
        m.d.comb += three.eq(v + (v << 1))
        chunks = [digit[k:k + 2] for k in range(0, c.op_bits_per_cycle, 2)]
        pick = [Mux(d == 0, 0, Mux(d == 1, v, Mux(d == 2, v << 1, three))) for d in chunks]
        total = pick[0]
        for k, p in enumerate(pick[1:], 1):
            total = total + (p << (2 * k))
        return total

    def elaborate(self, platform):
        m = Module()
        c = self._cfg
        digit_bits, n_digits = c.op_bits_per_cycle, c.op_cycles_per_key
        acc = list(self.acc)
        shifts = [self.shifts[r] for r in range(c.rows)]
        if "clamp" in self.changes:
            top = c.acc_width - 1
            shifts = [Mux(s > top, top, s)[:top.bit_length()] for s in shifts]
        if "shared" in self.changes:
            row = Signal(range(max(c.rows, 2)), name="rescale_row")   # the row being rescaled this cycle
            m.d.sync += row.eq(Mux(self.rescale, row + 1, 0))
            picked, amount = Signal(signed(c.acc_width)), Signal(c.shift_bits)
            with m.Switch(row):
                for r in range(c.rows):
                    with m.Case(r):
                        m.d.comb += [picked.eq(acc[r]), amount.eq(shifts[r])]
            with m.If(self.rescale):
                for r, a in enumerate(acc):
                    with m.If(row == r):
                        m.d.sync += a.eq(picked >> amount)
        elif "merged" not in self.changes:
            with m.If(self.rescale):
                m.d.sync += [a.eq(a >> shifts[r]) for r, a in enumerate(acc)]
        with m.If(self.step):
            for r, a in enumerate(acc):
                prod = self._product(m, r)
                weighted = Signal(signed(c.acc_width), name=f"w{r}")
                m.d.comb += weighted.eq(Mux(self.digit_no == 0, prod, 0))
                for g in range(1, n_digits):
                    with m.If(self.digit_no == g):
                        m.d.comb += weighted.eq(prod << (g * digit_bits))
                base = a >> Mux(self.digit_no == 0, shifts[r], 0) if "merged" in self.changes else a
                m.d.sync += a.eq(base + weighted)
        clear_or_bank(m, c, self, acc)
        return m


KINDS = {"clamp": "rescale shift clamped to acc_width - 1 (same numerics and schedule)",
         "merged": "rescale folded into the first digit's add (same numerics; a rescale costs no cycle)",
         "shared": "one rescale shifter per column, a row a cycle (same numerics; a rescale takes a cycle per row)",
         "radix4": "multiply as two radix-4 selects of 0, v, 2v, 3v (same product and schedule)",
         "single": "no double-buffer bank (the next tile waits for the division)",
         "radix4+clamp+merged": "the three changes that keep the numerics and add no cycle, together"}


def area(component, lib_text):
    with tempfile.TemporaryDirectory(prefix="fusioncim-cuts-") as tmp:
        path = Path(tmp) / "op_column.v"
        path.write_text(verilog.convert(component, name="op_column", emit_src=False))
        r = synthesise(path, "op_column", tmp, GENERIC_LIBERTY, lib_text)
    return {k: r[k] for k in ("area_um2", "flip_flops", "logic_ns")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default", choices=sorted(PRESETS), help="preset (default: default)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    cfg = PRESETS[args.config]
    lib = check_liberty(GENERIC_LIBERTY)
    base = area(OpColumn(cfg), lib)
    print(f"OP-CIM column as built ({args.config}): {base['area_um2']:,.0f} µm², {base['flip_flops']:,} flip-flops, "
          f"longest path {base['logic_ns']:.2f} ns", flush=True)
    results = {"as built": base}
    for kind, what in KINDS.items():
        comp = OpColumn(cfg.replace(double_buffer=False)) if kind == "single" else Variant(cfg, kind)
        r = area(comp, lib)
        r["saving"] = round(1 - r["area_um2"] / base["area_um2"], 4)
        results[kind] = r
        print(f"  {kind:<19} {r['area_um2']:>9,.0f} µm²  {r['saving']:6.1%} less  {r['logic_ns']:.2f} ns  {what}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
