"""Shared test set-up."""

import pytest


def pytest_collection_modifyitems(items):
    # The longest tests (marked slow) first, in file order otherwise: `make test`
    # runs two workers, and a long test started last would leave one of them
    # working alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _fresh_area_cache(tmp_path_factory):
    # Synthesis tests must run Yosys, not read a result cached by an earlier run.
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSIONCIM_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
