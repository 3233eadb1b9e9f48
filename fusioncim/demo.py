"""The main job (``make demo``): golden-model accuracy on real attention and an activity summary.

Until the RTL exists this is what the project can show end to end: the
engine's numerics on real transformer attention shipped in ``data/real``, and
the activity counters and reference-schedule cycles of one real SmolLM2
layer (GQA 3:1, causal prefill).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import accuracy, attnfile
from .config import PRESETS
from .golden import engine, quant

REAL = Path(__file__).resolve().parent.parent / "data" / "real"


def _accuracy(say):
    cfg = PRESETS["default"]
    for model in ("smollm2", "minilm"):
        files = sorted(REAL.glob(f"{model}-*.npz"))
        if not files:
            say(f"(no {model} files in {REAL})")
            continue
        records = []
        for f in files:
            records += accuracy.evaluate(attnfile.load(f), cfg, name=str(f))
        label = f"{model}: {len(files)} layer file(s) in data/real, default config, "
        print(accuracy.format_summary(accuracy.summarise(records), label=label))
        print()


def _activity(say):
    path = REAL / "smollm2-L12-T256.npz"
    if not path.exists():
        say(f"(no {path})")
        return
    att = attnfile.load(path)
    cfg = accuracy.config_for(PRESETS["default"], att)
    z = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale)
    t = time.perf_counter()
    res = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=att.causal)
    dt = time.perf_counter() - t
    c = res.counters
    print(f"activity: {att.source}: {att.heads} query heads / {att.kv_heads} KV heads, causal prefill, "
          f"default config (golden model, {dt:.2f} s)")
    width = max(len(k) for k in c.to_dict())
    for key, val in c.to_dict().items():
        print(f"  {key:<{width}} {val:>10,}")
    print(f"  {'IP-CIM busy':<{width}} {c.ip_busy / c.cycles:>10.1%}   (ip_busy / cycles, the generated engine's schedule)")
    print(f"  {'keys skipped':<{width}} {c.skipped_keys / c.keys:>10.1%}")
    print(f"  {'V reads saved':<{width}} {1 - c.v_reads / c.k_reads:>10.1%}")


def main(quiet=False):
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr))
    _accuracy(say)
    _activity(say)
    return 0
