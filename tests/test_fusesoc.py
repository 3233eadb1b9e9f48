"""generate --fusesoc: the core file's lint target passes under FuseSoC with Verilator, and fails without
the waiver file (so the waivers are what make it pass); the sim target builds with Icarus."""

import os
import re
import subprocess
import sys
from pathlib import Path

from fusioncim.sim import verilator
from fusioncim.ip.fusesoc import core_name

BIN = Path(sys.executable).parent


def _fusesoc(root, target, cwd):
    env = verilator.setup_env(dict(os.environ))
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run([str(BIN / "fusesoc"), "--cores-root", str(root), "run", "--target", target,
                           core_name("engine_axi")], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_fusesoc_core_lints_and_builds(tmp_path):
    core = tmp_path / "core"
    r = subprocess.run([sys.executable, "-m", "fusioncim", "generate", "engine", "--bus", "axi", "--config", "test",
                        "--fusesoc", core], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in core.iterdir()) == ["engine_axi.v", "engine_axi.vlt", "fusioncim_engine_axi.core"]
    assert f"run --target lint {core_name('engine_axi')}" in r.stdout

    lint = _fusesoc(core, "lint", tmp_path)
    assert lint.returncode == 0, lint.stdout[-2000:] + lint.stderr[-2000:]
    assert "--lint-only" in (next((tmp_path / "build").glob("*/lint/*.vc"))).read_text()
    assert "deprecated" not in lint.stderr + lint.stdout

    sim = _fusesoc(core, "sim", tmp_path)
    assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:]

    # The same core without its waiver file fails the lint: the waivers are what make it clean.
    text = (core / "fusioncim_engine_axi.core").read_text()
    (core / "fusioncim_engine_axi.core").write_text(re.sub(r"filesets: \[rtl, waivers\]", "filesets: [rtl]", text))
    (tmp_path / "bare").mkdir()
    bare = _fusesoc(core, "lint", tmp_path / "bare")
    assert bare.returncode != 0 and "%Warning-" in bare.stdout + bare.stderr


def test_fusesoc_option_errors(tmp_path):
    def fc(*args):
        return subprocess.run([sys.executable, "-m", "fusioncim", "generate", "engine", "--config", "test", *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    r = fc("--fusesoc", "x", "--out", "y.v")
    assert r.returncode == 2 and "--out and --fusesoc cannot be used together" in r.stderr
    r = fc("--fusesoc", tmp_path / "no" / "such")
    assert r.returncode == 2 and "does not exist (it is not created)" in r.stderr
    r = subprocess.run([sys.executable, "-m", "fusioncim", "generate", "softmax", "--bus", "axi"], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "--bus axi wraps the engine, not 'softmax'" in r.stderr
    assert list(tmp_path.iterdir()) == []
