"""What every block generator shares."""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data, wiring

from ..config import EngineConfig

__all__ = ["require_config", "Block", "data_row"]


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
