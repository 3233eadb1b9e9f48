"""The worked examples in the golden models' docstrings are part of the contract."""

import doctest
import importlib

import pytest

MODULES = ["fusioncim.golden.ip_cim", "fusioncim.golden.softmax", "fusioncim.golden.op_cim",
           "fusioncim.accuracy.quant", "fusioncim.golden.reference", "fusioncim.core.lut"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
