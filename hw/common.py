"""What every block generator shares."""

from __future__ import annotations

from ..config import EngineConfig

__all__ = ["require_config"]


def require_config(component, config):
    """Return ``config`` if it is an :class:`EngineConfig`; otherwise raise TypeError.

    The half-built component is marked as used, so Amaranth does not also warn
    that it was never elaborated.
    """
    if not isinstance(config, EngineConfig):
        component._MustUse__silence = True
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    return config
