"""Ports and payload layouts of a generated block, as data: ``fusioncim ports BLOCK``.

Everything here is read from the Amaranth component the Verilog is generated
from (its signature and the payload layouts of ``hw/``), never written down
twice: the Verilog port of each signature member (``NAME__payload``,
``NAME__valid``, ``NAME__ready`` for a stream), its direction and width, and
for every stream payload each field's bit offset and width, least significant
bit first. An array field (``q`` of ``head_dim`` elements) is one row: element
``i`` sits at ``offset + i * width``. The port tables in ``docs/`` are this
module's markdown, and ``tests/test_ports.py`` checks them and the generated
Verilog's own port declarations against it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from ..core.config import EngineConfig

__all__ = ["Field", "Port", "ports", "markdown", "text", "to_json", "CLOCK_RESET"]

# Amaranth's `sync` domain, which every block uses: a rising-edge clock and a synchronous,
# active-high reset that returns every register to its reset value (docs/engine.md).
CLOCK_RESET = [("clk", "clock, rising edge"),
               ("rst", "reset: synchronous, active high; every register to its reset value")]


@dataclass
class Field:
    """One field of a stream payload: bits ``[offset, offset + width * count)``, LSB first."""
    name: str
    offset: int
    width: int               # of one element
    count: int = 1           # > 1: an array, element i at offset + i * width
    signed: bool = False

    @property
    def bits(self):
        return self.width * self.count


@dataclass
class Port:
    """One Verilog port of the generated module."""
    name: str
    direction: str           # "input" | "output"
    width: int
    description: str = ""
    fields: list = field(default_factory=list)    # a stream payload's fields, LSB first


def _fields(layout, prefix="", base=0):
    """The fields of a payload layout, nested structs flattened to dotted names."""
    if isinstance(layout, data.StructLayout):
        out = []
        for name, f in layout:
            out += _fields(f.shape, f"{prefix}{name}", base + f.offset) if _nested(f.shape) else \
                [_leaf(f"{prefix}{name}", base + f.offset, f.shape)]
        return out
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        if not _nested(elem):
            s = Shape.cast(elem)
            return [Field(prefix.rstrip("."), base, s.width, layout.length, s.signed)]
        size = Shape.cast(elem).width
        out = []
        for i in range(layout.length):
            out += _fields(elem, f"{prefix.rstrip('.')}[{i}].", base + i * size)
        return out
    return [_leaf(prefix.rstrip("."), base, layout)]


def _nested(shape):
    # A struct, or an array of structs: expanded field by field. An array of integers stays one row.
    return isinstance(shape, data.StructLayout) or (
        isinstance(shape, data.ArrayLayout) and _nested(shape.elem_shape))


def _leaf(name, offset, shape):
    if isinstance(shape, data.ArrayLayout):
        s = Shape.cast(shape.elem_shape)
        return Field(name, offset, s.width, shape.length, s.signed)
    s = Shape.cast(shape)
    return Field(name, offset, s.width, 1, s.signed)


def _member_docs(component):
    """Descriptions from the block's docstring ``Members`` section (``name : kind`` then indented text)."""
    from ..core.counters import Counters
    docs = {f.name: f.metadata["doc"] for f in Counters.__dataclass_fields__.values() if f.metadata.get("hw")}
    text = type(component).__doc__ or ""
    head = []
    for line in text.split("\n"):
        m = re.match(r"^    ([\w, .]+?) : (.*)$", line)
        if m:
            # "a, b : In(1)" documents both; "cycles, ... ip_stalls : Out(40)" is the counter
            # range, whose own docs (fusioncim.core.counters) are kept.
            head = [n.strip() for n in m.group(1).split(",") if n.strip() not in ("", "...")
                    and n.strip().split()[-1] not in docs]
            for n in head:
                docs[n] = ""
        elif head and line.startswith("        "):
            for n in head:
                docs[n] = (docs[n] + " " + line.strip()).strip()
        else:
            head = []
    return docs


def ports(block: str, cfg: EngineConfig) -> list:
    """Every port of ``block``'s generated Verilog for ``cfg``, in declaration order after clk and rst."""
    from .generate import build
    comp = build(block, cfg)
    comp._MustUse__silence = True              # read for its signature, never elaborated
    docs = _member_docs(comp)
    axi = "aclk" in comp.signature.members
    out = [] if axi else [Port(name, "input", 1, doc) for name, doc in CLOCK_RESET]
    for path, member, value in comp.signature.flatten(comp):
        name = "__".join(map(str, path))
        width = Shape.cast(member.shape).width
        direction = "input" if member.flow == wiring.In else "output"
        desc = _axi_doc(name) if axi else docs.get(str(path[0]), "")
        if len(path) == 2 and path[1] == "valid":
            desc = f"{path[0]}: the source offers a beat"
        elif len(path) == 2 and path[1] == "ready":
            desc = f"{path[0]}: the sink takes the beat (a transfer is valid & ready at a clock edge)"
        if name == "err" and block == "engine":
            from ..hw.engine import ERRORS
            desc += " " + "; ".join(f"bit {bit}: {what}" for bit, (_, what) in sorted(ERRORS.items()))
        fields = _fields(member.shape) if isinstance(member.shape, data.Layout) else []
        if axi and name.endswith("_tdata"):
            fields = _fields(_tdata_layout(name, cfg))
            pad = width - sum(f.bits for f in fields)
            if pad:
                fields.append(Field("(zero)", width - pad, pad))
        out.append(Port(name, direction, width, desc.replace("``", "`"), fields))
    return out


