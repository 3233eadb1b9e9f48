"""The generated OP-CIM macro and normaliser on Verilator and Icarus, against golden.op_cim.

Configs cover rows 1, 4, 16, head_dim 8, 64, 128, single and double buffering, and bits per cycle from 1 to
the full probability width (12, and 13 with a lazy threshold).
"""

import os

import pytest

from fusioncim.ip import generate
from fusioncim.sim import rtlsim, verilator
from fusioncim.core.config import EngineConfig

BASE = EngineConfig(max_seq_len=64)
CONFIGS = {
    "bpc1-r1-d8": BASE.replace(op_bits_per_cycle=1, rows=1, head_dim=8, double_buffer=False),
    "bpc4-r4-d64": BASE.replace(op_bits_per_cycle=4, rows=4, head_dim=64),
    "bpc12-r16-d8": BASE.replace(op_bits_per_cycle=12, rows=16, head_dim=8),
    "bpc3-r2-d128": BASE.replace(op_bits_per_cycle=3, rows=2, head_dim=128),
    "bpc6-r16-d16-nl5": BASE.replace(op_bits_per_cycle=6, rows=16, head_dim=16, norm_lanes=5),
    "lazy1-bpc13-r2-d8": BASE.replace(lazy_threshold=1, op_bits_per_cycle=13, rows=2, head_dim=8),
}
SEED = int(os.environ.get("FUSIONCIM_SEED", "2026"))
KEYS = os.environ.get("FUSIONCIM_KEYS", "40")


# Verilator on three configs (one bit per cycle, the widest, the lazy rescale), Icarus on every one
# (rtlsim.sim_cases): Verilator's C++ build of the larger arrays takes longer than Icarus's whole
# run (43 s against 19 s for 2 x 128); tests/test_engine_cross_sim.py checks that the simulators
# agree cycle for cycle.
CASES = rtlsim.sim_cases(CONFIGS, verilator=["bpc1-r1-d8", "bpc12-r16-d8", "lazy1-bpc13-r2-d8"])


@pytest.mark.parametrize("name, sim", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_op_cim_rtl(sim, name):
    rtlsim.check("op_cim", CONFIGS[name], sim, "fusioncim.tb.op_cim_tests", tests=4, seed=SEED,
                 extra_env={"FUSIONCIM_KEYS": KEYS})


@pytest.mark.parametrize("name", ["bpc1-r1-d8", "bpc4-r4-d64"])
def test_verilator_lint_clean(name, tmp_path):
    path = generate.write_verilog("op_cim", CONFIGS[name], tmp_path / "op_cim.v")
    assert verilator.lint(path) == []
