"""The attention-tensor file format (``.npz``) that accuracy runs and RTL runs read.

One file holds one attention layer:

==========  =================  ==============================================
key         shape / dtype      meaning
==========  =================  ==============================================
``q``       [H, Lq, d] float   queries after positional encoding (RoPE)
``k``       [Hkv, Lk, d] float keys after positional encoding; H % Hkv == 0
``v``       [Hkv, Lk, d] float values
``out``     [H, Lq, d] float   optional: the model's own attention output
``causal``  () bool            optional: causal masking (default: the config's)
``scale``   () float           optional: logit scale (default 1/sqrt(d))
``source``  () str             optional: where the tensors came from
``model``   () str             optional: the model's short name (``fusioncim extract``'s MODEL)
``layer``   () int             optional: the layer index in that model
==========  =================  ==============================================

Queries are the last ``Lq`` tokens of the ``Lk``-token sequence. Files are read
with ``allow_pickle=False``; a bad file raises :class:`AttnFileError` with one
line that says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.files import atomic_write, read_npz

__all__ = ["AttnFileError", "Attention", "load", "save"]

REQUIRED = ("q", "k", "v")
OPTIONAL = ("out", "causal", "scale", "source", "model", "layer")


class AttnFileError(InputError):
    """A file that is not a valid attention ``.npz``."""


@dataclass(frozen=True)
class Attention:
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray | None = None
    causal: bool | None = None
    scale: float | None = None
    source: str = ""
    model: str = ""          # with layer: which calibrated scales apply (fusioncim calibrate)
    layer: int | None = None

    @property
    def heads(self):
        return self.q.shape[0]

    @property
    def kv_heads(self):
        return self.k.shape[0]

    @property
    def head_dim(self):
        return self.q.shape[2]


def _float_array(path, name, a, ndim):
    if a.dtype.kind != "f":
        raise AttnFileError(f"{path}: '{name}' must be a float array, not {a.dtype}")
    if a.ndim != ndim:
        raise AttnFileError(f"{path}: '{name}' must have {ndim} dimensions [heads, length, head_dim], "
                            f"not shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.isfinite(a).sum())
        raise AttnFileError(f"{path}: '{name}' holds {bad} NaN or infinite values")
    return a


def load(path) -> Attention:
    """Read and validate one attention file."""
    path = Path(path)
    data = read_npz(path, AttnFileError, "attention file", "q, k, v arrays")
    names = set(data)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise AttnFileError(f"{path}: missing array '{missing[0]}' (needs q, k, v)")
    unknown = sorted(names - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise AttnFileError(f"{path}: unknown array '{unknown[0]}' (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    q = _float_array(path, "q", data["q"], 3)
    k = _float_array(path, "k", data["k"], 3)
    v = _float_array(path, "v", data["v"], 3)
    if k.shape != v.shape:
        raise AttnFileError(f"{path}: 'k' shape {k.shape} and 'v' shape {v.shape} differ")
    if q.shape[2] != k.shape[2]:
        raise AttnFileError(f"{path}: head_dim of 'q' ({q.shape[2]}) and 'k' ({k.shape[2]}) differ")
    if min(q.shape) == 0 or min(k.shape) == 0:
        raise AttnFileError(f"{path}: empty tensors: q {q.shape}, k {k.shape}")
    if q.shape[0] % k.shape[0]:
        raise AttnFileError(f"{path}: {q.shape[0]} query heads are not a multiple of {k.shape[0]} KV heads")
    if q.shape[1] > k.shape[1]:
        raise AttnFileError(f"{path}: {q.shape[1]} queries but only {k.shape[1]} keys")
    out = data.get("out")
    if out is not None:
        out = _float_array(path, "out", out, 3)
        if out.shape != q.shape:
            raise AttnFileError(f"{path}: 'out' shape {out.shape} differs from 'q' shape {q.shape}")
    causal = data.get("causal")
    if causal is not None:
        if causal.shape != () or causal.dtype.kind not in "bi" or int(causal) not in (0, 1):
            raise AttnFileError(f"{path}: 'causal' must be a scalar bool, not {causal.dtype} {causal.shape}")
        causal = bool(causal)
    scale = data.get("scale")
    if scale is not None:
        if scale.shape != () or scale.dtype.kind != "f" or not np.isfinite(scale) or scale <= 0:
            raise AttnFileError(f"{path}: 'scale' must be a positive finite scalar float")
        scale = float(scale)
    source = data.get("source")
    if source is not None:
        if source.shape != () or source.dtype.kind != "U":
            raise AttnFileError(f"{path}: 'source' must be a scalar string")
        source = str(source)
    model = data.get("model")
    if model is not None:
        if model.shape != () or model.dtype.kind != "U":
            raise AttnFileError(f"{path}: 'model' must be a scalar string")
        model = str(model)
    layer = data.get("layer")
    if layer is not None:
        if layer.shape != () or layer.dtype.kind not in "iu" or int(layer) < 0:
            raise AttnFileError(f"{path}: 'layer' must be a non-negative scalar integer")
        layer = int(layer)
    return Attention(q=q, k=k, v=v, out=out, causal=causal, scale=scale, source=source or "", model=model or "",
                     layer=layer)


def save(path, att: Attention, *, dtype=np.float32):
    """Write an attention file atomically (a partial file never appears under ``path``)."""
    path = Path(path)
    arrays = {"q": att.q.astype(dtype), "k": att.k.astype(dtype), "v": att.v.astype(dtype)}
    if att.out is not None:
        arrays["out"] = att.out.astype(dtype)
    if att.causal is not None:
        arrays["causal"] = np.array(bool(att.causal))
    if att.scale is not None:
        arrays["scale"] = np.array(float(att.scale))
    if att.source:
        arrays["source"] = np.array(att.source)
    if att.model:
        arrays["model"] = np.array(att.model)
    if att.layer is not None:
        arrays["layer"] = np.array(int(att.layer))
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays), binary=True)
