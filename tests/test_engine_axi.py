"""The AXI top (hw/axi.py) driven by cocotbext-axi: real heads bit-exact, counters over AXI-Lite, errors.

Verilator: the first 64 tokens of a SmolLM2-135M head (layer 12, causal; 16 tiles) on the test
preset at SmolLM2's head_dim, under random backpressure on every stream (bench/throughput.py and
`fusioncim simulate` run whole heads). Icarus: a short MiniLM-L6 head (24
tokens). Both also run the register, interrupt and error tests of tb/engine_axi_tests.py.
"""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fusioncim.accuracy import attnfile
from fusioncim.sim import program as host, rtlsim
from fusioncim.core.config import PRESETS
from fusioncim.core.files import data_path
from fusioncim.sim.checks import decode_outputs, read_observed
from fusioncim.sim.simulate import plan

CASES = {
    # kv_depth 260 and 48: not powers of two, so a KV address beyond the buffer is representable.
    "verilator": (PRESETS["test"].replace(head_dim=64, max_seq_len=300, kv_depth=260), "smollm2-L12-T256.npz", 64),
    "icarus": (PRESETS["test"].replace(head_dim=32, kv_depth=48), "minilm-L02-T256.npz", 24),
}
TESTS = 6          # cocotb tests in the two modules, one simulation
TEST_MODULES = ["fusioncim.tb.engine_axi_tests", "fusioncim.tb.engine_axi_control"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", list(CASES))
def test_engine_axi(sim):
    cfg, npz, tokens = CASES[sim]
    why = rtlsim.available(sim)
    assert why is None, why
    specs = [{"name": "real", "kind": "npz", "path": str(data_path("real", npz)), "heads": [0], "tokens": tokens},
             {"name": "directed-small", "kind": "random", "heads": 1, "kv_heads": 1, "queries": 3, "keys": 9,
              "seed": 5, "causal": False}]
    planned = plan(cfg, specs, seed=3)
    # The real head's transactions from its float Q, K, V through the host reference (quantisation
    # included), which must give the quantised inputs golden ran on; the random one's from its program.
    att = attnfile.load(data_path("real", npz))
    n = tokens
    z, _, real_ops = host.axi_from_float(att.q[:1, :n], att.k[:1, :n], att.v[:1, :n], cfg, scale=att.scale,
                                         causal=planned[0].workload.causal)
    for name in ("q", "k", "v", "c_mant", "c_shift"):
        assert np.array_equal(getattr(z, name), getattr(planned[0].workload.z, name)), name
    # The driver author's golden (host.axi_golden) is the one the RTL's counters are held to below.
    mine = host.axi_golden(z, cfg, causal=planned[0].workload.causal)
    assert mine.counters == planned[0].golden.counters
    np.testing.assert_array_equal(mine.out, planned[0].golden.out)
    w = planned[1].workload
    small_ops = host.axi_ops(host.program(w.z.q, w.z.k, w.z.v, w.z.c_mant, w.z.c_shift, cfg, causal=w.causal), cfg)
    with tempfile.TemporaryDirectory(prefix="fusioncim-axi-") as tmp:
        prog = host.write_program(Path(tmp) / "program.txt", cfg, [p.host for p in planned])
        (Path(tmp) / "ops.json").write_text(json.dumps([real_ops, small_ops]))
        total, failed, xml = rtlsim.run("engine_axi", cfg, sim, TEST_MODULES, seed=3,
                                        extra_env={"FUSIONCIM_PROGRAM": str(prog), "FUSIONCIM_RESULTS": tmp,
                                                   "FUSIONCIM_AXI_OPS": str(Path(tmp) / "ops.json")},
                                        timeout=600)
        assert total == TESTS and failed == 0, f"{failed} of {total} failed; see {xml.parent / 'sim.log'}"
        results = json.loads((Path(tmp) / "results.json").read_text())
        words = read_observed(tmp, len(results))
    # Every output element compared (decoded from the words the testbench saw), every counter equal to golden's.
    assert [r["name"] for r in results] == ["real", "directed-small"]
    for r, p, w in zip(results, planned, words):
        assert r["mismatching_rows"] == 0
        out, mismatches = decode_outputs(cfg, p.host, p.golden.out.shape, w)
        assert mismatches == 0
        np.testing.assert_array_equal(out, p.golden.out)
        assert r["elements"] == sum(len(s["o_out"]) for s in p.host.segments) * cfg.head_dim > 0
        assert r["errors"] == [], r["errors"]
        assert {k: v for k, v in r["rtl"].items() if k != "cycles"} == \
            {k: v for k, v in p.golden.counters.to_dict().items() if k in r["rtl"] and k != "cycles"}
        assert r["rtl"]["cycles"] >= p.golden.counters.cycles


def test_axi_outputs_decode_golden_frames():
    # The host reference's output decoding: golden's rows, framed as the AXI top sends them, come back as
    # golden's dequantised output, element for element.
    from fusioncim.golden import engine
    from fusioncim.accuracy.quant import dequantise
    from fusioncim.hw.common import encode
    from fusioncim.hw.op_cim import o_out_layout
    from fusioncim.hw.regmap import stream_bytes
    cfg = CASES["icarus"][0]
    att = attnfile.load(data_path("real", "minilm-L02-T256.npz"))
    z, prog, ops = host.axi_from_float(att.q[:2, :20], att.k[:2, :20], att.v[:2, :20], cfg, scale=att.scale)
    gold = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=att.causal)
    n = stream_bytes(cfg)["o"]
    frames = [b"".join(encode(o_out_layout(cfg), {"row": r, "o": gold.out[c.head[r], c.qrow[r]]}).to_bytes(n, "little")
                       for r in range(c.n_rows)) for seg in prog for c in seg.commands]
    assert [op[2] for op in ops if op[0] == "frame"] == [c.n_rows for seg in prog for c in seg.commands]
    np.testing.assert_array_equal(host.axi_outputs(frames, prog, z, cfg, gold.out.shape), dequantise(gold.out, z, cfg))
    with pytest.raises(ValueError, match="output frames for"):
        host.axi_outputs(frames[:-1], prog, z, cfg, gold.out.shape)
