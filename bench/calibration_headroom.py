"""How wide the static scales should be: accuracy against the calibration's headroom.

Static scales (``fusioncim calibrate``) widen every calibrated range by a
headroom factor before use. Too little and values beyond the range saturate
(clipping); too much and every other value loses resolution. This prints, for
each headroom, the engine's per-head error (median, max and where) and the
share of K and V elements clipped, with the shipped calibration of each
model, on attention files of another text.

Run: ``.venv/bin/python bench/calibration_headroom.py [--headroom 1,1.1,1.2] [FILE.npz ...]``
(default files: ``data/models/*.npz`` from ``make real-data``, else the shipped subset in
fusioncim/data/real).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import time

import numpy as np

from fusioncim.accuracy import heads as accuracy, attnfile, calibration
from fusioncim.core.config import PRESETS
from fusioncim.core.files import data_path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--headroom", default="1.0,1.1,1.2,1.3,1.45")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob("data/models/*.npz")) or sorted(map(str, data_path("real").glob("*.npz")))
    atts = [attnfile.load(f) for f in files]
    models = sorted({a.model for a in atts})
    print(f"{len(files)} files; calibrations: "
          + "; ".join(f"{m}: {calibration.load(calibration.shipped(m)).source}" for m in models))
    print(f"{'model':<8} {'headroom':>8} {'median':>7} {'max':>7} {'worst':>8} {'K clipped':>10} {'V clipped':>10}")
    for m in models:
        shipped = calibration.load(calibration.shipped(m))
        for h in (float(x) for x in args.headroom.split(",")):
            cal = dataclasses.replace(shipped, headroom=h)
            t0 = time.perf_counter()
            r = []
            for a in atts:
                if a.model == m:
                    r += accuracy.evaluate(a, PRESETS["default"], stats=cal.layer(a.layer))
            e = np.array([x["rel_l2"] for x in r])
            w = r[int(e.argmax())]
            print(f"{m:<8} {h:>8.2f} {100 * np.median(e):>6.2f}% {100 * e.max():>6.2f}% "
                  f"{'L%d h%d' % (w['layer'], w['head']):>8} "
                  f"{100 * np.mean([x['k_clipped_frac'] for x in r]):>9.4f}% "
                  f"{100 * np.mean([x['v_clipped_frac'] for x in r]):>9.4f}%   ({time.perf_counter() - t0:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
