"""The KV buffer as an SRAM module a foundry macro can replace (hw/kv_sram.py; issue 32, item 4).

The generated engine's ``kv_sram`` module is cut out of its Verilog and a behavioural SRAM model written
here from the documented interface alone (as a macro's simulation model would be) put in its place; the
engine then runs random heads bit-exact with golden, every counter equal, on Icarus.
"""

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fusioncim.core.config import PRESETS
from fusioncim.ip.generate import verilog_text
from fusioncim.sim import program as host, rtlsim
from fusioncim.sim.checks import decode_outputs, read_observed
from fusioncim.sim.simulate import plan

CFG = PRESETS["test"].replace(kv_depth=48)          # the engine tests' config (tests/test_engine_rtl.py)


def macro_model(cfg):
    """A simple dual-port synchronous SRAM with the documented ports, written from the table alone."""
    w, a, depth = cfg.head_dim * cfg.data_bits, cfg.kv_addr_bits, cfg.kv_keys
    return f"""module kv_sram(input clk, input rst, input wr_en, input [{a - 1}:0] wr_addr, input [{w - 1}:0] wr_data,
               input rd_en, input [{a - 1}:0] rd_addr, output reg [{w - 1}:0] rd_data);
  reg [{w - 1}:0] words [0:{depth - 1}];
  always @(posedge clk) begin
    if (wr_en) words[wr_addr] <= wr_data;
    if (rd_en) rd_data <= words[rd_addr];
  end
endmodule
"""


def test_the_generated_kv_sram_has_the_documented_ports():
    text = verilog_text("engine", CFG)
    assert len(re.findall(r"^\s*kv_sram \w+ \(", text, re.M)) == 2             # the K and the V buffer
    (header,) = re.findall(r"^module kv_sram\((.*?)\);", text, re.M)
    assert sorted(p.strip() for p in header.split(",")) == sorted(
        ["clk", "rst", "wr_en", "wr_addr", "wr_data", "rd_en", "rd_addr", "rd_data"])
    w, a = CFG.head_dim * CFG.data_bits, CFG.kv_addr_bits
    body = text[text.index("module kv_sram("):]
    body = body[:body.index("endmodule")]
    for port, width in (("wr_addr", a), ("rd_addr", a), ("wr_data", w), ("rd_data", w)):
        assert re.search(rf"(input|output) \[{width - 1}:0\] {port};", body), port


@pytest.mark.slow
def test_a_macro_model_in_place_of_the_kv_sram_is_bit_exact():
    text = verilog_text("engine", CFG)
    start = text.index("module kv_sram(")
    end = text.index("endmodule", start) + len("endmodule\n")
    replaced = text[:start] + macro_model(CFG) + text[end:]
    assert replaced.count("module kv_sram(") == 1 and "reg [127:0] words" in replaced
    specs = [{"name": "heads", "kind": "random", "heads": 2, "kv_heads": 1, "queries": 9, "keys": 40, "seed": 4,
              "causal": True}]
    planned = plan(CFG, specs, seed=4)
    with tempfile.TemporaryDirectory(prefix="fusioncim-sram-") as tmp:
        prog = host.write_program(Path(tmp) / "program.txt", CFG, [p.host for p in planned])
        total, failed, xml = rtlsim.run("engine", CFG, "icarus", "fusioncim.tb.engine_tests",
                                        testcase="workloads_bit_exact", seed=4, timeout=300, verilog=replaced,
                                        extra_env={"FUSIONCIM_PROGRAM": str(prog), "FUSIONCIM_RESULTS": tmp})
        assert total == 1 and failed == 0, f"see {xml.parent / 'sim.log'}"
        assert "words" in (xml.parent.parent / "engine.v").read_text()          # the model was what ran
        (result,) = json.loads((Path(tmp) / "results.json").read_text())
        (words,) = read_observed(tmp, 1)
    p = planned[0]
    out, mismatches = decode_outputs(CFG, p.host, p.golden.out.shape, words)
    assert mismatches == 0 and result["mismatching_rows"] == 0 and result["errors"] == []
    np.testing.assert_array_equal(out, p.golden.out)
    assert {k: v for k, v in result["rtl"].items() if k != "cycles"} == \
        {k: v for k, v in p.golden.counters.to_dict().items() if k in result["rtl"] and k != "cycles"}
    assert result["rtl"]["cycles"] >= p.golden.counters.cycles
