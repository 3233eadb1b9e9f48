"""Shared test set-up."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _fresh_area_cache(tmp_path_factory):
    # Synthesis tests must run Yosys, not read a result cached by an earlier run.
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSIONCIM_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
