"""Verilator builds with and without ccache, from empty caches, in one session.

Runs the IP-CIM and softmax Verilator tests (pytest, two workers) twice, each from a fresh cache
folder: first with ``OBJCACHE`` empty (every model build compiles the Verilator runtime itself), then
with ccache (``fusioncim.sim.verilator.setup_env``: the runtime compiled once, then served from the
cache). Prints the wall and CPU seconds of each run and their ratio. What is timed: the pytest runs
whole (Verilog generation, the Verilator builds and the simulations); only the builds differ.

Run: ``.venv/bin/python bench/ccache_builds.py``
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_ip_cim_rtl.py", "tests/test_softmax_rtl.py", "-k", "verilator"]


def _run(objcache, tmp):
    env = dict(os.environ)
    env.pop("CCACHE_DIR", None)
    if objcache:
        env.pop("OBJCACHE", None)
    else:
        env["OBJCACHE"] = ""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", *TESTS,
                          "--basetemp", str(tmp)], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise SystemExit(f"the tests failed:\n{res.stdout[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    if not shutil.which("ccache"):
        raise SystemExit("ccache is not installed (make install adds the Debian package)")
    with tempfile.TemporaryDirectory(prefix="fusioncim-ccache-") as tmp:
        off = _run(False, Path(tmp) / "off")
        on = _run(True, Path(tmp) / "on")
    print(f"{'':14}{'wall s':>8}{'CPU s':>8}")
    print(f"{'without ccache':14}{off[0]:8.1f}{off[1]:8.1f}")
    print(f"{'with ccache':14}{on[0]:8.1f}{on[1]:8.1f}")
    print(f"{'ratio':14}{on[0] / off[0]:8.2f}{on[1] / off[1]:8.2f}")


if __name__ == "__main__":
    main()
