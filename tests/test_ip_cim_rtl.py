"""The generated IP-CIM Verilog, cycle by cycle against the golden model, on Verilator and Icarus.

Each config is built once per simulator (cached in $FUSIONCIM_CACHE/rtl); the cocotb
module ``fusioncim.tb.ip_cim_tests`` runs random data with stalls, extreme
values, Q reloads between keys, read-back and back-to-back throughput.
"""

import os

import pytest

from fusioncim.ip import generate
from fusioncim.sim import rtlsim, verilator
from fusioncim.core.config import EngineConfig

# Every bits-per-cycle, row count and head_dim of the issue appears at least once.
CONFIGS = {
    "bpc1-r1-d8": EngineConfig(ip_bits_per_cycle=1, rows=1, head_dim=8),
    "bpc2-r4-d64": EngineConfig(ip_bits_per_cycle=2, rows=4, head_dim=64),
    "bpc4-r16-d128": EngineConfig(ip_bits_per_cycle=4, rows=16, head_dim=128),
    "bpc8-r4-d8": EngineConfig(ip_bits_per_cycle=8, rows=4, head_dim=8),
    "bpc1-r16-d64": EngineConfig(ip_bits_per_cycle=1, rows=16, head_dim=64),
    "bpc8-r1-d128": EngineConfig(ip_bits_per_cycle=8, rows=1, head_dim=128),
}
SEED = int(os.environ.get("FUSIONCIM_SEED", "2026"))
KEYS = os.environ.get("FUSIONCIM_KEYS", "40")


# Verilator on bpc1-r1-d8, bpc2-r4-d64, bpc8-r4-d8; Icarus on every config (rtlsim.sim_cases).
CASES = rtlsim.sim_cases(CONFIGS, verilator=["bpc1-r1-d8", "bpc2-r4-d64", "bpc8-r4-d8"])


@pytest.mark.parametrize("name, sim", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_ip_cim_rtl(sim, name):
    rtlsim.check("ip_cim", CONFIGS[name], sim, "fusioncim.tb.ip_cim_tests", tests=5, seed=SEED,
                 extra_env={"FUSIONCIM_KEYS": KEYS})


@pytest.mark.parametrize("name", CONFIGS)
def test_verilator_lint_clean(name, tmp_path):
    path = generate.write_verilog("ip_cim", CONFIGS[name], tmp_path / "ip_cim.v")
    assert verilator.lint(path) == []


def test_lint_catches_a_real_truncation(tmp_path):
    # The waivers must not hide the class of bug they are narrowed against.
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [7:0] a, input [7:0] b, output [3:0] y);\n"
                   "  assign y = a + b;\nendmodule\n")
    found = verilator.lint(bad)
    assert [w.rule for w in found] == ["WIDTHTRUNC"]
    multi = tmp_path / "multi.v"
    multi.write_text("module multi(input clk, input a, input b, output reg y);\n"
                     "  always @(posedge clk) y <= a;\n  always @(negedge clk) y <= b;\nendmodule\n")
    assert [w.rule for w in verilator.lint(multi)] == ["MULTIDRIVEN"]
