"""Verilator builds of the engine with the model as one compile unit (the regression's recipe) against split.

For each config, the cocotb build of ``rtlsim.build`` (ports-only VPI, ``-O0``) is made twice from
an empty build folder, once with ``rtlsim.ONE_FILE`` and once without it (Verilator's default split),
one right after the other, so that their ratio is fair on a noisy machine. ccache is off for both
(``CCACHE_DISABLE``), so each figure includes compiling Verilator's runtime (the same files in both).
The time is the build from the Verilog (generated and cached before either is timed): Verilator's
conversion, the C++ compile (``make -j`` with one job per core) and the link.

``--native`` measures the native harness's ``-O2`` build (``fusioncim/sim/native.py``) the same way.

Run: ``.venv/bin/python bench/verilator_split.py [--configs test,default] [--native] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from fusioncim.core.config import PRESETS
from fusioncim.ip import generate
from fusioncim.sim import native, rtlsim

UNIT = list(rtlsim.ONE_FILE)         # the one-unit flags (the cocotb models' recipe)


def build_seconds(cfg, one_file, folder, harness=False):
    os.environ["FUSIONCIM_BUILD"] = str(folder)
    module = native if harness else rtlsim
    saved = module.ONE_FILE
    module.ONE_FILE = list(UNIT) if one_file else []
    try:
        t = time.perf_counter()
        out = native.build(cfg).parent if harness else rtlsim.build("engine", cfg, "verilator")
        seconds = time.perf_counter() - t
    finally:
        module.ONE_FILE = saved
    # The model's object files: one (Vtop__ALL.o, from a file that includes the rest) or one per C++ file.
    return {"build_s": round(seconds, 1), "compile_units": len(list(out.glob("V*.o")))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="test,default", help="presets, comma-separated (default: test,default)")
    ap.add_argument("--native", action="store_true", help="the native harness's -O2 build instead of cocotb's model")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    os.environ["CCACHE_DISABLE"] = "1"
    results = {}
    for name in args.configs.split(","):
        cfg = PRESETS[name]
        generate.verilog_text("engine", cfg)       # the Verilog cached first: neither build pays its generation
        with tempfile.TemporaryDirectory(prefix="fusioncim-split-") as tmp:
            one = build_seconds(cfg, True, Path(tmp) / "one", args.native)
            split = build_seconds(cfg, False, Path(tmp) / "split", args.native)
        results[name] = {"one_file": one, "split": split, "split_over_one": round(split["build_s"] / one["build_s"], 2)}
        print(f"{name:>8}: one unit {one['build_s']:6.1f} s ({one['compile_units']} object file of the model), "
              f"split {split['build_s']:6.1f} s ({split['compile_units']} object files): split takes "
              f"{results[name]['split_over_one']:.2f}x as long", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
