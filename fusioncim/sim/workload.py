"""Attention workloads for the engine simulations: random heads or real attention from a file.

A workload is described by a :class:`Spec`, checked when it is made: random
heads (``Spec(kind="random", heads=2, kv_heads=1, queries=7, keys=11, seed=1)``)
or heads of an attention file (``Spec(kind="npz", path="x.npz", heads=(0, 1),
tokens=64)``), both with ``mode``, ``positions`` (decode query positions per
tile, ``core.schedule.tiles_decode``), ``causal``, ``stall`` (the probability
that an external stream stalls in a cycle) and ``name``. A plain mapping with
the same keys is read by :meth:`Spec.from_dict` (what tests and benchmarks
write); :meth:`Spec.to_dict` gives back the keys that were set, as results
record them. The spec stays in the parent process: the simulation receives
the host program made from it (``fusioncim/sim/program.py``).

:func:`make` turns a spec into the quantised engine inputs
(``accuracy.quant.Quantised``) plus the float64 reference where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core import schedule
from ..golden import reference
from ..accuracy import quant

__all__ = ["Spec", "Workload", "make", "config_for_spec", "fit_notes", "RANDOM_DEFAULTS"]

RANDOM_DEFAULTS = {"heads": 2, "kv_heads": 1, "queries": 40, "spread": 2.5, "seed": 1}
"""What a random spec leaves out (``keys`` defaults to ``queries``); ``fusioncim simulate`` shows the same."""

KINDS = ("random", "npz")


def _positive(what, value, *, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{what} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class Spec:
    """One workload, checked on construction; a field left None takes its default when the workload is made.

    kind : "random" or "npz"
    name : label in results (default: the kind)
    mode : "prefill" or "decode"; positions : decode query positions per tile (default 1)
    causal : masking (default: the file's, else the config's); stall : probability in [0, 1)
    random: heads, kv_heads, queries (ints; defaults :data:`RANDOM_DEFAULTS`), keys (default: queries),
    seed, spread (the logits' spread)
    npz: path, heads (the file's query heads, a sequence; default ``(0,)``), tokens (keep the first n)
    """
    kind: str = "random"
    name: str | None = None
    mode: str = "prefill"
    positions: int | None = None
    causal: bool | None = None
    stall: float | None = None
    heads: object = None
    kv_heads: int | None = None
    queries: int | None = None
    keys: int | None = None
    seed: int | None = None
    spread: float | None = None
    path: str | None = None
    tokens: int | None = None

    def __post_init__(self):
        label = f"workload {self.name or self.kind!r}"
        if self.kind not in KINDS:
            raise InputError(f"{label}: kind {self.kind!r}: must be random or npz")
        if self.mode not in schedule.MODES:
            raise InputError(f"{label}: mode {self.mode!r}: must be one of {', '.join(schedule.MODES)}")
        if self.positions is not None:
            schedule.check_positions(self.positions, self.mode, what=f"{label}: positions")
        if self.stall is not None and not (isinstance(self.stall, (int, float)) and 0 <= self.stall < 1):
            raise InputError(f"{label}: stall {self.stall!r}: must be a probability in [0, 1)")
        if self.kind == "random":
            self._check_random(label)
        else:
            self._check_npz(label)

    def _check_random(self, label):
        for f in ("path", "tokens"):
            if getattr(self, f) is not None:
                raise InputError(f"{label}: {f} is for an npz workload, not a random one")
        for f in ("heads", "kv_heads", "queries", "keys"):
            _positive(f"{label}: {f}", getattr(self, f))
        heads, kv = self.value("heads"), self.value("kv_heads")
        if heads % kv:
            raise InputError(f"{label}: heads {heads} must be a multiple of kv_heads {kv}")
        if self.value("queries") > self.value("keys"):
            raise InputError(f"{label}: queries {self.value('queries')} cannot exceed keys {self.value('keys')}: "
                             f"the queries are the last tokens of the sequence")

    def _check_npz(self, label):
        if not self.path:
            raise InputError(f"{label}: an npz workload needs a path")
        for f in ("kv_heads", "queries", "keys", "seed", "spread"):
            if getattr(self, f) is not None:
                raise InputError(f"{label}: {f} is for a random workload, not an npz one")
        _positive(f"{label}: tokens", self.tokens)
        heads = self.value("heads")
        if not heads or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 0 for h in heads):
            raise InputError(f"{label}: heads {self.heads!r}: must name query heads of the file (integers from 0)")

    def value(self, field):
        """The field's value, or the default it takes when left None."""
        v = getattr(self, field)
        if v is not None:
            return v
        if field == "heads" and self.kind == "npz":
            return (0,)
        if field == "keys":
            return self.value("queries")
        return {**RANDOM_DEFAULTS, "name": self.kind, "positions": 1, "stall": 0.0}.get(field)

    @property
    def label(self):
        return str(self.value("name"))

    @classmethod
    def from_dict(cls, spec):
        """A :class:`Spec` from a mapping with the same keys; an unknown key is refused by name."""
        if isinstance(spec, Spec):
            return spec
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(spec) - known)
        if unknown:
            raise InputError(f"workload {spec.get('name', spec.get('kind'))!r}: unknown key {unknown[0]!r}; "
                             f"known: {', '.join(cls.__dataclass_fields__)}")
        return cls(**{k: (list(v) if k == "heads" and not isinstance(v, int) else v) for k, v in spec.items()})

    def to_dict(self):
        """The fields that were set, as a JSON-ready mapping (what results record as their workload)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__ if getattr(self, f) is not None}


@dataclass
class Workload:
    name: str
    z: quant.Quantised
    causal: bool
    mode: str
    positions: int                   # decode: query positions per tile
    reference: np.ndarray            # float64 attention output [H, Lq, d]
    stall: float                     # probability a stream stalls in a cycle (fusioncim.sim.program.encode)


def _load(path):
    # One read per file and version: fitting the config and making the workload both need it.
    p = Path(path)
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        stamp = None                          # attnfile.load reports the missing file
    return _load_cached(str(p), stamp)


@lru_cache(maxsize=4)
def _load_cached(path, stamp):
    from ..accuracy.attnfile import load
    att = load(path)
    for a in (att.q, att.k, att.v):
        a.setflags(write=False)               # shared between callers: nobody may change it
    return att


def _spec_error(spec, key, rule):
    return InputError(f"workload {spec.label!r}: {key} {getattr(spec, key)!r}: {rule}")


def _random(spec, cfg):
    H, Hkv = int(spec.value("heads")), int(spec.value("kv_heads"))
    Lq = int(spec.value("queries"))
    Lk = int(spec.value("keys"))
    rng = np.random.default_rng(int(spec.value("seed")))
    d = cfg.head_dim
    # Logits with a spread of a few units and an attention sink on key 0.
    spread = float(spec.value("spread"))
    mu = rng.normal(size=d)
    q = rng.normal(size=(H, Lq, d)) + 0.5 * mu
    k = rng.normal(size=(Hkv, Lk, d))
    k[:, 0] += 1.5 * mu
    v = rng.normal(size=(Hkv, Lk, d))
    scale = spread / np.sqrt(d)
    return q, k, v, scale


def make(spec, cfg) -> Workload:
    """The quantised inputs (and float64 reference) of one workload (a :class:`Spec` or its mapping) for ``cfg``."""
    spec = Spec.from_dict(spec)
    kind, mode, positions = spec.kind, spec.mode, spec.value("positions")
    if kind == "random":
        q, k, v, scale = _random(spec, cfg)
        causal = cfg.causal if spec.causal is None else bool(spec.causal)
    else:
        att = _load(spec.path)
        heads = list(spec.value("heads"))
        if any(h >= att.heads for h in heads):
            raise _spec_error(spec, "heads", f"must name query heads of the file (0 to {att.heads - 1})")
        group = att.heads // att.kv_heads
        kvs = sorted({h // group for h in heads})
        # The chosen heads with their KV heads; heads are regrouped so each
        # keeps its own KV head (one KV head per chosen query head group).
        q = np.concatenate([att.q[[h for h in heads if h // group == g]] for g in kvs])
        per = {g: sum(1 for h in heads if h // group == g) for g in kvs}
        if len(set(per.values())) != 1:
            raise _spec_error(spec, "heads", "must take the same number of query heads from each KV head")
        k, v, scale = att.k[kvs], att.v[kvs], att.scale
        if spec.tokens is not None:
            n = int(spec.tokens)
            if not 1 <= n <= k.shape[1] or q.shape[1] != k.shape[1]:
                raise _spec_error(spec, "tokens", f"must be from 1 to {k.shape[1]}, on a file whose queries are "
                                  f"all its tokens")
            q, k, v = q[:, :n], k[:, :n], v[:, :n]
        causal = cfg.causal if att.causal is None else att.causal
        if spec.causal is not None:
            causal = bool(spec.causal)
    if k.shape[1] > cfg.kv_keys:
        n = k.shape[1]
        if cfg.kv_depth is None:
            depth, fix = f"kv_depth unset: max_seq_len {cfg.max_seq_len}", f"--set max_seq_len={n}"
        else:
            depth = f"kv_depth {cfg.kv_depth}"
            fix = f"--set kv_depth={n}" if n <= cfg.max_seq_len else f"--set max_seq_len={n} --set kv_depth={n}"
        raise InputError(f"workload has {n} keys but the KV buffer holds {cfg.kv_keys} ({depth}); use {fix}")
    try:
        schedule.check_positions(positions, mode, q.shape[0] // k.shape[0], cfg.rows)
    except InputError as exc:
        raise InputError(f"workload {spec.label!r}: {exc}") from None
    z = quant.quantise(q, k, v, cfg, scale=scale, per_key=quant.per_key_default(cfg))
    ref = reference.attention(q, k, v, causal=causal, scale=scale)
    return Workload(name=spec.label, z=z, causal=causal, mode=mode, positions=positions, reference=ref,
                    stall=float(spec.value("stall")))


def config_for_spec(cfg, spec):
    """The config adjusted to an ``npz`` workload's file (head_dim, sequence length); others unchanged."""
    spec = Spec.from_dict(spec)
    if spec.kind != "npz":
        return cfg
    att = _load(spec.path)
    return cfg.fit(att.head_dim, min(att.k.shape[1], int(spec.tokens or att.k.shape[1])))


def fit_notes(before, after, spec):
    """What :func:`config_for_spec` took from an ``npz`` workload's file, in words, e.g.
    ``["head_dim 64, from the file"]``; the tools print these beside their results."""
    if Spec.from_dict(spec).kind != "npz":
        return []
    notes = [f"head_dim {after.head_dim}, from the file"]
    for key in ("max_seq_len", "kv_depth"):
        if getattr(before, key) != getattr(after, key):
            notes.append(f"{key} {getattr(after, key)}, raised from {getattr(before, key)} to hold the file's keys")
    return notes
