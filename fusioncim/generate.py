"""Verilog generation for the engine's blocks: ``fusioncim generate BLOCK``.

The module name is the block name; ports follow Amaranth's naming
(``clk``, ``rst``, and ``NAME__payload`` / ``NAME__valid`` / ``NAME__ready``
for streams). The output is deterministic: no source locations are emitted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from amaranth.back import verilog

from .config import EngineConfig

__all__ = ["BLOCKS", "build", "verilog_text", "write_verilog"]


def _ip_cim(cfg):
    from .hw.ip_cim import IpCim
    return IpCim(cfg)


def _softmax(cfg):
    from .hw.softmax import Softmax
    return Softmax(cfg)


def _op_cim(cfg):
    from .hw.op_cim import OpCim
    return OpCim(cfg)


def _engine(cfg):
    from .hw.engine import Engine
    return Engine(cfg)


BLOCKS = {"ip_cim": _ip_cim, "softmax": _softmax, "op_cim": _op_cim, "engine": _engine}


def build(block: str, cfg: EngineConfig):
    """The Amaranth component for ``block`` (one of :data:`BLOCKS`)."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    if not isinstance(cfg, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {cfg!r}")
    return BLOCKS[block](cfg)


def verilog_text(block: str, cfg: EngineConfig) -> str:
    return verilog.convert(build(block, cfg), name=block, emit_src=False)


def write_verilog(block: str, cfg: EngineConfig, path) -> Path:
    """Generate and write atomically: on any error no file appears at ``path``."""
    text = verilog_text(block, cfg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".v", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
