"""The generated engine on Verilator and Icarus: whole heads bit-exact with golden.engine, counters included.

Each config runs the same list of workloads (fusioncim/sim/workload.py) in one
simulator process: sequence length 1, one tile, a length that is not a
multiple of the tile (non-causal, two KV heads), the KV buffer's full depth,
GQA decode with groups of 8 and of 3 query heads, decode at two positions per tile, and a run with random stalls
on every external stream; on the config with MiniLM's head_dim, two heads of
real MiniLM-L6 attention (SmolLM2 heads run in ``fusioncim simulate --npz``,
see docs/engine.md). Then the bad-command, busy and abort checks
(tb/engine_tests.py, on the two DIRECTED workloads). Every pattern-aware mechanism is switched off in one
config; softmax lanes, division lanes with Q preloading, single buffering, one key bit a cycle and a lazy
threshold are covered too, and per-key K and V scales (the per-key mode: rows5-lanes2 on both simulators,
d32-r8 with its real heads on Icarus).
"""

import os

import pytest
from cocotb_tools.runner import get_results

from fusioncim.core.files import data_path
from fusioncim.ip import generate
from fusioncim.sim import rtlsim, verilator
from fusioncim.core.config import PRESETS
from fusioncim.sim import program as host
from fusioncim.sim.simulate import plan, run_workloads

BASE = PRESETS["test"].replace(kv_depth=48)        # not a power of two: out-of-range writes are testable
CONFIGS = {
    "test": BASE,
    "no-pattern": BASE.replace(tiers=False, skip_threshold=None, key_skip=False, key_order="sequential",
                               rescale_on_growth_only=False),
    "rows5-lanes2": BASE.replace(rows=5, softmax_lanes=2, norm_lanes=2, q_double_buffer=True, k_exp_bits=2,
                                 k_mant_bits=1, v_exp_bits=1),
    "single-buffer-ip1-lazy2": BASE.replace(double_buffer=False, ip_bits_per_cycle=1, op_bits_per_cycle=2,
                                            lazy_threshold=2),
    # Per-key K and V scales (issue 33): workloads are quantised in the per-key mode, real heads included.
    "d32-r8": BASE.replace(head_dim=32, rows=8, kv_depth=64, norm_lanes=3, k_exp_bits=3, k_mant_bits=2,
                           v_exp_bits=2),
}
SEED = int(os.environ.get("FUSIONCIM_SEED", "2026"))
REAL = data_path("real", "minilm-L02-T256.npz")