_AXI_STREAMS = {"s_axis_kv": "K/V rows in: one beat per key, `{addr, k, v}` (tlast ignored)",
                "s_axis_q": "Q rows in: the tile's n_rows beats, tlast on the last",
                "m_axis_o": "output rows: one frame per tile, slot order, tlast on the last row"}
_AXI_SIGNALS = {"tdata": "the engine's payload, zero-extended to whole bytes (fields below)",
                "tvalid": "the source offers a beat", "tready": "the sink takes it",
                "tlast": "last beat of a tile's frame"}


def _tdata_layout(name, cfg):
    from ..hw.regmap import stream_layouts
    return stream_layouts(cfg)[{"s_axis_kv_tdata": "kv", "s_axis_q_tdata": "q", "m_axis_o_tdata": "o"}[name]]


def _axi_doc(name):
    """Descriptions of the AXI top's ports (AXI4-Stream, AXI4-Lite), by their standard names."""
    if name == "aclk":
        return "clock, rising edge"
    if name == "aresetn":
        return "reset: synchronous, active low; every register to its reset value"
    if name == "irq":
        return "interrupt, active high: IRQ_STATUS & IRQ_ENABLE is not 0 (docs/integration.md)"
    for prefix, what in _AXI_STREAMS.items():
        if name.startswith(prefix + "_"):
            signal = name[len(prefix) + 1:]
            if signal == "tlast" and prefix == "s_axis_kv":
                return "ignored: every K/V beat stands alone (its address says where it goes)"
            return f"{what}" if signal == "tdata" else _AXI_SIGNALS[signal]
    if name.startswith("s_axil_"):
        return "AXI4-Lite slave, 32-bit data, 12-bit byte address: the registers (`fusioncim regmap`)"
    return ""


def to_json(block: str, cfg: EngineConfig, table=None) -> dict:
    """``{"block", "config", "ports": [...]}`` with every field of every payload."""
    table = ports(block, cfg) if table is None else table
    return {"block": block, "config": cfg.to_dict(),
            "ports": [{**asdict(p), "fields": [asdict(f) for f in p.fields]} for p in table]}


def markdown(block: str, cfg: EngineConfig, table=None) -> str:
    """The port table and, per stream payload, its field table (the form ``docs/`` carries)."""
    table = ports(block, cfg) if table is None else table
    lines = ["| port | direction | width | description |", "|---|---|---:|---|"]
    for p in table:
        lines.append(f"| `{p.name}` | {p.direction} | {p.width} | {p.description} |")
    for p in table:
        if not p.fields:
            continue
        lines += ["", f"`{p.name}` ({p.width} bits, field 0 at bit 0):", "",
                  "| field | bits | width | signed | elements |", "|---|---|---:|---|---:|"]
        for f in p.fields:
            hi = f.offset + f.bits - 1
            elems = f"{f.count} (element i at bit {f.offset} + {f.width}i)" if f.count > 1 else "1"
            lines.append(f"| `{f.name}` | [{hi}:{f.offset}] | {f.width} | {'yes' if f.signed else 'no'} | {elems} |")
    return "\n".join(lines) + "\n"


def text(block: str, cfg: EngineConfig, table=None) -> str:
    """A plain listing for the terminal: one port a line, then each payload's fields."""
    table = ports(block, cfg) if table is None else table
    w = max(len(p.name) for p in table)
    clock = ("aclk and aresetn: rising edge, synchronous active-low reset" if table[0].name == "aclk" else
             "clk and rst: rising edge, synchronous active-high reset")
    lines = [f"{block}: {len(table)} ports ({clock})"]
    lines += [f"  {p.name:<{w}}  {p.direction:<6} {p.width:>5}" for p in table]
    for p in table:
        if p.fields:
            lines.append(f"{p.name} fields, LSB first:")
            for f in p.fields:
                arr = f" x {f.count} (element i at bit {f.offset} + {f.width}i)" if f.count > 1 else ""
                lines.append(f"  [{f.offset + f.bits - 1}:{f.offset}] {f.name}: "
                             f"{'signed' if f.signed else 'unsigned'} {f.width}{arr}")
    return "\n".join(lines) + "\n"
