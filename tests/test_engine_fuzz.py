"""Hypothesis-drawn engine configs and workloads, the generated RTL on Verilator against golden.

Each example draws a config the engine can build (rows, head_dim, key bits a
cycle, OP-CIM digit width, softmax lanes, key order, skipping, tiers, lazy
threshold, single or double buffering, KV depth) and a few workloads on it:
prefill or GQA decode, causal or not, host stalls, and score patterns from
flat (logit spread 0.05: nothing skipped) to extreme (spread 40: one key
carries the row, most keys skipped, the running max jumps). Every output
element and every counter must equal golden.engine's (cycles exactly without
stalls, never below golden's with them; tb/engine_tests.py checks both), and
the drawn design must pass ``verilator --lint-only -Wall`` with only the named
waivers of fusioncim/sim/verilator.py.

The budget is fixed (derandomised): ``FUSIONCIM_ENGINE_FUZZ=N`` configs (1 by
default: a Verilator build each, the regression's time is tight); raise it for a longer run.
"""

import os

import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings, strategies as st

from fusioncim.ip import generate
from fusioncim.sim import rtlsim, verilator
from fusioncim.core.config import EngineConfig
from fusioncim.sim.simulate import run_workloads

CONFIGS = int(os.environ.get("FUSIONCIM_ENGINE_FUZZ", "1"))
SPREADS = (0.05, 2.5, 40.0)


@st.composite
def engine_configs(draw):
    rows = draw(st.integers(1, 5))
    ip_bits = draw(st.sampled_from([1, 2]))
    G = 8 // ip_bits
    lazy = draw(st.integers(0, 2))
    p_bits = 12 + lazy
    # The OP-CIM must keep up: p_bits / op_bits + 1 <= the IP-CIM's cycles per key.
    op_bits = draw(st.sampled_from([b for b in range(1, p_bits + 1) if p_bits % b == 0 and p_bits // b + 1 <= G]))
    lanes = draw(st.one_of(st.none(), st.integers(-(-rows // G), rows)))
    skip = draw(st.sampled_from([None, 6, 14]))
    fields = dict(
        rows=rows, head_dim=draw(st.sampled_from([1, 3, 4, 8])), ip_bits_per_cycle=ip_bits,
        op_bits_per_cycle=op_bits, lazy_threshold=lazy, softmax_lanes=lanes, skip_threshold=skip,
        tiers=draw(st.booleans()), key_skip=draw(st.booleans()),
        key_order=draw(st.sampled_from(["sequential", "pattern"])), sink_keys=draw(st.integers(0, 3)),
        diag_window=draw(st.integers(0, 8)), double_buffer=draw(st.booleans()),
        max_seq_len=64, kv_depth=draw(st.integers(6, 24)))
    try:
        return EngineConfig(**fields).check_engine()
    except ValueError:
        reject()


@st.composite
def workload_specs(draw, cfg):
    decode = draw(st.booleans())
    kv_heads = draw(st.integers(1, 2))
    group = draw(st.integers(1, 3))
    keys = draw(st.integers(1, cfg.kv_keys))
    # Queries are the last tokens of the sequence: never more than the keys.
    queries = draw(st.integers(1, min(keys, 3) if decode else keys))
    return {"kind": "random", "seed": draw(st.integers(0, 1 << 16)), "mode": "decode" if decode else "prefill",
            "heads": kv_heads * group, "kv_heads": kv_heads, "queries": queries, "keys": keys,
            "causal": draw(st.booleans()), "spread": draw(st.sampled_from(SPREADS)),
            "stall": draw(st.sampled_from([0.0, 0.0, 0.3]))}


@pytest.mark.slow
@pytest.mark.skipif(bool(rtlsim.available("verilator")), reason="needs Verilator")
@settings(max_examples=CONFIGS, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate],       # no shrinking: each try is a Verilator build
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_drawn_configs_and_workloads_match_golden(data, tmp_path_factory):
    cfg = data.draw(engine_configs(), label="config")
    specs = data.draw(st.lists(workload_specs(cfg), min_size=3, max_size=3), label="workloads")
    for i, spec in enumerate(specs):
        spec["name"] = f"fuzz-{i}"
    # Lint first: a drawn corner (no sink keys, say) must not trip a warning either.
    path = generate.write_verilog("engine", cfg, tmp_path_factory.mktemp("lint") / "engine.v")
    assert verilator.lint(path) == []
    rtlsim.build("engine", cfg, "verilator")
    results, _, test_dir, failed, _ = run_workloads(cfg, specs, sim="verilator", seed=3)
    assert failed == 0, f"see {test_dir / 'sim.log'}"
    for spec, res in zip(specs, results):
        assert res["mismatches"] == 0 and not res["errors"], (spec, res)
