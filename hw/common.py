"""What every block generator shares."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data, wiring

from ..config import EngineConfig

__all__ = ["require_config", "Block", "data_row", "encode", "decode"]


def data_row(c: EngineConfig):
    """One Q, K or V vector: ``head_dim`` signed ``data_bits`` integers."""
    return data.ArrayLayout(signed(c.data_bits), c.head_dim)


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
