"""Per-key scales of K and V (docs/numerics.md §1, §3 and §5): what each key carries beside its integers.

With ``k_exp_bits``/``k_mant_bits`` a key's K integers stand for ``k x (2^k_mant_bits + k_mant) x 2^k_exp``
(in units the row's score constant absorbs); with ``v_exp_bits`` its V integers stand for ``v x 2^v_exp``.
The front end picks them from the key's own elements when the key is written, so nothing clips and
nothing depends on later keys. All zero (and zero-width) reproduces the engine without per-key scales.

>>> from fusioncim.core.config import EngineConfig
>>> cfg = EngineConfig(k_exp_bits=2, k_mant_bits=2, v_exp_bits=1)
>>> k_factor(cfg, np.array([0, 3]), np.array([0, 1])).tolist()      # (4 + m) << e
[4, 40]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["KeyScales", "k_factor", "checked", "FIELDS"]

FIELDS = (("k_exp", "k_exp_bits"), ("k_mant", "k_mant_bits"), ("v_exp", "v_exp_bits"))


@dataclass(frozen=True)
class KeyScales:
    """Per-key scale codes, each ``[Hkv, Lk]`` int64, in ``[0, 2^bits)`` for its config field."""
    k_exp: np.ndarray
    k_mant: np.ndarray
    v_exp: np.ndarray

    @classmethod
    def zeros(cls, shape):
        z = np.zeros(shape, np.int64)
        return cls(z, z, z)

    def head(self, g):
        """The codes of KV head ``g``, each ``[Lk]``."""
        return KeyScales(self.k_exp[g], self.k_mant[g], self.v_exp[g])


def k_factor(cfg, k_exp, k_mant):
    """The integer factor ``(2^k_mant_bits + k_mant) << k_exp`` a key's scores are multiplied by (docs §3)."""
    return ((np.int64(1) << cfg.k_mant_bits) + np.asarray(k_mant, np.int64)) << np.asarray(k_exp, np.int64)


def checked(ks, cfg, shape):
    """``ks`` (or all zeros for None) checked against the config: one line naming the field and the rule."""
    if ks is None:
        return KeyScales.zeros(shape)
    for name, bits in FIELDS:
        a = np.asarray(getattr(ks, name))
        if a.shape != tuple(shape):
            raise InputError(f"{name} must be [KV heads, keys] = {list(shape)}, not {list(a.shape)}")
        if a.dtype.kind not in "iu":
            raise InputError(f"{name} must hold integers, not {a.dtype}")
        top = 1 << getattr(cfg, bits)
        if a.size and (a.min() < 0 or a.max() >= top):
            raise InputError(f"{name} must be in [0, {top}) for {bits} {getattr(cfg, bits)}; "
                             f"found {int(a.min())} .. {int(a.max())}")
    return KeyScales(*(np.asarray(getattr(ks, n), np.int64) for n, _ in FIELDS))
