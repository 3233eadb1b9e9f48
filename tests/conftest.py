"""Shared test set-up."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _fresh_area_cache(tmp_path_factory):
    # Synthesis tests must run Yosys, not read a result cached by an earlier run. The cache is fresh
    # for each run and shared by its pytest-xdist workers (their temporary folders sit side by side),
    # so a design is built once per run; builds and run folders are locked (fusioncim/sim/rtlsim.py).
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cache"
    cache.mkdir(exist_ok=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSIONCIM_CACHE", str(cache))
    yield
    mp.undo()


def pytest_collection_modifyitems(config, items):
    # The longest tests (marked slow) first: with two workers the run then ends on short tests
    # instead of one worker finishing a long one alone. Otherwise collection order is kept.
    # The formal proofs lead, the engine's (the longest of all) first.
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "test_formal.py" not in item.nodeid,
                                 "[engine]" not in item.nodeid))
