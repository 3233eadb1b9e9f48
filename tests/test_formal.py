"""Formal proofs of every block's properties (``formal/``), and each one failing on a broken variant.

A property that held on its broken variant would be vacuous (an assumption
too strong, an assertion that never fires); the second test rules that out.
The list, the configs and the bounds: docs/formal.md; ``make formal`` prints them.
"""

import pytest

from fusioncim.formal import PROPERTIES, check
from fusioncim.formal.configs import FORMAL, narrower
from fusioncim.formal.controller import STALL, tile_bound

pytestmark = pytest.mark.slow

IDS = [p.key for p in PROPERTIES]


@pytest.mark.parametrize("prop", PROPERTIES, ids=IDS)
def test_property_holds(prop):
    result = check(prop)
    assert result.passed, f"{prop.key} ({prop.bound}) does not hold:\n{result.log[-4000:]}"


@pytest.mark.parametrize("prop", PROPERTIES, ids=IDS)
def test_broken_variant_fails(prop):
    result = check(prop, mutant=True)
    assert not result.passed, f"{prop.key} also holds on its broken variant ({prop.mutant_text}): vacuous"


def test_every_block_has_properties():
    assert {p.block for p in PROPERTIES} == {"ip_cim", "controller", "softmax", "op_cim", "engine"}
    assert len(set(IDS)) == len(IDS)


def test_narrower_config_is_one_bit_short():
    narrow = narrower(FORMAL, "sum_width")
    assert narrow.sum_width == FORMAL.sum_width - 1
    assert narrow.acc_width == FORMAL.acc_width and narrow.rows == FORMAL.rows


def test_controller_tile_bound_by_hand():
    # 2 rows x (2 x 2 + 1) + 4 keys x (2 + 1) + 2 x 2 + 2
    assert STALL == 2 and tile_bound(FORMAL) == 10 + 12 + 6
