"""Verilator builds of the engine with the model as one compile unit (the regression's recipe) against split.

For each config, the cocotb build of ``rtlsim.build`` (ports-only VPI, ``-O0``) is made twice from
an empty build folder, once with ``rtlsim.ONE_FILE`` and once without it (Verilator's default split),
one right after the other, so that their ratio is fair on a noisy machine. ccache is off for both
(``CCACHE_DISABLE``), so each figure includes compiling Verilator's runtime (the same files in both).
The time is the whole build: Verilog generation, Verilator's conversion, the C++ compile (``make -j``
with one job per core) and the link.

Run: ``.venv/bin/python bench/verilator_split.py [--configs test,default] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from fusioncim.core.config import PRESETS
from fusioncim.sim import rtlsim


def build_seconds(cfg, one_file, folder):
    os.environ["FUSIONCIM_BUILD"] = str(folder)
    saved = rtlsim.ONE_FILE
    rtlsim.ONE_FILE = saved if one_file else []
    try:
        t = time.perf_counter()
        out = rtlsim.build("engine", cfg, "verilator")
        seconds = time.perf_counter() - t
    finally:
        rtlsim.ONE_FILE = saved
    # The model's object files: one (Vtop__ALL.o, from a file that includes the rest) or one per C++ file.
    return {"build_s": round(seconds, 1), "compile_units": len(list(out.glob("Vtop*.o")))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="test,default", help="presets, comma-separated (default: test,default)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    os.environ["CCACHE_DISABLE"] = "1"
    results = {}
    for name in args.configs.split(","):
        cfg = PRESETS[name]
        with tempfile.TemporaryDirectory(prefix="fusioncim-split-") as tmp:
            one = build_seconds(cfg, True, Path(tmp) / "one")
            split = build_seconds(cfg, False, Path(tmp) / "split")
        results[name] = {"one_file": one, "split": split, "split_over_one": round(split["build_s"] / one["build_s"], 2)}
        print(f"{name:>8}: one unit {one['build_s']:6.1f} s ({one['compile_units']} object file of the model), "
              f"split {split['build_s']:6.1f} s ({split['compile_units']} object files): split takes "
              f"{results[name]['split_over_one']:.2f}x as long", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
