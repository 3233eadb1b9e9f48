"""Flat against hierarchical netlists, in one run: Verilog size, Verilator build, simulation speed, Yosys area.

For each config (the default engine, 16 rows x d = 64, and a 16 x 128 engine),
both netlists of the same design are measured one after the other on this
machine, so the ratios are fair even when the machine is noisy:

* Verilog: bytes, lines and modules, and the seconds to convert (Amaranth and
  Yosys's Verilog writer, no cache);
* Verilator build: seconds from a clean build folder to a runnable model
  (``rtlsim.build``, the regression's recipe), split into Verilator's own
  conversion and the C++ compile as Verilator's report gives them;
* simulation speed: cycles per second of the demo workload (two SmolLM2
  heads, 256 tokens) through cocotb, from cocotb's own test time (the
  simulation and the testbench; without the build, the Verilog and the golden
  model);
* the native harness (hierarchical only): its ``-O2`` build, and cycles per
  second on a causal head of 2,048 random tokens, checked bit-exact;
* Yosys area: seconds and peak memory of ``synth.area.estimate`` in a fresh
  process (the Yosys child's peak resident set), and the two results side by
  side: transistors, flip-flops, µm² at 45 nm, estimated clock.

Flat synthesis of the 16 x 128 engine ran over 15 minutes and 8 GB before this
work; ``--skip-flat-area 16x128`` (the default) leaves it out, ``--skip-flat-area none`` runs it.

Run: ``.venv/bin/python bench/build_speed.py [--configs default,16x128] [--no-sim] [--json FILE]``.
The table in docs/engine.md ("Build speed") comes from this command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fusioncim.ip import generate
from fusioncim.sim import rtlsim, simulate, workload
from fusioncim.core.config import PRESETS

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"default": PRESETS["default"], "16x128": PRESETS["default"].replace(head_dim=128),
           "test": PRESETS["test"]}      # "test": a quick run of this script itself
DEMO = {"kind": "npz", "path": str(ROOT / "fusioncim/data/real/smollm2-L12-T256.npz"), "heads": [0, 1],
        "mode": "prefill"}

_AREA = """
import json, resource, sys
from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import estimate
r = estimate("engine", EngineConfig(**json.loads(sys.argv[1])), flat=sys.argv[2] == "flat", cache=False)
r["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(r))
"""


def verilog(cfg, flat):
    t = time.perf_counter()
    text = generate.convert("engine", cfg, flat=flat)
    return {"bytes": len(text), "lines": text.count("\n"), "modules": len(re.findall(r"^module ", text, re.M)),
            "convert_s": round(time.perf_counter() - t, 1)}


def build(cfg, flat, folder):
    os.environ["FUSIONCIM_BUILD"] = str(folder)
    t = time.perf_counter()
    out = rtlsim.build("engine", cfg, "verilator", flat=flat)
    seconds = time.perf_counter() - t
    log = (out / "build.log").read_text(errors="replace")
    m = re.search(r"Walltime ([0-9.]+) s \(elab=([0-9.]+), cvt=([0-9.]+), bld=([0-9.]+)\)", log)
    # Verilator's own report covers its conversion; the rest is the C++ compile and link (make).
    parts = {"verilator_s": float(m.group(3)) + float(m.group(2))} if m else {}
    if parts:
        parts["cxx_s"] = round(seconds - parts["verilator_s"], 1)
    cpp = sum(f.stat().st_size for f in out.glob("*.cpp"))
    return {"build_s": round(seconds, 1), "cpp_mb": round(cpp / 1e6, 1), **parts}


def sim_config(cfg):
    # The config the demo workload runs on (fitted to its head_dim and length).
    return workload.config_for_spec(cfg, DEMO)


def speed(cfg, flat):
    ecfg = sim_config(cfg)
    planned = simulate.plan(ecfg, [DEMO], seed=1)
    results, _, _, failed, seconds = simulate.run_workloads(ecfg, [DEMO], planned=planned, flat=flat)
    r = results[0]
    assert not failed and r["mismatches"] == 0 and not r["errors"], "not bit-exact"
    cycles = r["rtl"]["cycles"]
    return {"cycles": cycles, "sim_s": round(seconds, 1), "cycles_per_s": round(cycles / seconds)}


def native_speed(cfg, folder, tokens=2048):
    """The native harness: its -O2 build, and a causal head of ``tokens`` random tokens (one head, every query)."""
    from fusioncim.sim import native
    os.environ["FUSIONCIM_BUILD"] = str(folder)
    spec = {"kind": "random", "heads": 1, "kv_heads": 1, "queries": tokens, "keys": tokens, "causal": True,
            "seed": 7, "name": f"causal-{tokens}"}
    ecfg = cfg.fit(cfg.head_dim, tokens)
    t = time.perf_counter()
    native.build(ecfg)
    built = time.perf_counter() - t
    planned = simulate.plan(ecfg, [spec], seed=1)
    results, _, _, failed, seconds = simulate.run_workloads(ecfg, [spec], planned=planned, native=True)
    r = results[0]
    assert not failed and r["mismatches"] == 0 and not r["errors"], "not bit-exact"
    return {"build_s": round(built, 1), "tokens": tokens, "cycles": r["rtl"]["cycles"],
            "wall_cycles": r["wall_cycles"], "run_s": round(seconds, 2),
            "cycles_per_s": round(r["wall_cycles"] / seconds), "elements": r["elements"]}


def area(cfg, flat):
    from dataclasses import asdict
    done = subprocess.run([sys.executable, "-c", _AREA, json.dumps(asdict(cfg)), "flat" if flat else "hier"],
                          capture_output=True, text=True, timeout=7200)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    r = json.loads(done.stdout)
    return {k: r[k] for k in ("seconds", "peak_mb", "transistors", "flip_flops", "area_um2", "clock_mhz")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="default,16x128")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulation-speed runs")
    ap.add_argument("--skip-flat-area", default="16x128", help="configs whose flat synthesis is not run ('none')")
    ap.add_argument("--skip-flat-build", default="", help="configs whose flat Verilator build is not run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    table = {}
    with tempfile.TemporaryDirectory(prefix="fusioncim-build-speed-") as tmp:
        for name in args.configs.split(","):
            cfg = CONFIGS[name]
            for form in ("hier", "flat"):
                flat = form == "flat"
                row = {"verilog": verilog(cfg, flat)}
                print(f"{name} {form} verilog {row['verilog']}", flush=True)
                if not (flat and name in args.skip_flat_build.split(",")):
                    row["build"] = build(sim_config(cfg) if not args.no_sim else cfg, flat,
                                         Path(tmp) / f"{name}-{form}")
                    print(f"{name} {form} build {row['build']}", flush=True)
                    if not args.no_sim:
                        row["sim"] = speed(cfg, flat)
                        print(f"{name} {form} sim {row['sim']}", flush=True)
                if not flat and not args.no_sim:
                    row["native"] = native_speed(cfg, Path(tmp) / f"{name}-native")
                    print(f"{name} {form} native {row['native']}", flush=True)
                if not (flat and name in args.skip_flat_area.split(",")):
                    row["area"] = area(cfg, flat)
                    print(f"{name} {form} area {row['area']}", flush=True)
                table[f"{name}/{form}"] = row
    print()
    print(f"{'design':<15} {'Verilog MB':>10} {'modules':>7} {'build s':>8} {'cycles/s':>9} {'Yosys s':>8} "
          f"{'peak MB':>8} {'transistors':>12} {'flip-flops':>10} {'mm2':>7} {'MHz':>6}")
    for key, row in table.items():
        v, b, s, a = row["verilog"], row.get("build", {}), row.get("sim", {}), row.get("area", {})
        print(f"{key:<15} {v['bytes'] / 1e6:>10.2f} {v['modules']:>7} {b.get('build_s', '-'):>8} "
              f"{s.get('cycles_per_s', '-'):>9} {a.get('seconds', '-'):>8} {round(a['peak_mb']) if a.get('peak_mb') else '-':>8} "
              f"{a.get('transistors', '-'):>12} {a.get('flip_flops', '-'):>10} "
              f"{round(a['area_um2'] / 1e6, 3) if a.get('area_um2') else '-':>7} {round(a.get('clock_mhz', 0)) or '-':>6}")
    for key, row in table.items():
        n = row.get("native")
        if n:
            print(f"{key}: native harness (-O2 build {n['build_s']} s): causal head of {n['tokens']} tokens, "
                  f"{n['wall_cycles']:,} cycles in {n['run_s']} s = {n['cycles_per_s']:,} cycles/s, bit-exact, "
                  f"counters equal")
        b = row.get("build", {})
        if "verilator_s" in b:
            print(f"{key}: Verilator build {b['build_s']} s = {b['verilator_s']:.1f} s Verilator + "
                  f"{b['cxx_s']:.1f} s C++ ({b['cpp_mb']} MB of C++)")
    for name in args.configs.split(","):
        h, f = table.get(f"{name}/hier", {}).get("area"), table.get(f"{name}/flat", {}).get("area")
        if h and f and "seconds" in h and "seconds" in f:
            print(f"{name}: Yosys {f['seconds'] / h['seconds']:.1f}x faster hierarchical; transistors "
                  f"{h['transistors'] / f['transistors'] - 1:+.2%}, flip-flops {h['flip_flops'] - f['flip_flops']:+d}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
