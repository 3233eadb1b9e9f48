"""An installed wheel works as well as a checkout: data through package resources, no path into the source tree.

The wheel is built offline (setuptools and wheel from the dev extra), installed
into a fresh virtual environment whose only link to this one is the folder of
installed dependencies, and run from another folder.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from fusioncim.sim import rtlsim

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # -v shows the build backend's own output, where setuptools prints its warnings about pyproject.toml.
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w",
                            str(tmp / "dist"), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("fusioncim-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # A pure-Python wheel installs by unpacking it into site-packages. (pip
    # install --prefix run from this environment would first uninstall this
    # environment's own fusioncim.)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # The dependencies (numpy, amaranth, cocotb, ...) from this environment; fusioncim itself from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return venv / "bin" / "python", elsewhere, build.stdout + build.stderr


def test_packaging_gives_no_warnings(installed):
    # Our pyproject.toml gave setuptools deprecation warnings (the license table) and "package would be
    # ignored" for the data folders; pip's own notes ("byte-compiling is disabled") are not ours.
    warnings = [line.strip() for line in installed[2].splitlines()
                if "Warning" in line or "!!" in line or "deprecat" in line.lower()]
    assert warnings == []


def _run(installed, *args):
    python, cwd, _ = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(python), "-m", "fusioncim", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def test_wheel_imports_from_itself(installed):
    python, cwd, _ = installed
    r = subprocess.run([str(python), "-c", "import fusioncim.hw.engine as e, fusioncim.core.files as f; "
                        "print(e.__file__); print(f.data_path('real'))"], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    engine_file, data = r.stdout.split()
    assert "site-packages" in engine_file and str(ROOT) not in engine_file
    assert "site-packages" in data and Path(data, "smollm2-L12-T256.npz").exists()


def test_installed_report(installed):
    r = _run(installed, "report", "--workload", "llama3-8b-prefill-2048", "--json")
    assert r.returncode == 0, r.stderr
    (doc,) = json.loads(r.stdout)
    assert doc["summary"]["energy_ratio"] > 1
    assert "smollm2-L12-T2048.npz" in doc["patterns"]["source"]        # the shipped rates file was found


@pytest.mark.skipif(bool(rtlsim.available("icarus")), reason="needs Icarus")
def test_installed_simulate(installed):
    r = _run(installed, "simulate", "--config", "test", "--sim", "icarus", "--queries", "6", "--heads", "1",
             "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bit_exact"] and doc["mismatching_elements"] == 0