def workloads(cfg, seed):
    R, depth = cfg.rows, cfg.kv_keys
    return [dict(w, kind="random", seed=seed + i) for i, w in enumerate([
        {"name": "length-1", "heads": 2, "kv_heads": 1, "queries": 1, "keys": 1, "causal": True},
        {"name": "one-tile", "heads": 1, "kv_heads": 1, "queries": R, "keys": R, "causal": True},
        {"name": "not-a-multiple", "heads": 2, "kv_heads": 2, "queries": R + 3, "keys": 2 * R + 3,
         "causal": False},
        {"name": "full-depth", "heads": 1, "kv_heads": 1, "queries": depth, "keys": depth, "causal": True},
        {"name": "gqa-decode-8", "mode": "decode", "heads": 8, "kv_heads": 1, "queries": 2, "keys": 20,
         "causal": True},
        {"name": "gqa-decode-3", "mode": "decode", "heads": 6, "kv_heads": 2, "queries": 2, "keys": 9,
         "causal": True},
        # Multi-token decode: a group of 2 at rows // 2 positions per tile, each row masked by its own position.
        {"name": "decode-positions", "mode": "decode", "heads": 2, "kv_heads": 1, "queries": 5, "keys": 12,
         "positions": R // 2, "causal": True},
        {"name": "stalls", "heads": 2, "kv_heads": 1, "queries": R + 5, "keys": R + 9, "causal": True,
         "stall": 0.4},
    ])]


def directed(cfg, seed):
    """The small programs the directed tests of tb/engine_tests.py take: one tile, and at least two."""
    n = min(max(12, 2 * cfg.rows), cfg.kv_keys)
    return [{"name": "directed-small", "kind": "random", "heads": 1, "kv_heads": 1, "queries": min(3, cfg.kv_keys),
             "keys": min(9, cfg.kv_keys), "seed": seed, "causal": False},
            {"name": "directed-two-tiles", "kind": "random", "heads": 1, "kv_heads": 1, "queries": n, "keys": n,
             "seed": seed + 1, "causal": False}]


def real_workloads(cfg):
    """Real MiniLM-L6 attention (layer 2, its first 24 tokens, two heads), on the config with its head_dim."""
    if cfg.head_dim != 32:
        return []
    return [{"name": f"minilm-L02-head{h}", "kind": "npz", "path": str(REAL), "heads": [h], "tokens": 24}
            for h in (0, 1)]


# Verilator on test, rows5-lanes2 (per-key scales), single-buffer-ip1-lazy2; Icarus on every config
# (rtlsim.sim_cases). Real heads in the per-key mode on Verilator: `fusioncim simulate --config per-key --npz ...`
# (docs/accuracy.md).
CASES = rtlsim.sim_cases(CONFIGS, verilator=["test", "rows5-lanes2", "single-buffer-ip1-lazy2"])


@pytest.mark.slow
@pytest.mark.parametrize("name, sim", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_engine_rtl(sim, name):
    cfg = CONFIGS[name]
    specs = workloads(cfg, SEED) + real_workloads(cfg) + directed(cfg, SEED)
    assert rtlsim.available(sim) is None, rtlsim.available(sim)
    results, _, test_dir, failed, _ = run_workloads(cfg, specs, sim=sim, seed=SEED, testcase=None)
    assert failed == 0, f"see {test_dir / 'sim.log'}"
    assert get_results(test_dir / "results.xml")[0] == 4          # the workloads and the three directed tests ran
    assert [r["name"] for r in results] == [s["name"] for s in specs]
    for r in results:
        assert r["mismatches"] == 0 and not r["errors"], r


@pytest.mark.parametrize("name", ["test", "rows5-lanes2"])
def test_verilator_lint_clean(name, tmp_path):
    path = generate.write_verilog("engine", CONFIGS[name], tmp_path / "engine.v")
    assert verilator.lint(path) == []


class _StuckEngine:
    """A deadlocking mutant: the engine's output stream never offers a row, so it never goes idle."""

    def __new__(cls, cfg):
        from fusioncim.hw.engine import Engine

        class Stuck(Engine):
            def elaborate(self, platform):
                m = super().elaborate(platform)
                m.d.comb += self.o_out.valid.eq(0)
                return m
        return Stuck(cfg)


def _program(cfg, specs, folder):
    return host.write_program(folder / "program.txt", cfg, [p.host for p in plan(cfg, specs, seed=SEED)])


def test_deadlocked_engine_fails_fast_and_says_where(monkeypatch, tmp_path):
    # The cocotb test's cycle budget (derived from golden's schedule) ends the
    # run in simulated time and names the stream that stalled.
    monkeypatch.setitem(generate.BLOCKS, "engine_stuck", _StuckEngine)
    cfg = CONFIGS["test"]
    spec = workloads(cfg, SEED)[1]                                   # one tile
    prog = _program(cfg, [spec], tmp_path)
    total, failed, xml = rtlsim.run("engine_stuck", cfg, "icarus", "fusioncim.tb.engine_tests",
                                    testcase="workloads_bit_exact", seed=SEED, timeout=300,
                                    extra_env={"FUSIONCIM_PROGRAM": str(prog)})
    assert (total, failed) == (1, 1)
    log = (xml.parent / "sim.log").read_text()
    assert "workload one-tile: no progress within" in log
    assert "o_out valid=0 ready=1 after 0 beats" in log
    assert "q_in valid=0 ready=0 after 4 beats" in log                # every Q row went in


def test_simulator_killed_at_its_time_limit(tmp_path):
    cfg = CONFIGS["test"]
    prog = _program(cfg, [workloads(cfg, SEED)[3]], tmp_path)       # full depth: thousands of cycles
    with pytest.raises(rtlsim.SimTimeout, match="ran past 1 s and was killed"):
        rtlsim.run("engine", cfg, "icarus", "fusioncim.tb.engine_tests", testcase="workloads_bit_exact",
                   seed=SEED, timeout=1, extra_env={"FUSIONCIM_PROGRAM": str(prog)})
