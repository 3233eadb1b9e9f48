"""The native path: the C++ harness drives the same host program as cocotb and gives the same record.

Expected outputs and counters come from golden (through the host program);
the cocotb run of the same program is the second witness: every counter,
``cycles`` included, and every output word must agree.
"""

import subprocess
import sys

import numpy as np
import pytest

from fusioncim.sim import program as host, native, simulate
from fusioncim.core.config import PRESETS

CFG = PRESETS["test"]
SPECS = [{"kind": "random", "heads": 2, "kv_heads": 1, "queries": 24, "keys": 40, "seed": 5, "name": "plain"},
         {"kind": "random", "heads": 1, "queries": 30, "seed": 6, "stall": 0.3, "name": "stalls", "causal": True}]


@pytest.fixture(scope="module")
def planned():
    return simulate.plan(CFG, SPECS, seed=3)


@pytest.mark.slow
def test_native_matches_golden_and_cocotb(planned):
    nat, nat_out, _, nat_failed, _ = simulate.run_workloads(CFG, SPECS, planned=planned, native=True)
    coc, coc_out, _, coc_failed, _ = simulate.run_workloads(CFG, SPECS, planned=planned)
    assert nat_failed == 0 and coc_failed == 0
    for n, c, p, no, co in zip(nat, coc, planned, nat_out, coc_out):
        assert n["mismatches"] == 0 and n["errors"] == []
        assert n["elements"] == p.golden.out.size
        assert np.array_equal(no, p.golden.out) and np.array_equal(no, co)
        assert n["rtl"] == c["rtl"]                          # every counter, cycles included
        gold = p.host.counters
        assert {k: v for k, v in n["rtl"].items() if k != "cycles"} == {k: gold[k] for k in n["rtl"] if k != "cycles"}
    assert nat[0]["rtl"]["cycles"] == planned[0].host.counters["cycles"]      # no stalls: the exact schedule
    assert nat[1]["rtl"]["cycles"] > planned[1].host.counters["cycles"]       # stalls cost cycles


def test_a_wrong_output_is_found(planned):
    # The same program with one expected row changed: the comparison after the run must see it.
    rows = planned[0].host.segments[0]["o_out"]
    gap, word = rows[0]
    rows[0] = (gap, word ^ (1 << 7))
    try:
        res, _, _, failed, _ = simulate.run_workloads(CFG, SPECS[:1], planned=planned[:1], native=True)
    finally:
        rows[0] = (gap, word)
    assert failed == 1 and res[0]["mismatches"] == 1


def test_a_stalled_run_fails_and_says_where(planned, tmp_path):
    binary = native.build(CFG)
    prog = host.write_program(tmp_path / "program.txt", CFG, [planned[0].host])
    (tmp_path / "budgets.txt").write_text("50\n")
    done = subprocess.run([str(binary), str(prog), str(tmp_path / "budgets.txt"), str(tmp_path / "out.txt")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "stalled after" in done.stderr and "cmd beat" in done.stderr


def test_a_malformed_program_is_refused(tmp_path):
    binary = native.build(CFG)
    (tmp_path / "p.txt").write_text("fusioncim-host-program 1\nworkload {}\nsegment\ncmd zz\n")
    (tmp_path / "b.txt").write_text("100\n")
    done = subprocess.run([str(binary), str(tmp_path / "p.txt"), str(tmp_path / "b.txt"), str(tmp_path / "o.txt")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "p.txt:4" in done.stderr


def test_cli_says_which_path_ran():
    out = subprocess.run([sys.executable, "-m", "fusioncim", "simulate", "--config", "test", "--path", "native",
                          "--queries", "16", "--seed", "4"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "native C++ harness" in out.stdout and "0 of" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "fusioncim", "simulate", "--config", "test", "--path", "native",
                          "--sim", "icarus"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_auto_picks_native_only_for_long_verilator_runs():
    n = simulate.NATIVE_FROM_CYCLES
    assert simulate.choose_path("auto", "verilator", None, n + 1) == "native"
    assert simulate.choose_path("auto", "verilator", None, n) == "cocotb"
    assert simulate.choose_path("auto", "icarus", None, n + 1) == "cocotb"
    assert simulate.choose_path("auto", "verilator", "x.vcd", n + 1) == "cocotb"
    assert simulate.choose_path("cocotb", "verilator", None, n + 1) == "cocotb"
