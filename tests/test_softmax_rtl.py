"""The generated softmax unit on Verilator and Icarus, every output, sum and counter against golden.unit.

Each pattern-aware mechanism is switched off in one config so the ablation
variants are verified too.
"""

import os

import pytest

from fusioncim.ip import generate
from fusioncim.sim import rtlsim, verilator
from fusioncim.core.config import EngineConfig

BASE = EngineConfig(rows=4, head_dim=16, max_seq_len=512)
CONFIGS = {
    "default": BASE,
    "no-tiers": BASE.replace(tiers=False),
    "no-skip": BASE.replace(skip_threshold=None, key_skip=False),
    "lazy2": BASE.replace(lazy_threshold=2, op_bits_per_cycle=2),
    "naive-rescale": BASE.replace(rescale_on_growth_only=False),
    "rows1": BASE.replace(rows=1),
    "rows16-d64": BASE.replace(rows=16, head_dim=64),
    "rows5-lanes2": BASE.replace(rows=5, softmax_lanes=2),      # 3 groups, the last one padded
    "rows16-lanes4": BASE.replace(rows=16, softmax_lanes=4),
}
SEED = int(os.environ.get("FUSIONCIM_SEED", "2026"))
KEYS = os.environ.get("FUSIONCIM_KEYS", "40")


# Verilator on default, lazy2, rows16-lanes4; Icarus on every config (rtlsim.sim_cases).
CASES = rtlsim.sim_cases(CONFIGS, verilator=["default", "lazy2", "rows16-lanes4"])


@pytest.mark.parametrize("name, sim", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_softmax_rtl(sim, name):
    rtlsim.check("softmax", CONFIGS[name], sim, "fusioncim.tb.softmax_tests", tests=5, seed=SEED,
                 extra_env={"FUSIONCIM_KEYS": KEYS})


@pytest.mark.parametrize("name", ["default", "lazy2", "rows1", "rows5-lanes2"])
def test_verilator_lint_clean(name, tmp_path):
    path = generate.write_verilog("softmax", CONFIGS[name], tmp_path / "softmax.v")
    assert verilator.lint(path) == []
