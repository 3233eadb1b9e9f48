"""Are two Verilog netlists the same design? A Yosys miter run in lockstep on random inputs in Icarus.

Both netlists are flattened by Yosys into one miter: the two designs get the
same inputs every cycle, and the miter's ``trigger`` output is high in any
cycle where an output port differs. Icarus runs it for a number of cycles of
random inputs (every input port, valid and ready bits included, redrawn each
cycle; reset for the first 3 cycles and then about once in 500) and counts the
cycles where ``trigger`` is high or unknown. Memories without initial contents
(the engine's KV buffer) start at zero in both designs, so an unwritten word
reads the same. This needs no matching of internal state, so it holds across
renamed signals and new hierarchy; it is a simulation, not a proof: a
difference random inputs never reach goes unseen.

Used by ``tests/test_generate.py`` (flat against hierarchical netlists) and
``bench/equiv.py`` (one revision of the generator against another).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from .rtlsim import icarus_time0

__all__ = ["compare", "testbench"]

_YOSYS = """
import sys
from pyosys import libyosys as ys
old, new, top, out = sys.argv[1:5]
d = ys.Design()
def run(cmd):
    ys.run_pass(cmd, d)
for path, name in ((old, "gold"), (new, "gate")):
    run(f"read_verilog -sv {path}")
    run(f"hierarchy -top {top}")
    run("setattr -mod -unset keep_hierarchy; proc; flatten; memory_map; setundef -zero -init; opt_clean")
    run(f"rename {top} {name}")
    run(f"hierarchy -top {name}")
    run(f"design -stash {name}")
run("design -copy-from gold -as gold gold")
run("design -copy-from gate -as gate gate")
run("miter -equiv -flatten gold gate miter")
run("hierarchy -top miter")
run("opt_clean")
run(f"write_verilog -noattr {out}")
"""

_PORT = re.compile(r"^\s*input\s+(?:\[(\d+):0\]\s*)?(in_\w+)\s*;", re.M)


def testbench(miter_text, cycles, seed):
    """An Icarus testbench: random inputs each cycle, counts cycles where ``trigger`` is not 0."""
    ports = [(name, int(msb) + 1 if msb else 1) for msb, name in _PORT.findall(miter_text)
             if name not in ("in_clk", "in_rst")]
    decl = "".join(f"  reg [{w - 1}:0] {n};\n" for n, w in ports)
    draw = "".join(f"      {n} = {{{', '.join(['$random(seed)'] * (-(-w // 32)))}}};\n" for n, w in ports)
    conn = ", ".join(f".{n}({n})" for n, _ in ports)
    return f"""`timescale 1ns/1ps
module tb;
  reg in_clk = 0, in_rst = 1;
{decl}  wire trigger;
  miter dut(.in_clk(in_clk), .in_rst(in_rst), {conn}, .trigger(trigger));
  integer cyc, seed, diff, unknown;
  initial begin
    seed = {seed}; diff = 0; unknown = 0;
    for (cyc = 0; cyc < {cycles}; cyc = cyc + 1) begin
      in_rst = (cyc < 3) || ($random(seed) % 500 == 0);
{draw}      #1;
      if (trigger === 1'b1) begin diff = diff + 1; if (diff <= 3) $display("differs in cycle %0d", cyc); end
      else if (trigger !== 1'b0) unknown = unknown + 1;
      in_clk = 1; #1; in_clk = 0; #1;
    end
    $display("RESULT cycles %0d differ %0d unknown %0d", cyc, diff, unknown);
    $finish;
  end
endmodule
"""


def compare(old, new, top, cycles, workdir, seed=1):
    """(cycles where the outputs differ, cycles where unknown, seconds)."""
    t0 = time.perf_counter()
    miter = workdir / f"{old.stem}-miter.v"
    subprocess.run([sys.executable, "-c", _YOSYS, str(old), str(new), top, str(miter)], capture_output=True,
                   text=True, timeout=1800, check=True)
    text = icarus_time0(miter.read_text())
    miter.write_text(text)
    tb = workdir / f"{old.stem}-tb.v"
    tb.write_text(testbench(text, cycles, seed))
    exe = workdir / f"{old.stem}.vvp"
    subprocess.run(["iverilog", "-g2012", "-o", str(exe), str(tb), str(miter)], check=True, capture_output=True,
                   timeout=600)
    out = subprocess.run(["vvp", "-n", str(exe)], capture_output=True, text=True, timeout=3600).stdout
    m = re.search(r"RESULT cycles (\d+) differ (\d+) unknown (\d+)", out)
    if not m or int(m.group(1)) != cycles:
        raise RuntimeError(f"the lockstep simulation did not finish:\n{out[-2000:]}")
    return int(m.group(2)), int(m.group(3)), time.perf_counter() - t0


