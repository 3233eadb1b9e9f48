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

``prove`` turns the same miter into a proof: Yosys lowers it to an and-inverter
graph with every flip-flop starting at zero (the state reset puts them in; the
reset input stays free, so any reset sequence is covered) and ABC's ``dprove``
(signal correspondence and induction, without its bounded search) shows that
``trigger`` can never rise, or finds an input sequence that raises it. It
proves each block at the test preset and the engine at a small config in about
a minute or less; the whole engine at the test preset took ABC 21 minutes
(``bench/equiv.py --prove``).

Used by ``tests/test_hierarchy.py`` (flat against hierarchical netlists) and
``bench/equiv.py`` (one revision of the generator against another).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from ..formal.common import abc_path
from .rtlsim import icarus_time0

__all__ = ["compare", "prove", "testbench", "ProofError"]

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
if out.endswith(".aig"):
    run("setundef -zero; opt -fast; techmap; opt -fast; dffunmap; aigmap; setundef -undriven -zero")
    run("delete t:$scopeinfo; opt_clean")
    run(f"write_aiger -zinit {out}")
else:
    run(f"write_verilog -noattr {out}")
"""

_PORT = re.compile(r"^\s*input\s+(?:\[(\d+):0\]\s*)?(in_\w+)\s*;", re.M)


def testbench(miter_text, cycles, seed):
    """An Icarus testbench: random inputs each cycle, counts cycles where ``trigger`` is not 0."""
    # The blocks' clock and reset (clk, rst), or the AXI top's (aclk, aresetn: active low).
    axi = "in_aclk" in miter_text
    clk, rst = ("in_aclk", "in_aresetn") if axi else ("in_clk", "in_rst")
    ports = [(name, int(msb) + 1 if msb else 1) for msb, name in _PORT.findall(miter_text)
             if name not in (clk, rst)]
    decl = "".join(f"  reg [{w - 1}:0] {n};\n" for n, w in ports)
    # Register addresses mostly word-aligned in the mapped first 512 bytes (else few reads or writes
    # would reach a register), one draw in eight anywhere.
    draw = "".join(f"      {n} = ($random(seed) % 8) ? ($random(seed) & 'h1FC) : $random(seed);\n"
                   if n.endswith("addr") else
                   f"      {n} = {{{', '.join(['$random(seed)'] * (-(-w // 32)))}}};\n" for n, w in ports)
    conn = ", ".join(f".{n}({n})" for n, _ in ports)
    return f"""`timescale 1ns/1ps
module tb;
  reg in_clk = 0, in_rst = 1;
{decl}  wire trigger;
  miter dut(.{clk}(in_clk), .{rst}({'~' if axi else ''}in_rst), {conn}, .trigger(trigger));
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
    miter = _miter(old, new, top, workdir / f"{old.stem}-miter.v", 1800)
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




class ProofError(RuntimeError):
    """The proof ran out of time or ABC gave no verdict."""


def _miter(old, new, top, out, timeout):
    """Write the miter of ``old`` (gold) and ``new`` (gate) to ``out``: Verilog or, for ``.aig``, AIGER."""
    log = out.with_suffix(".yosys.log")
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-c", _YOSYS, str(old), str(new), top, str(out)], stdout=f,
                              stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Yosys could not build the miter of {old} and {new} (log {log}):\n{tail}")
    return out


def prove(old, new, top, workdir, timeout=900):
    """(True if ``old`` and ``new`` are proven the same design, False if ABC found a difference, seconds).

    Raises ``ProofError`` when ABC neither proves nor refutes within ``timeout`` seconds (for each of
    the two steps, Yosys and ABC).
    """
    t0 = time.perf_counter()
    aig = _miter(old, new, top, workdir / f"{old.stem}-miter.aig", timeout)
    # -b: no bounded model check first, -r: no retiming (with it the test preset's OP-CIM took 287 s
    # instead of 6), -m: minimise the counterexample's inputs.
    script = f"read_aiger {aig}; strash; dprove -v -b -r -m"
    try:
        out = subprocess.run([abc_path(), "-c", script], capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired as e:
        raise ProofError(f"ABC gave no verdict on {old.name} against {new.name} in {timeout} s") from e
    (workdir / f"{old.stem}-abc.log").write_text(out)
    if "Networks are equivalent" in out:
        return True, time.perf_counter() - t0
    if re.search(r"Networks are NOT EQUIVALENT|Output \d+ of miter .* was asserted", out):
        return False, time.perf_counter() - t0
    raise ProofError(f"ABC gave no verdict on {old.name} against {new.name}:\n{out[-2000:]}")
