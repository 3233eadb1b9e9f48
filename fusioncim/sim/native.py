"""The native simulation path: a Verilator model driven by a C++ harness, no Python in the cycle loop.

cocotb stays the regression's cycle-by-cycle check (``tb/engine_tests.py``);
for long workloads (a causal head of thousands of tokens is millions of
cycles) ``fusioncim simulate`` can run the same host program through
``tb/native_main.cpp`` instead. The harness drives the program's beats with
their stall gaps exactly as the cocotb testbench does and writes every output
word, the counters, the error flags and the cycles taken; this module
compares them with golden element by element and counter by counter (the
same functions the cocotb test uses), so both paths give the same record.

The model is built once per design in ``<cache>/rtl/engine-<hash>-native``
(compiled with ``-O2`` by default: slower to build than the cocotb model's
``-O0``, faster to run), under the same lock and stamp rules as
:mod:`fusioncim.sim.rtlsim`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import verilator
from ..core.counters import ENGINE_COUNTERS
from ..ip.generate import verilog_text
from .program import SINK, native_header
from ..core import cache
from .rtlsim import SimTimeout, build_dir, build_lock, cached_build, config_json

__all__ = ["build", "run", "available"]

RECIPE = "2: -O2, harness, counters and program headers"

ONE_FILE = []
"""The native model stays split into compile units (``rtlsim.ONE_FILE`` is the cocotb models' one-unit
recipe, which ``bench/verilator_split.py --native`` tries here)."""


def _harness():
    # A file of the fusioncim.tb package (tb/ in a checkout), found as package data: the simulation
    # layer does not import the testbenches, which import it.
    from importlib import resources
    return Path(str(resources.files("fusioncim.tb").joinpath("native_main.cpp")))


def build(cfg, *, opt="-O2", jobs=None):
    """Build (unless an identical build exists) the native model of the engine for ``cfg``; returns the binary."""
    out = build_dir("engine", cfg, "native")
    text = verilog_text("engine", cfg)
    harness = _harness().read_text()
    digest = hashlib.sha256((text + harness + native_header() + RECIPE + opt + ",".join(ENGINE_COUNTERS)).encode()
                            ).hexdigest()
    cached_build(out, digest, lambda folder: _build(folder, cfg, text, harness, opt, jobs), product="engine_native")
    return out / "engine_native"


def _build(out, cfg, text, harness, opt, jobs):
    (out / "engine.v").write_text(text)
    (out / "config.json").write_text(config_json(cfg))
    (out / "fusioncim_counters.h").write_text(
        "#define FUSIONCIM_COUNTERS(X) " + " ".join(f"X({n})" for n in ENGINE_COUNTERS) + "\n")
    (out / "fusioncim_program.h").write_text(native_header())
    (out / "native_main.cpp").write_text(harness)
    verilator.pch_workaround(out, "Vengine")
    env = verilator.setup_env(dict(os.environ))
    # Split into compile units, unlike the cocotb models (rtlsim.ONE_FILE): at -O2 one unit built the default
    # engine in 66.5 s against 47.0 split across two cores (bench/verilator_split.py --native; the test
    # preset's, 11.1 s against 15.9, is the other way round).
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(jobs or os.cpu_count() or 1), *ONE_FILE,
           "--top-module", "engine", "--prefix", "Vengine", "-o", "engine_native", "-Mdir", str(out),
           "-CFLAGS", opt, "-MAKEFLAGS", f"OPT_FAST={opt} OPT_SLOW=-O0",
           str(verilator.waiver_file(out, "engine.v")), str(out / "engine.v"), str(out / "native_main.cpp")]
    with open(out / "build.log", "w") as log:
        done = subprocess.run(cmd, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
    if done.returncode != 0 or not (out / "engine_native").exists():
        tail = (out / "build.log").read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"the native model did not build (exit {done.returncode}): {' | '.join(tail)}")


def run(cfg, planned, program, *, timeout=None):
    """Run the host program ``program`` (written from ``planned``) on the native model.

    Returns ``(records, observed, seconds)``: per workload the RTL's counters, error flags and wall cycles;
    the output words of each workload; and the seconds the harness ran (the simulation only).
    """
    from .rtlsim import RUN_TIMEOUT
    from .checks import cycle_budget          # not tb.engine_tests, which imports cocotb
    binary = build(cfg)
    work = Path(program).parent
    budgets = work / "budgets.txt"
    budgets.write_text("".join(f"{cycle_budget(p.host)}\n" for p in planned))
    result = work / "native-results.txt"
    t = time.perf_counter()
    try:
        with cache.locked(build_lock(binary.parent), shared=True):        # never evicted while it runs
            done = subprocess.run([str(binary), str(program), str(budgets), str(result)], capture_output=True,
                                  text=True, timeout=RUN_TIMEOUT if timeout is None else timeout)
    except subprocess.TimeoutExpired:
        raise SimTimeout(f"the native model ran past {timeout or RUN_TIMEOUT:.0f} s and was killed "
                         f"(FUSIONCIM_SIM_TIMEOUT)") from None
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"the native model failed (exit {done.returncode}): {done.stderr.strip()}")
    records, observed = [], []
    for line in result.read_text().splitlines():
        kind, *rest = line.split()
        if kind == "workload":
            records.append({"wall_cycles": int(rest[1]), "err": int(rest[2]), "rtl": {}})
            observed.append([])
        elif kind == "counter":
            records[-1]["rtl"][rest[0]] = int(rest[1])
        elif kind == SINK:
            observed[-1].append(int(rest[0], 16))
    return records, observed, seconds


def available():
    """None if the native path can build here, else why not."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return "no C++ compiler"
    return None

