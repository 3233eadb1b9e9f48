"""The clock estimate names the module whose own logic holds the longest path (issue 31, item 1).

Each design here is written by hand with a deliberately long path (a 16 x 16 multiply between
registers) in a known module and short ones elsewhere. Every module is also synthesised alone, as
its own top: its delay inside the hierarchy must be the delay it has on its own, so no module's
figure can carry a neighbour's.
"""

import os
import re
import subprocess
import sys

import pytest

from fusioncim.synth.area import FLOP_CLK_TO_Q_NS, FLOP_SETUP_NS, GENERIC_LIBERTY, synthesise

MULTIPLY = "always @(posedge clk) q <= a * b;"
INCREMENT = "always @(posedge clk) q <= a[3:0] + 4'd1;"


def _module(name, body, keep=True):
    return (("(* keep_hierarchy *)\n" if keep else "")
            + f"module {name}(input clk, input [15:0] a, input [15:0] b, output reg [31:0] q);\n"
            + f"  {body}\nendmodule\n")


def _design(slow):
    # Modules fast and slow under top; the multiply sits in `slow`, which is one of them or the top.
    bodies = {"fast": INCREMENT, "slow": INCREMENT, "top": ""}
    bodies[slow] = MULTIPLY
    top_logic = "  reg [31:0] r;\n  " + bodies["top"].replace("q <=", "r <=") + "\n" if bodies["top"] else ""
    top = ("module top(input clk, input [15:0] a, input [15:0] b, output [31:0] q, output [31:0] f, "
           "output [31:0] s);\n"
           "  fast u0(.clk(clk), .a(a), .b(b), .q(f));\n"
           "  slow u1(.clk(clk), .a(b), .b(a), .q(s));\n"
           + top_logic + ("  assign q = r;\n" if top_logic else "  assign q = f ^ s;\n") + "endmodule\n")
    return {"fast": _module("fast", bodies["fast"]), "slow": _module("slow", bodies["slow"]), "top": top}


def _run(tmp_path, name, text, top):
    work = tmp_path / name
    work.mkdir()
    (work / "d.v").write_text(text)
    return synthesise(work / "d.v", top, work, GENERIC_LIBERTY, GENERIC_LIBERTY.read_bytes(), timeout=120)


@pytest.mark.parametrize("slow", ["slow", "top"])
def test_the_critical_module_is_the_one_with_the_long_path(tmp_path, slow):
    parts = _design(slow)
    r = _run(tmp_path, "whole", "".join(parts.values()), "top")
    assert r["critical_module"] == slow
    assert r["logic_ns"] == max(r["module_ns"].values()) == r["module_ns"][slow]
    # Each submodule timed alone gives the same delay as inside the hierarchy.
    for name in ("fast", "slow"):
        alone = _run(tmp_path, name, parts[name], name)
        assert alone["module_ns"] == {name: r["module_ns"][name]}
    # The multiply is several times the increment's depth: the long path is not a near tie.
    short = r["module_ns"]["fast"]
    assert r["logic_ns"] > 4 * short
    # The clock is that one path plus a flip-flop's clock-to-Q and setup, and nothing else.
    assert r["clock_ns"] == pytest.approx(r["logic_ns"] + FLOP_CLK_TO_Q_NS + FLOP_SETUP_NS, abs=1e-3)
    assert 1000 / r["clock_ns"] == pytest.approx(r["clock_mhz"], rel=1e-3)


def test_area_says_what_the_clock_includes(tmp_path):
    # The CLI line names the module and says the path is one module's; the per-module line lists
    # every module, longest first, and the named one is its first.
    env = {**os.environ, "FUSIONCIM_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "fusioncim", "area", "ip_cim", "--config", "test", "-q"],
                         capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    clock = re.search(r"longest logic path inside one module, ([0-9.]+) ns in (\w+),", out.stdout)
    per = re.search(r"longest logic path per module: (.*)", out.stdout)
    assert clock and per and "paths across module ports are not timed whole" in out.stdout
    listed = [(name, float(ns)) for name, ns in re.findall(r"(\w+) ([0-9.]+) ns", per.group(1))]
    assert {name for name, _ in listed} == {"ip_cim", "ip_row"}
    assert listed == sorted(listed, key=lambda kv: -kv[1])
    assert (clock.group(2), float(clock.group(1))) == listed[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
