"""Formal proofs of every block's properties (``formal/``), and each one failing on a broken variant.

A property that held on its broken variant would be vacuous (an assumption
too strong, an assertion that never fires); the mutant runs rule that out.
One test per block, its SymbiYosys runs two at a time, on the regression's
smaller copies of the formal configs (``configs.quick``: head_dim 1), where
every property still holds and every broken variant is still caught; ``make
formal`` proves the full configs. The list, the configs and the bounds:
docs/formal.md; ``make formal`` prints them.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

from fusioncim.formal import BLOCKS, PROPERTIES, check
from fusioncim.formal.configs import FORMAL, narrower
from fusioncim.formal.controller import STALL, tile_bound

JOBS = 2


@pytest.mark.slow
@pytest.mark.parametrize("block", list(BLOCKS))
def test_properties_hold_and_broken_variants_fail(block):
    runs = [(p, mutant) for p in PROPERTIES if p.block == block for mutant in (False, True)]
    assert runs
    with ThreadPoolExecutor(JOBS) as pool:
        results = list(pool.map(lambda r: check(r[0], mutant=r[1], quick=True), runs))
    problems = []
    for (prop, mutant), res in zip(runs, results):
        if not mutant and not res.passed:
            problems.append(f"{prop.key} ({prop.bound}) does not hold:\n{res.log[-3000:]}")
        if mutant and res.passed:
            problems.append(f"{prop.key} also holds on its broken variant ({prop.mutant_text}): vacuous")
    assert not problems, "\n".join(problems)


def test_every_block_has_properties():
    keys = [p.key for p in PROPERTIES]
    assert {p.block for p in PROPERTIES} == set(BLOCKS) and len(set(keys)) == len(keys)


def test_narrower_config_is_one_bit_short():
    narrow = narrower(FORMAL, "sum_width")
    assert narrow.sum_width == FORMAL.sum_width - 1
    assert narrow.acc_width == FORMAL.acc_width and narrow.rows == FORMAL.rows


def test_controller_tile_bound_by_hand():
    # 2 rows x (2 x 2 + 1) + 4 keys x (2 + 1) + 2 x 2 + 2
    assert STALL == 2 and tile_bound(FORMAL) == 10 + 12 + 6


def test_a_pdr_run_out_of_time_is_not_proven(monkeypatch):
    # engine.rows needs well over a second of PDR: with a 1-second limit it
    # must come back not proven, never as a pass.
    from fusioncim.formal import common
    monkeypatch.setattr(common, "PDR_LIMIT_S", 1)
    prop = next(p for p in PROPERTIES if p.key == "engine.rows")
    res = check(prop)
    assert not res.passed
    assert "not proven: PDR ran out of its 1 s" in res.log
