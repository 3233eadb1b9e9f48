"""How much each mode's accuracy depends on the calibration text: the shipped calibration against one of
about 200 tokens.

Static scales take K's and V's ranges from the calibration; the per-key mode takes only K's centre and
V's channel shape from it (each key's scale is its own). This evaluates both modes on every layer of the
held-out attention files (``data/models/*.npz`` from ``make real-data``, else the shipped subset in
fusioncim/data/real), once with the shipped calibration (``fusioncim/data/calibration``, 2,739 tokens of
``fusioncim/data/calibration.txt``) and once calibrated on the first ``--tokens`` tokens of that text
alone, and prints the per-head median and worst error of each, the change, and the share of elements
clipped; dynamic scales (no calibration) beside them.

Run: ``.venv/bin/python bench/calibration_dependence.py [--tokens 200] [--models smollm2,minilm] [FILE.npz ...]``
(needs ``make models``; about a minute per model).
"""

from __future__ import annotations

import argparse
import glob
import time

import numpy as np

from fusioncim.accuracy import attnfile, calibration
from fusioncim.accuracy import heads as accuracy
from fusioncim.core.config import PRESETS
from fusioncim.core.files import data_path


def figures(atts, model, cfg, mode, cal):
    """``(median, max, clipped share)`` of ``mode`` over the heads of ``model``'s files with ``cal``."""
    r = []
    for a in atts:
        if a.model == model:
            r += accuracy.evaluate(a, cfg, stats=None if cal is None else cal.layer(a.layer),
                                   per_key=mode == "per-key")
    e = np.array([x["rel_l2"] for x in r])
    clipped = np.mean([x["k_clipped_frac"] + x["v_clipped_frac"] for x in r]) / 2
    return float(np.median(e)), float(e.max()), float(clipped)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--tokens", type=int, default=200, help="tokens of the short calibration (default 200)")
    ap.add_argument("--models", default="smollm2,minilm")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob("data/models/*.npz")) or sorted(map(str, data_path("real").glob("*.npz")))
    atts = [attnfile.load(f) for f in files]
    cfg = PRESETS["per-key"]                    # per-key scales and 7/5-bit LUTs, for every mode alike
    text = data_path("calibration.txt")
    print(f"held out: {len(files)} files; the per-key preset; shipped calibration against the first "
          f"{args.tokens} tokens of {text.name}")
    print(f"{'model':<8} {'mode':<8} {'shipped median / max':>22} {'short median / max':>20} {'median moves':>13} "
          f"{'clipped shipped / short':>24}")
    for model in args.models.split(","):
        t0 = time.perf_counter()
        shipped = calibration.load(calibration.shipped(model))
        short = calibration.calibrate(model, [text], tokens=args.tokens, window=512, quiet=True)
        med, mx, _ = figures(atts, model, cfg, "dynamic", None)
        print(f"{model:<8} {'dynamic':<8} {100 * med:>9.2f}% / {100 * mx:.2f}%  (no calibration)")
        for mode in ("per-key", "static"):
            a, b = figures(atts, model, cfg, mode, shipped), figures(atts, model, cfg, mode, short)
            print(f"{model:<8} {mode:<8} {100 * a[0]:>9.2f}% / {100 * a[1]:.2f}% {100 * b[0]:>9.2f}% / "
                  f"{100 * b[1]:.2f}% {100 * (b[0] - a[0]):>+11.2f} pt {100 * a[2]:>11.4f}% / {100 * b[2]:.4f}%",
                  flush=True)
        print(f"  ({short.tokens} tokens in the short calibration; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
