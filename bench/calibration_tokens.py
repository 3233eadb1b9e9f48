"""How many calibration tokens static scales need: held-out accuracy and clipping against the token count.

``fusioncim calibrate`` takes the ranges of K and V from the first ``--tokens``
tokens of its texts. This calibrates each model on the first N tokens of the
shipped calibration text (``fusioncim/data/calibration.txt``, in windows of 512,
as ``make calibration`` does) for several N, and prints the engine's per-head
error and the share of K and V elements clipped on attention files of another
text (held out: ``data/models/*.npz`` from ``make real-data``, else the shipped
subset in fusioncim/data/real, both from ``passage.txt``), beside the same
figures for dynamic scales. ``fusioncim calibrate`` warns below the count this
justifies (``fusioncim.accuracy.calibration.MIN_TOKENS``; docs/accuracy.md).

Run: ``.venv/bin/python bench/calibration_tokens.py [--tokens 64,128,...] [--models smollm2,minilm] [FILE.npz ...]``
(needs ``make models``; about 20 s of model loading per count and model).
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


def _figures(atts, model, stats_of):
    r = []
    for a in atts:
        if a.model == model:
            r += accuracy.evaluate(a, PRESETS["default"], stats=stats_of(a))
    e = np.array([x["rel_l2"] for x in r])
    k = np.mean([x.get("k_clipped_frac", 0.0) for x in r])
    v = np.mean([x.get("v_clipped_frac", 0.0) for x in r])
    return np.median(e), e.max(), k, v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--tokens", default="64,128,256,512,1024,2048,4096",
                    help="token counts to calibrate on (4096 and more: the whole text)")
    ap.add_argument("--models", default="smollm2,minilm")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob("data/models/*.npz")) or sorted(map(str, data_path("real").glob("*.npz")))
    atts = [attnfile.load(f) for f in files]
    text = data_path("calibration.txt")
    print(f"held out: {len(files)} files ({', '.join(sorted({a.model for a in atts}))}); calibration text {text.name}")
    print(f"{'model':<8} {'tokens':>6} {'median':>7} {'max':>7} {'K clipped':>10} {'V clipped':>10}")
    for model in args.models.split(","):
        med, mx, _, _ = _figures(atts, model, lambda a: None)
        print(f"{model:<8} {'dynamic':>6} {100 * med:>6.2f}% {100 * mx:>6.2f}%", flush=True)
        for n in (int(x) for x in args.tokens.split(",")):
            t0 = time.perf_counter()
            cal = calibration.calibrate(model, [text], tokens=n, window=512, quiet=True)
            med, mx, k, v = _figures(atts, model, lambda a: cal.layer(a.layer))
            print(f"{model:<8} {cal.tokens:>6} {100 * med:>6.2f}% {100 * mx:>6.2f}% {100 * k:>9.4f}% "
                  f"{100 * v:>9.4f}%   ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
