"""The AXI top (hw/axi.py) driven by cocotbext-axi: real heads bit-exact, counters over AXI-Lite, errors.

Verilator: one whole SmolLM2-135M head (layer 12, 256 tokens, causal) on the test preset at
SmolLM2's head_dim, under random backpressure on every stream. Icarus: a short MiniLM-L6 head (24
tokens). Both also run the register, interrupt and error tests of tb/engine_axi_tests.py.
"""

import json
import tempfile
from pathlib import Path

import pytest

from fusioncim import host, rtlsim
from fusioncim.config import PRESETS
from fusioncim.files import data_path
from fusioncim.simulate import plan

CASES = {
    # kv_depth 260 and 48: not powers of two, so a KV address beyond the buffer is representable.
    "verilator": (PRESETS["test"].replace(head_dim=64, max_seq_len=300, kv_depth=260), "smollm2-L12-T256.npz", 256),
    "icarus": (PRESETS["test"].replace(head_dim=32, kv_depth=48), "minilm-L02-T256.npz", 24),
}
TESTS = 4          # cocotb tests in tb/engine_axi_tests.py


@pytest.mark.parametrize("sim", list(CASES))
def test_engine_axi(sim):
    cfg, npz, tokens = CASES[sim]
    why = rtlsim.available(sim)
    assert why is None, why
    specs = [{"name": "real", "kind": "npz", "path": str(data_path("real", npz)), "heads": [0], "tokens": tokens},
             {"name": "directed-small", "kind": "random", "heads": 1, "kv_heads": 1, "queries": 3, "keys": 9,
              "seed": 5, "causal": False}]
    planned = plan(cfg, specs, seed=3)
    with tempfile.TemporaryDirectory(prefix="fusioncim-axi-") as tmp:
        prog = host.write_program(Path(tmp) / "program.txt", cfg, [p.host for p in planned])
        total, failed, xml = rtlsim.run("engine_axi", cfg, sim, "fusioncim.tb.engine_axi_tests", seed=3,
                                        extra_env={"FUSIONCIM_PROGRAM": str(prog), "FUSIONCIM_RESULTS": tmp},
                                        timeout=600)
        assert total == TESTS and failed == 0, f"{failed} of {total} failed; see {xml.parent / 'sim.log'}"
        results = json.loads((Path(tmp) / "results.json").read_text())
    # Every output element compared (the testbench's record), every counter equal to golden's.
    assert [r["name"] for r in results] == ["real", "directed-small"]
    for r, p in zip(results, planned):
        assert r["mismatches"] == 0
        assert r["elements"] == sum(len(s["o_out"]) for s in p.host.segments) * cfg.head_dim > 0
        assert r["errors"] == [], r["errors"]
        assert {k: v for k, v in r["rtl"].items() if k != "cycles"} == \
            {k: v for k, v in p.golden.counters.to_dict().items() if k in r["rtl"] and k != "cycles"}
        assert r["rtl"]["cycles"] >= p.golden.counters.cycles
