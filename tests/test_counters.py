"""The counter list (fusioncim/core/counters.py) is the one every face of the engine uses."""

import dataclasses
import re
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import wiring

from fusioncim.core.config import PRESETS
from fusioncim.core.counters import COUNTER_BITS, ENGINE_COUNTERS, SOFTMAX_COUNTERS, Counters, step
from fusioncim.hw.engine import Engine
from fusioncim.hw.softmax import Softmax

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _unused(component):
    # Built only to read its signature: not a design that was forgotten.
    component._MustUse__silence = True
    return component


def _counter_ports(component):
    return [(name, Shape.cast(member.shape).width) for name, member in component.signature.members.items()
            if name in set(ENGINE_COUNTERS)]


def test_engine_ports_are_the_counters_in_order():
    cfg = PRESETS["test"]
    engine, softmax = _unused(Engine(cfg)), _unused(Softmax(cfg))
    assert _counter_ports(engine) == [(n, COUNTER_BITS) for n in ENGINE_COUNTERS]
    assert _counter_ports(softmax) == [(n, COUNTER_BITS) for n in SOFTMAX_COUNTERS]
    for port in (engine, softmax):
        for name in ENGINE_COUNTERS:
            if name in dict(_counter_ports(port)):
                assert port.signature.members[name].flow == wiring.Out


def test_golden_record_has_every_counter_and_one_derived_figure():
    fields = [f.name for f in dataclasses.fields(Counters)]
    assert [f for f in fields if f != "ideal_cycles"] == list(ENGINE_COUNTERS)
    assert set(SOFTMAX_COUNTERS) < set(ENGINE_COUNTERS)


def test_steps_by_hand():
    cfg = PRESETS["test"]                                   # 4 rows
    assert step("cycles", cfg) == 1 and step("keys", cfg) == 1
    assert step("fine_lookups", cfg) == 4 and step("rescales", cfg) == 4


def test_docs_list_every_counter():
    text = (DOCS / "engine.md").read_text()
    para = text[text.index("Counters: `cycles`"):]
    para = para[:para.index("\n\n")]
    assert re.findall(r"`(\w+)`", para)[:len(ENGINE_COUNTERS)] == list(ENGINE_COUNTERS)
