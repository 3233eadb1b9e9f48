"""A snapshot of what the tool produces, for showing that a restructuring changed nothing.

Writes into OUT, through the command line only (so the same script runs on any
revision): the Verilog of every block at the default and test presets
(hierarchical, and the engine flat too), ``simulate --json`` on a shipped
SmolLM2 head at the test preset, ``report --json`` at the default preset and
``accuracy --json`` on every shipped attention file. Fields that record time,
host or versions are dropped from the JSON, and the checkout's path reads
``<checkout>``. ``--compare A B`` lists the files that differ between two
snapshots (exit 1 if any).

Run: ``.venv/bin/python bench/snapshot.py OUT`` before and after, then
``.venv/bin/python bench/snapshot.py --compare BEFORE AFTER``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = ["ip_cim", "softmax", "op_cim", "engine", "engine_axi"]
PRESETS = ["default", "test"]
VOLATILE = {"seconds", "elapsed", "wall_s", "time", "host", "hostname", "versions", "version", "python",
            "build_s", "sim_s", "sim_seconds", "golden_s", "timing", "timestamp", "date", "path", "cache", "log",
            "build"}


def _cli(*args, out=None):
    cmd = [sys.executable, "-m", "fusioncim", *args, "-q"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
    return res.stdout


def _scrub(obj):
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(ROOT), "<checkout>")     # where the revision is checked out
    return obj


def _json(out: Path, name: str, text: str):
    (out / name).write_text(json.dumps(_scrub(json.loads(text)), indent=1, sort_keys=True) + "\n")


def take(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    for preset in PRESETS:
        for block in BLOCKS:
            _cli("generate", block, "--config", preset, "--out", str(out / f"{block}-{preset}.v"))
            print(f"generated {block} at {preset}", file=sys.stderr)
        _cli("generate", "engine", "--flat", "--config", preset, "--out", str(out / f"engine-{preset}-flat.v"))
    real = sorted((ROOT / "fusioncim" / "data" / "real").glob("*.npz"))
    smol = [p for p in real if p.name.startswith("smollm2-L00")][0]
    _json(out, "simulate.json", _cli("simulate", "--npz", str(smol), "--heads", "0,1", "--tokens", "48",
                                     "--config", "test", "--sim", "verilator", "--json"))
    print("simulated", file=sys.stderr)
    _json(out, "report.json", _cli("report", "--json"))
    _json(out, "accuracy.json", _cli("accuracy", "--json", *map(str, real)))
    print(f"snapshot in {out}", file=sys.stderr)


def compare(a: Path, b: Path) -> int:
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    diff = [n for n in names if not ((a / n).exists() and (b / n).exists()
                                      and filecmp.cmp(a / n, b / n, shallow=False))]
    for n in names:
        print(f"{'DIFFERS' if n in diff else 'same   '} {n}")
    print(f"{len(names) - len(diff)} of {len(names)} files identical")
    return 1 if diff else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, help="folder to write the snapshot into")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare two snapshots")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    if not args.out:
        ap.error("give OUT or --compare A B")
    take(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
