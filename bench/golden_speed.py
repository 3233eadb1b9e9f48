"""Benchmark: the golden engine on a LLaMA-3-8B attention layer vs plain float NumPy attention.

Shape: 32 query heads, 8 KV heads, d = 128, 2048 tokens, causal prefill, the
``llama3-8b`` preset. Prints the wall time of the float reference (float32
and float64), of the quantisation front end and of the golden engine, each the best of ``--repeat`` runs, and the
ratio the target is stated in (issue 31: golden within 5x of float32 NumPy in
the same run). The load average before and after says how quiet the machine
was: the ratio is the figure to compare across machines, not the seconds.

Run: ``make bench`` or ``.venv/bin/python bench/golden_speed.py [--len N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

from fusioncim.core.config import PRESETS
from fusioncim.golden import engine
from fusioncim.accuracy import quant


def float_attention(q, k, v, dtype):
    # Plain NumPy causal attention, one query head at a time (a 2048x2048
    # score matrix per head), GQA by indexing the shared KV head.
    H, L, d = q.shape
    group = H // k.shape[0]
    q = q.astype(dtype)
    k = k.astype(dtype)
    v = v.astype(dtype)
    mask = np.triu(np.ones((L, L), bool), 1)
    out = np.empty_like(q)
    for h in range(H):
        s = (q[h] @ k[h // group].T) * dtype(1 / math.sqrt(d))
        s[mask] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        out[h] = s @ v[h // group]
    return out


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--len", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs of each (default 3)")
    args = ap.parse_args()
    cfg = PRESETS["llama3-8b"]
    H, Hkv, L, d = args.heads, args.kv_heads, args.len, cfg.head_dim
    rng = np.random.default_rng(0)
    q = rng.normal(size=(H, L, d))
    k = rng.normal(size=(Hkv, L, d))
    v = rng.normal(size=(Hkv, L, d))
    # A sink key and a recent-token bias, as in real LLaMA attention.
    k[:, 0] += 2.0
    q += 0.2
    load = os.getloadavg()
    print(f"LLaMA-3-8B attention layer: {H} query heads, {Hkv} KV heads, d={d}, {L} tokens, causal; "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, numpy {np.__version__}; "
          f"best of {args.repeat}")
    t32, _ = best_of(lambda: float_attention(q, k, v, np.float32), args.repeat)
    t64, _ = best_of(lambda: float_attention(q, k, v, np.float64), args.repeat)
    tq, z = best_of(lambda: quant.quantise(q, k, v, cfg), args.repeat)
    tg, res = best_of(lambda: engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=True), args.repeat)
    c = res.counters
    print(f"  float32 NumPy attention          {t32:8.2f} s")
    print(f"  float64 NumPy attention          {t64:8.2f} s")
    print(f"  quantisation front end           {tq:8.2f} s")
    print(f"  golden engine (bit-exact)        {tg:8.2f} s   ({c.keys:,} key visits, {c.tiles:,} tiles, "
          f"{res.fallback_rows} rows summed exactly in Python ints)")
    print(f"  golden / float32                 {tg / t32:8.1f} x   (target: within 5x; "
          f"{'met' if tg / t32 <= 5 else 'NOT met'})")
    print(f"  golden / float64                 {tg / t64:8.1f} x")
    print(f"  golden + front end               {tg + tq:8.2f} s")
    after = os.getloadavg()
    print(f"  load average (1 min) {load[0]:.2f} before, {after[0]:.2f} after, on {os.cpu_count()} CPUs "
          f"(this run's own work counts in the second)")

if __name__ == "__main__":
    main()
