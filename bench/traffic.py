"""Off-chip and on-chip traffic of FusionCIM against the baselines, by sequence length and buffer size.

Every dataflow is held to the same on-chip capacities (``fusioncim.perf.dataflow.Buffers``): the KV buffer
(keys), the S/P buffer of the dataflows that keep scores (KiB) and the Q/O buffer (KiB). A working set
that does not fit goes to DRAM and back, per tile. For each LLaMA-3-8B workload and each S/P buffer
size this prints the off-chip traffic of the baseline and of FusionCIM and the reduction, and the
on-chip reduction (which the capacities do not change); then the same with a KV buffer smaller than the
sequence. The baselines (serial and pipelined) move the same bits, so one column serves both. The
figures are the dataflow models of docs/energy.md at the stored score-pattern rates; a third-party
summary of the paper cites about 59% less off-chip access and up to 71% less on-chip traffic
(unverified), which this sets beside.

Run: ``.venv/bin/python bench/traffic.py [--sp 16,64,256,1024,none] [--qo 128] [--kv-small 1024] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys

from fusioncim.perf import dataflow as df
from fusioncim.perf import report
from fusioncim.core.config import PRESETS

WORKLOADS = ("llama3-8b-prefill-512", "llama3-8b-prefill-2048", "llama3-8b-prefill-8192",
             "llama3-8b-decode-2048", "llama3-8b-decode-8192", "llama3-8b-decode-8192-p4")


def _size(text):
    return None if text == "none" else int(text) * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sp", default="16,64,256,1024,none", help="S/P buffer sizes in KiB (none: always fits)")
    ap.add_argument("--qo", default="128", help="Q/O buffer in KiB, or none (default 128)")
    ap.add_argument("--kv-small", type=int, default=1024, help="a KV buffer in keys for the second table")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = PRESETS["default"]
    sps = [s.strip() for s in args.sp.split(",")]
    rows, pats = [], {}
    for name in WORKLOADS:
        wl = df.WORKLOADS[name]
        if wl.tokens not in pats:
            pats[wl.tokens] = report.patterns(cfg, tokens=wl.tokens)
        for kv in (None, args.kv_small):
            for sp in (sps if kv is None else ["64"]):
                buffers = df.Buffers(kv_keys=kv, sp_bytes=_size(sp), qo_bytes=_size(args.qo))
                r = report.evaluate(cfg, wl, pats[wl.tokens], buffers=buffers)
                V, s = r["variants"], r["summary"]
                rows.append({"workload": name, "kv_keys": kv, "sp_kib": sp, "qo_kib": args.qo,
                             "baseline_offchip_bytes": V["baseline"]["offchip_bits"] / 8,
                             "fusioncim_offchip_bytes": V["fusioncim"]["offchip_bits"] / 8,
                             "offchip_reduction": s["offchip_reduction"],
                             "onchip_reduction": s["onchip_reduction"],
                             "energy_with_dram_ratio": V["baseline"]["energy_with_dram_pj"]
                             / V["fusioncim"]["energy_with_dram_pj"]})
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"LLaMA-3-8B, default config (16 rows), Q/O buffer {args.qo} KiB; off-chip bytes per layer")
    print(f"{'workload':<26} {'KV buffer':>10} {'S/P KiB':>8} {'baseline':>10} {'fusioncim':>10} {'off-chip':>9} "
          f"{'on-chip':>8} {'E with DRAM':>11}")
    for r in rows:
        kv = "config" if r["kv_keys"] is None else f"{r['kv_keys']} keys"
        print(f"{r['workload']:<26} {kv:>10} {r['sp_kib']:>8} {r['baseline_offchip_bytes'] / 1e6:>8.1f}MB "
              f"{r['fusioncim_offchip_bytes'] / 1e6:>8.1f}MB {0.0 - r['offchip_reduction']:>+9.0%} "
              f"{0.0 - r['onchip_reduction']:>+8.0%} {r['energy_with_dram_ratio']:>10.2f}x")
    print("off-chip / on-chip: FusionCIM's traffic against the baselines' (negative: less); E with DRAM: the "
          "baseline's energy over FusionCIM's, DRAM included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
