"""What the engine's run is checked against, shared by the cocotb testbench and the native path.

Pure Python (no cocotb): ``tb/engine_tests.py`` uses it inside the simulator,
``fusioncim.sim.native`` after the native harness has run, so both paths judge a
run by the same rules.
"""

from __future__ import annotations

from ..core.counters import ENGINE_COUNTERS
from ..hw.common import decode
from ..hw.op_cim import o_out_layout

__all__ = ["compare_counters", "cycle_budget", "mismatching_elements", "record", "program_from_env"]


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


def mismatching_elements(cfg, observed, expected):
    """Output elements (and row fields) that differ; a missing or extra row counts all its elements."""
    layout = o_out_layout(cfg)
    bad = abs(len(observed) - len(expected)) * cfg.head_dim
    for got, want in zip(observed, expected):
        if got != want:
            g, w = decode(layout, got), decode(layout, want)
            bad += sum(a != b for a, b in zip(g["o"], w["o"])) + (g["row"] != w["row"])
    return bad


def record(cfg, w, rtl, err, observed, wall_cycles):
    """A workload's run judged against golden: counters, error flags and every output word.

    ``w`` is the host workload (``fusioncim.sim.program.HostWorkload``), ``rtl`` the engine's counters, ``err``
    its error flags, ``observed`` its output words in order. The record both paths return.
    """
    errors = compare_counters(rtl, w.counters, exact_cycles=w.exact_cycles)
    if err:
        errors.append(f"error flags {err:#x} raised by a legal workload")
    expected = [word for seg in w.segments for _, word in seg["o_out"]]
    return {"name": w.name, "rtl": rtl, "golden": w.counters,
            "mismatches": mismatching_elements(cfg, observed, expected),
            "elements": len(expected) * cfg.head_dim, "wall_cycles": wall_cycles, "errors": errors}
