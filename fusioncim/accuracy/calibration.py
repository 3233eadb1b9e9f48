"""Static KV-cache scales: calibrated once on a text, used for every sequence after (docs/numerics.md §1).

``fusioncim calibrate MODEL --text FILE --out scales.npz`` runs the model on
the calibration text and keeps, per layer and KV head, K's per-channel centre
and the K and V ranges (:class:`fusioncim.accuracy.quant.KVStats`). With them
the front end quantises each key as it arrives, from nothing that comes later.

The file (``.npz``, read with ``allow_pickle=False``):

=============  =====================  =========================================
key            shape / dtype          meaning
=============  =====================  =========================================
``format``     () str                 ``"fusioncim-calibration 1"``
``model``      () str                 the model's short name (``smollm2``, ...)
``heads``      () int                 query heads per layer
``tokens``     () int                 calibration tokens
``source``     () str                 the calibration text and model
``headroom``   () float               every range is widened by this factor when used
``k_min`` ..   [layers, Hkv, d] float one array per ``KVStats.FIELDS``
=============  =====================  =========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.files import atomic_write, data_path, read_npz
from .quant import KVStats, kv_stats

__all__ = ["Calibration", "CalibrationError", "FORMAT", "calibrate", "load", "save", "shipped"]

FORMAT = "fusioncim-calibration 1"
SCALARS = ("format", "model", "heads", "tokens", "source", "headroom")
HEADROOM = 1.2
# Below this many calibration tokens held-out accuracy falls and clipping grows (bench/calibration_tokens.py,
# docs/accuracy.md): against the shipped text's 2,739 tokens, SmolLM2's median error on passage.txt is 1.86%
# at 512 tokens, 1.62% at 1,024 and 1.61% at 2,739; MiniLM's 1.12%, 0.92% and 0.91%; clipping falls from
# 15-40x the whole text's at 512 tokens to 3-8x at 1,024. `fusioncim calibrate` warns below it.
MIN_TOKENS = 1024
"""Default widening of the calibrated ranges: the least error on fusioncim/data/passage.txt with the
shipped calibration (docs/accuracy.md, "Static scales"); wider ranges lose resolution, narrower ones clip."""
SHIPPED = data_path("calibration")


class CalibrationError(InputError):
    """A calibration file that is unreadable, malformed, or made for other data."""


@dataclass(frozen=True)
class Calibration:
    model: str
    heads: int
    tokens: int
    source: str
    layers: tuple          # one KVStats per layer, as measured
    headroom: float = HEADROOM

    @property
    def kv_heads(self):
        return self.layers[0].k_min.shape[0]

    @property
    def head_dim(self):
        return self.layers[0].k_min.shape[1]

    def check(self, model, layers, heads, kv_heads, head_dim, where=""):
        """Raise :class:`CalibrationError` unless this file was made for data of this shape."""
        what = f"calibration {where}" if where else "calibration file"
        fix = f"run `fusioncim calibrate {model} --text FILE --out scales.npz`"
        if model and self.model != model:
            raise CalibrationError(f"{what} is for model {self.model!r}, not {model!r}; {fix}")
        for name, mine, theirs in (("layers", len(self.layers), layers), ("query heads", self.heads, heads),
                                   ("KV heads", self.kv_heads, kv_heads), ("head_dim", self.head_dim, head_dim)):
            if theirs is not None and mine != theirs:
                raise CalibrationError(f"{what} has {name} {mine}, the data has {theirs}; {fix}")

    def layer(self, i, where=""):
        """The statistics the front end uses for layer ``i``: the measured ranges times the headroom."""
        if not 0 <= i < len(self.layers):
            raise CalibrationError(f"calibration {where} has layers 0 to {len(self.layers) - 1}, not layer {i}")
        return self.layers[i].widened(self.headroom)


DEFAULT_TEXT = data_path("calibration.txt")
"""The shipped calibration's text: our own prose, which neither ``fusioncim/data/passage.txt`` nor
``fusioncim/data/texts`` (the evaluated texts) overlaps."""


def check_headroom(headroom):
    if not (isinstance(headroom, (int, float)) and math.isfinite(headroom) and headroom >= 1):
        raise CalibrationError(f"headroom must be a number >= 1 (the factor the calibrated ranges are widened by), "
                               f"not {headroom!r}")
    return float(headroom)


def calibrate(model_name, texts, *, tokens=4096, window=512, headroom=HEADROOM, progress=None, quiet=False):
    """:class:`Calibration` of ``model_name`` on the first ``tokens`` tokens of each text file.

    The texts are cut into windows of ``window`` tokens, each run as its own
    sequence; the ranges are the largest seen in any window, the centres the mean
    over all keys (:meth:`KVStats.merge`).
    """
    from . import extract
    headroom = check_headroom(headroom)
    texts = [texts] if isinstance(texts, (str, Path)) else list(texts)
    stats, keys, heads = None, 0, 0
    for kv in extract.capture_windows(model_name, texts, tokens=tokens, window=window, progress=progress,
                                          quiet=quiet):
        st = [kv_stats(k, v) for k, v, _ in kv]
        stats = st if stats is None else [a.merge(b) for a, b in zip(stats, st)]
        keys += kv[0][0].shape[1]
        heads = kv[0][2]
    names = ", ".join(Path(t).name for t in texts)
    return Calibration(model=model_name, heads=heads, tokens=keys,
                       source=f"{keys} tokens of {names} in windows of {window}", layers=tuple(stats),
                       headroom=headroom)


def save(path, cal: Calibration):
    """Write ``cal`` atomically to ``path``."""
    arrays = {"format": np.array(FORMAT), "model": np.array(cal.model), "heads": np.array(cal.heads),
              "tokens": np.array(cal.tokens), "source": np.array(cal.source), "headroom": np.array(cal.headroom)}
    for f in KVStats.FIELDS:
        arrays[f] = np.stack([getattr(s, f) for s in cal.layers])
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), binary=True)


def load(path) -> Calibration:
    """Read and validate a calibration file; :class:`CalibrationError` in one line if it is bad."""
    path = Path(path)
    data = read_npz(path, CalibrationError, "calibration file", "calibration arrays (make one with "
                    "`fusioncim calibrate`)")
    if str(data.get("format", "")) != FORMAT:
        raise CalibrationError(f"{path}: not a calibration file (format {str(data.get('format', 'missing'))!r}, "
                               f"expected {FORMAT!r}); make one with `fusioncim calibrate`")
    missing = [n for n in SCALARS + KVStats.FIELDS if n not in data]
    if missing:
        raise CalibrationError(f"{path}: missing array '{missing[0]}'")
    shape = data["k_min"].shape
    for f in KVStats.FIELDS:
        a = data[f]
        if a.dtype.kind != "f" or a.ndim != 3 or a.shape != shape or 0 in a.shape:
            raise CalibrationError(f"{path}: '{f}' must be a float [layers, kv_heads, head_dim] array shaped "
                                   f"like k_min {shape}, not {a.dtype} {a.shape}")
        if not np.all(np.isfinite(a)):
            raise CalibrationError(f"{path}: '{f}' holds NaN or infinite values")
        if f == "v_amax_mean" and np.any(a < 0):
            raise CalibrationError(f"{path}: '{f}' is a range and must not be negative")
    for lo, hi in KVStats.BOUNDS:
        if np.any(data[lo] > data[hi]):
            raise CalibrationError(f"{path}: '{lo}' exceeds '{hi}'")
    heads, tokens = data["heads"], data["tokens"]
    for name, a in (("heads", heads), ("tokens", tokens)):
        if a.shape != () or a.dtype.kind not in "iu" or int(a) < 1:
            raise CalibrationError(f"{path}: '{name}' must be a positive integer")
    hr = data["headroom"]
    if hr.shape != () or hr.dtype.kind != "f" or not np.isfinite(hr) or float(hr) < 1:
        raise CalibrationError(f"{path}: 'headroom' must be a scalar float >= 1")
    if int(heads) % shape[1]:
        raise CalibrationError(f"{path}: {int(heads)} query heads are not a multiple of {shape[1]} KV heads")
    layers = tuple(KVStats(**{f: data[f][i].astype(np.float64) for f in KVStats.FIELDS}, keys=int(tokens))
                   for i in range(shape[0]))
    return Calibration(model=str(data["model"]), heads=int(heads), tokens=int(tokens), source=str(data["source"]),
                       layers=layers, headroom=float(hr))


def shipped(model):
    """Path of the calibration shipped for ``model`` (``make calibration``, from :data:`DEFAULT_TEXT`), or None."""
    p = SHIPPED / f"{model}.npz"
    return p if p.is_file() else None
