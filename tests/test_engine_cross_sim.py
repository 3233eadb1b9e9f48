"""Verilator and Icarus agree with each other, not only with golden: identical outputs and counters, cycles
included, for the same workloads and the same host-stall pattern (where golden only bounds the cycles).

The stall gaps are drawn in the parent process from the run's seed and written into the host program
(fusioncim/sim/program.py), so both simulators see the same ones; a run with another seed must take other
cycle counts, which shows the comparison is sharp.
"""

import numpy as np
import pytest

from fusioncim.sim import rtlsim
from fusioncim.core.config import PRESETS
from fusioncim.sim.simulate import run_workloads

CFG = PRESETS["test"].replace(kv_depth=48)        # the "test" config of tests/test_engine_rtl.py: builds are shared


def _specs(cfg):
    R = cfg.rows
    return [
        {"name": "stalls-a", "kind": "random", "seed": 11, "heads": 2, "kv_heads": 1, "queries": R + 3,
         "keys": 2 * R + 1, "causal": True, "stall": 0.4},
        {"name": "stalls-b", "kind": "random", "seed": 12, "heads": 4, "kv_heads": 2, "queries": R, "keys": R + 7,
         "causal": False, "stall": 0.15},
        {"name": "decode-stalls", "kind": "random", "seed": 13, "mode": "decode", "heads": 6, "kv_heads": 2,
         "queries": 2, "keys": 21, "causal": True, "stall": 0.3},
    ]


@pytest.mark.skipif(any(rtlsim.available(s) for s in ("verilator", "icarus")), reason="needs both simulators")
def test_simulators_agree_cycle_for_cycle():
    specs = _specs(CFG)
    runs = {}
    for sim in ("verilator", "icarus"):
        rtlsim.build("engine", CFG, sim)
        results, outputs, _, failed, _ = run_workloads(CFG, specs, sim=sim, seed=5)
        assert failed == 0, sim
        runs[sim] = (results, outputs)
    (rv, ov), (ri, oi) = runs["verilator"], runs["icarus"]
    for spec, a, b, xa, xb in zip(specs, rv, ri, ov, oi):
        assert a["mismatches"] == 0 and b["mismatches"] == 0, spec["name"]
        assert np.array_equal(xa, xb), spec["name"]
        assert a["rtl"] == b["rtl"], spec["name"]               # every counter, cycles included
        assert a["rtl"]["cycles"] > a["golden"]["cycles"], spec["name"]   # the stalls cost cycles
    other, _, _, failed, _ = run_workloads(CFG, specs, sim="verilator", seed=6)
    assert failed == 0
    assert [r["rtl"]["cycles"] for r in other] != [r["rtl"]["cycles"] for r in rv]
