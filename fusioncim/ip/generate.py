"""Verilog generation for the engine's blocks: ``fusioncim generate BLOCK``.

The module name is the block name; ports follow Amaranth's naming
(``clk``, ``rst``, and ``NAME__payload`` / ``NAME__valid`` / ``NAME__ready``
for streams). The output is deterministic: no source locations are emitted.

The netlist is hierarchical: every repeated cell of an array (``hw.common.Cell``:
an IP-CIM row, an OP-CIM column, a divider column, a softmax row, an
exponent lane) and every block inside the engine is written once as a
module and instantiated where it is used (``hw.common.Hierarchy``), so the
default engine is 1.14 MB of Verilog in 12 modules against 7.62 MB flat
(``bench/build_speed.py``), and Yosys synthesises each distinct module once.
``flat=True`` writes the same design as Amaranth elaborates it for
simulation, every cell inlined, flattened by Yosys into one module: the form
a tool that wants a single module takes, and the reference the equivalence
checks compare against (``tests/test_hierarchy.py`` proves every block's
two forms the same design; ``bench/equiv.py --flat`` at larger configs).

The engine's KV buffer has no initial contents in the Verilog (an SRAM
has none; the host writes every key it uses before the tile that reads it),
which saves the simulators one initialiser per word.

Generated Verilog is cached in ``cache_root()/verilog`` under a hash of the
block, the config, Amaranth's version and the text of every source file of
the generator (``hw/*.py`` and every ``fusioncim`` module they import), so
an edit to the generator is never served stale; converting the default engine
takes about 20 s, reading it back well under one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

from amaranth.back import rtlil

from ..core.config import EngineConfig
from ..core.errors import InputError
from ..core.cache import touch
from ..core.files import atomic_write, cache_root

__all__ = ["BLOCKS", "build", "verilog_text", "write_verilog"]


def _ip_cim(cfg):
    from ..hw.ip_cim import IpCim
    return IpCim(cfg)


def _softmax(cfg):
    from ..hw.softmax import Softmax
    return Softmax(cfg)


def _op_cim(cfg):
    from ..hw.op_cim import OpCim
    return OpCim(cfg)


def _engine(cfg):
    from ..hw.engine import Engine
    return Engine(cfg)


def _engine_axi(cfg):
    from ..hw.axi import EngineAxi
    return EngineAxi(cfg)


BLOCKS = {"ip_cim": _ip_cim, "softmax": _softmax, "op_cim": _op_cim, "engine": _engine, "engine_axi": _engine_axi}
ENGINES = ("engine", "engine_axi")     # the blocks that hold the whole engine (its config rules, its KV SRAM)
_CACHED = frozenset(BLOCKS)        # blocks whose source files are known (a test may register others)


def build(block: str, cfg: EngineConfig):
    """The Amaranth component for ``block`` (one of :data:`BLOCKS`)."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    if not isinstance(cfg, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {cfg!r}")
    cfg.check_buildable(block)
    return BLOCKS[block](cfg)


def generator_sources() -> list:
    """The source files the generated Verilog depends on: ``hw/*.py``, this module, and every
    ``fusioncim`` module they import, followed import by import (so a new import is never missed)."""
    import importlib.util
    from .. import hw
    todo = [(p, "fusioncim.hw") for p in sorted(Path(hw.__file__).resolve().parent.glob("*.py"))]
    todo.append((Path(__file__).resolve(), __package__))
    seen = {}
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen[path] = True
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                spec = _module_spec(name) if name.startswith("fusioncim") else None
                if spec is not None and spec.origin and spec.origin.endswith(".py"):
                    todo.append((Path(spec.origin).resolve(), spec.parent))
    return sorted(seen)


def _module_spec(name):
    # find_spec of "a.b.c" imports "a.b"; a name that is an attribute, not a module, gives None.
    import importlib.util
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """Hash of the generator's own source files (:func:`generator_sources`) and Amaranth's version."""
    import amaranth
    h = hashlib.sha256(amaranth.__version__.encode())
    for f in generator_sources():
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def verilog_path(block: str, cfg: EngineConfig, *, flat=False, prefix="") -> Path:
    """Where the cached Verilog of ``block`` for ``cfg`` lives (it may not exist yet)."""
    key = json.dumps([block, asdict(cfg), generator_digest(), flat] + ([prefix] if prefix else []), sort_keys=True)
    return cache_root() / "verilog" / f"{block}-{hashlib.sha256(key.encode()).hexdigest()[:20]}{'-flat' if flat else ''}.v"


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start a Verilog module name (letters, digits, ``_``; not a digit first), else
    InputError naming the rule."""
    if prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise InputError(f"prefix {prefix!r} must be letters, digits and _ (not a digit first): it starts "
                         f"every module name")
    return prefix


def rtlil_modules(block: str, cfg: EngineConfig, *, flat=False, prefix="") -> list:
    """The RTLIL texts of the design: the block first, then one per distinct cell (none with ``flat``).
    Every module's name starts with ``prefix`` (the top is ``prefix + block``)."""
    from ..hw.common import Hierarchy
    if flat:
        return [rtlil.convert(build(block, cfg), name=prefix + block, emit_src=False)]
    hier = Hierarchy(prefix)
    top = rtlil.convert(build(block, cfg), name=prefix + block, platform=hier, emit_src=False)
    return [top, *hier.modules.values()]


def convert(block: str, cfg: EngineConfig, *, flat=False, prefix="") -> str:
    """Convert ``block`` to Verilog now (no cache): hierarchical, or one flattened module with ``flat``."""
    from amaranth._toolchain.yosys import find_yosys
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil" for text in rtlil_modules(block, cfg, flat=flat, prefix=prefix)]
    # `hierarchy` also checks that every instance names a module that exists, with ports it has.
    script += [f"hierarchy -check -top {prefix}{block}", "proc -nomux -norom"]
    if flat:
        script += ["flatten", "opt_clean -purge"]
    from ..hw.engine import KV_MEMORIES
    for mem in KV_MEMORIES:                  # SRAMs in the design: no initial contents in the Verilog
        script.append(f"delete t:$meminit_v2 r:MEMID=\\{mem} %i")     # the intersection of the two
    script += ["memory_collect", "write_verilog -norename"]
    # The version Amaranth's own Verilog backend requires; its warnings (processes
    # that cannot be written as Verilog) are the ones that backend squashes too.
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def verilog_text(block: str, cfg: EngineConfig, *, cache=True, flat=False, prefix="") -> str:
    """The Verilog of ``block`` for ``cfg``: from the cache, or converted (and cached) now. ``prefix`` starts
    every module name (:func:`check_prefix`), so designs of two configs can sit in one build."""
    check_prefix(prefix)
    if not (cache and block in _CACHED):
        return convert(block, cfg, flat=flat, prefix=prefix)
    path = verilog_path(block, cfg, flat=flat, prefix=prefix)
    try:
        text = path.read_text()
        touch(path)                             # last use, for `fusioncim cache` and the size cap
        return text
    except OSError:
        pass
    text = convert(block, cfg, flat=flat, prefix=prefix)
    try:
        atomic_write(path, lambda f: f.write(text))
    except OSError:
        pass                   # a cache that cannot be written only costs the next run a conversion
    return text


def write_verilog(block: str, cfg: EngineConfig, path, *, flat=False, prefix="") -> Path:
    """Generate and write atomically: on any error no file appears at ``path``."""
    text = verilog_text(block, cfg, flat=flat, prefix=prefix)
    return atomic_write(path, lambda f: f.write(text))
