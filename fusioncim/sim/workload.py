"""Attention workloads for the engine simulations: random heads or real attention from a file.

A workload spec is a plain mapping (JSON-friendly, it crosses into the
cocotb process through the environment):

``{"kind": "random", "heads": 2, "kv_heads": 1, "queries": 7, "keys": 11,
"mode": "prefill", "causal": true, "seed": 1}`` or
``{"kind": "npz", "path": "fusioncim/data/real/x.npz", "heads": [0, 1], "mode": "prefill"}``
(``"tokens": n`` keeps the first n tokens of the file)
(optional for both: ``"positions"``, decode query positions per tile (``core.schedule.tiles_decode``);
``"stall"``, the probability that an external stream
stalls in a cycle, and ``"name"``).

:func:`make` turns a spec into the quantised engine inputs
(``golden.quant.Quantised``) plus the float64 reference where one exists.
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

__all__ = ["Workload", "make", "config_for_spec", "fit_notes", "RANDOM_DEFAULTS"]

RANDOM_DEFAULTS = {"heads": 2, "kv_heads": 1, "queries": 40, "spread": 2.5, "seed": 1}
"""What a random spec leaves out (``keys`` defaults to ``queries``); ``fusioncim simulate`` shows the same."""


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
    return InputError(f"workload {spec.get('name', spec.get('kind'))!r}: {key} {spec.get(key)!r}: {rule}")


def _random(spec, cfg):
    spec = {**RANDOM_DEFAULTS, **spec}
    H, Hkv = int(spec["heads"]), int(spec["kv_heads"])
    Lq = int(spec["queries"])
    Lk = int(spec.get("keys", Lq))
    rng = np.random.default_rng(int(spec["seed"]))
    d = cfg.head_dim
    # Logits with a spread of a few units and an attention sink on key 0.
    spread = float(spec["spread"])
    mu = rng.normal(size=d)
    q = rng.normal(size=(H, Lq, d)) + 0.5 * mu
    k = rng.normal(size=(Hkv, Lk, d))
    k[:, 0] += 1.5 * mu
    v = rng.normal(size=(Hkv, Lk, d))
    scale = spread / np.sqrt(d)
    return q, k, v, scale


def make(spec, cfg) -> Workload:
    """The quantised inputs (and float64 reference) of one workload spec for ``cfg``."""
    kind = spec.get("kind", "random")
    mode = spec.get("mode", "prefill")
    if mode not in schedule.MODES:
        raise _spec_error(spec, "mode", f"must be one of {', '.join(schedule.MODES)}")
    positions = spec.get("positions", 1)
    if kind == "random":
        q, k, v, scale = _random(spec, cfg)
        causal = bool(spec.get("causal", cfg.causal))
    elif kind == "npz":
        att = _load(spec["path"])
        heads = spec.get("heads", [0])
        if not heads or any(h < 0 or h >= att.heads for h in heads):
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
        if "tokens" in spec:
            n = int(spec["tokens"])
            if not 1 <= n <= k.shape[1] or q.shape[1] != k.shape[1]:
                raise _spec_error(spec, "tokens", f"must be from 1 to {k.shape[1]}, on a file whose queries are "
                                  f"all its tokens")
            q, k, v = q[:, :n], k[:, :n], v[:, :n]
        causal = cfg.causal if att.causal is None else att.causal
        if "causal" in spec:
            causal = bool(spec["causal"])
    else:
        raise _spec_error(spec, "kind", "must be random or npz")
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
        raise InputError(f"workload {spec.get('name', kind)!r}: {exc}") from None
    z = quant.quantise(q, k, v, cfg, scale=scale)
    ref = reference.attention(q, k, v, causal=causal, scale=scale)
    return Workload(name=str(spec.get("name", kind)), z=z, causal=causal, mode=mode, positions=positions,
                    reference=ref,
                    stall=float(spec.get("stall", 0.0)))


def config_for_spec(cfg, spec):
    """The config adjusted to an ``npz`` workload's file (head_dim, sequence length); others unchanged."""
    if spec.get("kind") != "npz":
        return cfg
    att = _load(spec["path"])
    return cfg.fit(att.head_dim, min(att.k.shape[1], int(spec.get("tokens", att.k.shape[1]))))


def fit_notes(before, after, spec):
    """What :func:`config_for_spec` took from an ``npz`` workload's file, in words, e.g.
    ``["head_dim 64, from the file"]``; the tools print these beside their results."""
    if spec.get("kind") != "npz":
        return []
    notes = [f"head_dim {after.head_dim}, from the file"]
    for key in ("max_seq_len", "kv_depth"):
        if getattr(before, key) != getattr(after, key):
            notes.append(f"{key} {getattr(after, key)}, raised from {getattr(before, key)} to hold the file's keys")
    return notes
