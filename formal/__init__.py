"""Formal proofs of the blocks' protocol and safety properties (SymbiYosys, z3 and ABC).

``python -m fusioncim.formal`` (``make formal``) proves every property on the
small formal configs (``formal/configs.py``) and shows each one failing on its
broken variant; ``tests/test_formal.py`` runs the same in the regression, one test per block.
See docs/formal.md for the list, the bounds and what each property means.
"""

from __future__ import annotations

from ..hw.controller import Controller
from ..hw.engine import Engine
from ..hw.ip_cim import IpCim
from ..hw.op_cim import OpCim
from ..hw.softmax import Softmax
from . import configs, controller, engine, ip_cim, op_cim, softmax
from .common import FormalToolError, Property, Result, run
from .configs import FORMAL

__all__ = ["BLOCKS", "PROPERTIES", "FormalToolError", "Property", "Result", "check", "config_of"]

BLOCKS = {"ip_cim": IpCim, "controller": Controller, "softmax": Softmax, "op_cim": OpCim, "engine": Engine}
PROPERTIES = [*ip_cim.PROPERTIES, *controller.PROPERTIES, *softmax.PROPERTIES, *op_cim.PROPERTIES,
              *engine.PROPERTIES]


def config_of(prop: Property, *, quick=False):
    """The config ``prop`` is proven on: its own or ``configs.FORMAL``; with ``quick`` the regression's
    smaller copy of it (``configs.quick``)."""
    config = prop.config or FORMAL
    return configs.quick(config) if quick else config


def check(prop: Property, *, mutant=False, quick=False) -> Result:
    """Prove ``prop`` (or, with ``mutant``, look for its counterexample on the broken variant); ``quick``:
    on the regression's smaller config."""
    return run(prop, config_of(prop, quick=quick), BLOCKS[prop.block], mutant=mutant)
