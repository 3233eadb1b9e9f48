"""What the engine's run is checked against, shared by the cocotb testbench and the native path.

Pure Python (no cocotb): ``tb/engine_tests.py`` uses it inside the simulator,
``fusioncim.sim.native`` after the native harness has run, so both paths judge a
run by the same rules.
"""

from __future__ import annotations

from ..core.counters import ENGINE_COUNTERS
from ..hw.common import decode
from ..hw.op_cim import o_out_layout

__all__ = ["compare_counters", "cycle_budget", "mismatching_rows", "record", "decode_outputs", "expected_words",
           "program_from_env", "write_observed", "read_observed"]


def program_from_env():
    """``(EngineConfig, [HostWorkload])`` from the host-program file ``FUSIONCIM_PROGRAM`` names."""
    import os
    from ..core.config import EngineConfig
    from .program import read_program
    path = os.environ.get("FUSIONCIM_PROGRAM")
    assert path, "FUSIONCIM_PROGRAM names no host program"
    config, workloads = read_program(path)
    assert workloads, f"{path} holds no workload"
    return EngineConfig(**config), workloads


def write_observed(outdir, index, words):
    """Workload ``index``'s output words, as the testbench saw them, into ``outdir`` (one hex word a line)."""
    from pathlib import Path
    (Path(outdir) / f"observed-{index}.txt").write_text("".join(f"{x:x}\n" for x in words))


def read_observed(outdir, count):
    """The output words :func:`write_observed` saved for workloads ``0 .. count-1``."""
    from pathlib import Path
    return [[int(x, 16) for x in (Path(outdir) / f"observed-{i}.txt").read_text().split()] for i in range(count)]


def compare_counters(rtl, gold, *, exact_cycles):
    """Mismatch messages between the RTL's counters and golden's (a dict; empty: all equal)."""
    errors = []
    for name in ENGINE_COUNTERS:
        if name == "cycles" and not exact_cycles:
            if rtl[name] < gold[name]:
                errors.append(f"cycles {rtl[name]} below the golden schedule's {gold[name]} with stalls")
        elif rtl[name] != gold[name]:
            errors.append(f"counter {name}: RTL {rtl[name]}, golden {gold[name]}")
    return errors


def cycle_budget(w):
    """Cycles a workload may take before it counts as stalled: four times golden's schedule plus the
    buffer loads, stretched for stall gaps (a beat waits ``1 / (1 - stall)`` cycles on average on
    each side), and a fixed margin for resets and idle checks."""
    c = w.counters
    return int(4 * (c["cycles"] + c["kv_writes"] + c["tiles"]) / (1.0 - w.stall) ** 2) + 1000


def expected_words(w):
    """Golden's output words of a host workload, in the order the engine must send them."""
    return [word for seg in w.segments for _, word in seg["o_out"]]


def mismatching_rows(observed, expected):
    """Output rows whose word differs from golden's; a missing or extra row counts too. Words only:
    nothing is decoded here (:func:`decode_outputs` decodes them once, in the parent)."""
    return abs(len(observed) - len(expected)) + sum(got != want for got, want in zip(observed, expected))


def record(cfg, w, rtl, err, observed, wall_cycles):
    """A workload's run judged against golden: counters, error flags and every output word.

    ``w`` is the host workload (``fusioncim.sim.program.HostWorkload``), ``rtl`` the engine's counters, ``err``
    its error flags, ``observed`` its output words in order. The record both paths return; the parent
    adds the elements that differ (:func:`decode_outputs`).
    """
    errors = compare_counters(rtl, w.counters, exact_cycles=w.exact_cycles)
    if err:
        errors.append(f"error flags {err:#x} raised by a legal workload")
    expected = expected_words(w)
    return {"name": w.name, "rtl": rtl, "golden": w.counters,
            "mismatching_rows": mismatching_rows(observed, expected),
            "elements": len(expected) * cfg.head_dim, "wall_cycles": wall_cycles, "errors": errors}


def decode_outputs(cfg, w, shape, words):
    """The engine's output words of host workload ``w``, decoded once: the ``shape`` (``[H, Lq, d]``)
    array they fill, and the elements (and row fields) that differ from golden's; a missing or extra
    row counts all its elements."""
    import numpy as np
    layout = o_out_layout(cfg)
    out = np.zeros(shape, np.int64)
    expected = expected_words(w)
    bad = abs(len(words) - len(expected)) * cfg.head_dim
    for (head, qrow), word, want in zip(w.where, words, expected):
        got = decode(layout, word)
        out[head, qrow] = got["o"]
        if word != want:
            gold = decode(layout, want)
            bad += sum(a != b for a, b in zip(got["o"], gold["o"])) + (got["row"] != gold["row"])
    return out, bad
