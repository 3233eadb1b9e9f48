"""What every block generator shares."""

from __future__ import annotations

import re

import numpy as np
from amaranth.hdl import ClockSignal, Instance, ResetSignal, ValueCastable, signed
from amaranth.lib import data, wiring

from ..core.config import EngineConfig

__all__ = ["require_config", "Block", "Cell", "Hierarchy", "add_cell", "data_row", "encode", "decode"]


def data_row(c: EngineConfig):
    """One Q, K or V vector: ``head_dim`` signed ``data_bits`` integers."""
    return data.ArrayLayout(signed(c.data_bits), c.head_dim)


def swap_port(c: EngineConfig, direction):
    """``{"swap": direction(1)}`` with ``q_double_buffer`` (the one-cycle start of a preloaded tile), else no port."""
    return {"swap": direction(1)} if c.q_double_buffer else {}


def require_config(component, config):
    """Return ``config`` if it is an :class:`EngineConfig`; otherwise raise TypeError.

    The half-built component is marked as used, so Amaranth does not also warn
    that it was never elaborated.
    """
    if not isinstance(config, EngineConfig):
        component._MustUse__silence = True
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    return config


class Block(wiring.Component):
    """A block generator: checks its config, keeps it, and builds its ports from it.

    Subclasses implement ``ports(config)`` returning the signature members,
    and may add a rule of their own in ``check(config)`` (raise ValueError).
    """

    def __init__(self, config):
        self._cfg = require_config(self, config)
        try:
            self.check(self._cfg)
        except ValueError:
            self._MustUse__silence = True      # as in require_config: refused, not forgotten
            raise
        super().__init__(self.ports(self._cfg))

    def check(self, config):
        """A block's own rule on top of the config's validation; none by default."""

    @property
    def config(self):
        return self._cfg


class Cell(Block):
    """A repeated piece of an array (a row, a column, a lane): every instance has the same ports.

    A cell depends on nothing but its config, so all the cells of one class in
    a design are one Verilog module, instantiated N times (:class:`Hierarchy`).
    """


class Hierarchy:
    """The platform of a hierarchical conversion (``fusioncim.ip.generate``): cells become instances.

    :func:`add_cell` asks it for the module of a cell; the first time a
    (class, config) pair is seen, the cell is converted to RTLIL on its own
    (cells inside it become instances in turn) under a stable name: the
    class's name in snake case, numbered from 2 if one design had two
    variants. ``modules`` keeps the RTLIL of every distinct cell, in order.
    """

    def __init__(self, prefix=""):
        self._prefix = prefix         # starts every module name (fusioncim generate --prefix)
        self._names = {}              # (class, config) -> module name
        self._clocked = {}            # module name -> has clk and rst ports
        self.modules = {}             # module name -> RTLIL text

    def module_for(self, cell):
        from amaranth.back import rtlil
        key = (type(cell), cell.config)
        if key not in self._names:
            base = self._prefix + _snake(type(cell).__name__)
            name = base
            n = 1
            while name in self._clocked:
                n += 1
                name = f"{base}_{n}"
            self._names[key] = name
            text = rtlil.convert(type(cell)(cell.config), name=name, platform=self, emit_src=False)
            if isinstance(cell, Cell):
                # Synthesis keeps a repeated cell as a module of its own (Yosys flattens
                # the single-instance blocks around it, and their constants with them).
                text = text.replace(f"\nmodule \\{name}\n", f"\nattribute \\keep_hierarchy 1\nmodule \\{name}\n", 1)
            self._clocked[name] = re.search(r"^\s*wire (?:width 1 )?input \d+\s+\\clk$", text, flags=re.M) is not None
            self.modules[name] = text
        name = self._names[key]
        return name, self._clocked[name]


def _snake(name):
    return "".join(f"_{ch.lower()}" if ch.isupper() and i else ch.lower() for i, ch in enumerate(name))


def add_cell(m, name, cell, platform):
    """Add ``cell`` to ``m`` as submodule ``name``.

    Elaborated for simulation (``platform`` is not a :class:`Hierarchy`) the
    cell is an ordinary submodule, so Amaranth's simulator and the formal
    flow see its logic. In a hierarchical conversion it becomes an
    ``Instance`` of the cell's one shared module, wired to the same port
    signals, so the parent's code is the same either way.
    """
    if not isinstance(platform, Hierarchy):
        m.submodules[name] = cell
        return cell
    module, clocked = platform.module_for(cell)
    cell._MustUse__silence = True         # stands for its module; never elaborated itself
    ports = {}
    for path, member, value in cell.signature.flatten(cell):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        ports[("i_" if member.flow == wiring.In else "o_") + "__".join(map(str, path))] = value
    if clocked:
        ports.update(i_clk=ClockSignal(), i_rst=ResetSignal())
    m.submodules[name] = Instance(module, **ports)
    return cell


def encode(layout, value):
    """The bits of ``value`` (a mapping for a struct, a sequence for an array, an int) in ``layout``.

    ``layout`` is the payload layout the block defines (``hw/<block>.py``), so
    no testbench or host program computes a bit offset of its own.
    """
    return layout.const(_plain(value)).as_bits()


def _plain(value):
    # numpy arrays and integers into lists and ints, which Layout.const takes.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return int(value)


def decode(layout, word):
    """Inverse of :func:`encode`: dicts, lists and ints."""
    return _python(data.Const(layout, word))


def _python(const):
    layout = const.shape()
    if isinstance(layout, data.StructLayout):
        return {name: _value(const[name]) for name, _ in layout}
    return [_value(v) for v in const]


def _value(v):
    return _python(v) if isinstance(v, data.Const) else int(v)
