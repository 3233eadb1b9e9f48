"""The Verilog cache: converted once per block, config and generator source; never served stale."""

from pathlib import Path

import pytest

from fusioncim.ip import generate
from fusioncim.core.config import PRESETS

ROOT = Path(__file__).resolve().parent.parent


def test_sources_follow_the_imports():
    names = {f.relative_to(ROOT).as_posix() for f in generate.generator_sources()}
    assert {f"hw/{p.name}" for p in (ROOT / "hw").glob("*.py")} <= names
    # what hw imports from fusioncim, directly or not
    assert {"fusioncim/core/config.py", "fusioncim/core/counters.py", "fusioncim/core/lut.py", "fusioncim/core/schedule.py",
            "fusioncim/core/errors.py", "fusioncim/ip/generate.py"} <= names
    # and not the application around it
    assert not names & {"fusioncim/cli/", "fusioncim/sim/simulate.py", "fusioncim/sim/workload.py"}


def test_converted_once_then_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    cfg = PRESETS["test"]
    first = generate.verilog_text("ip_cim", cfg)
    assert generate.verilog_path("ip_cim", cfg).read_text() == first

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")
    monkeypatch.setattr(generate, "convert", no_conversion)
    assert generate.verilog_text("ip_cim", cfg) == first
    with pytest.raises(AssertionError, match="converted again"):
        generate.verilog_text("ip_cim", cfg.replace(rows=2))          # another config is not in the cache


def test_an_edit_to_the_generator_changes_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    cfg = PRESETS["test"]
    before = generate.verilog_path("engine", cfg)
    monkeypatch.setattr(generate, "generator_digest", lambda: "an edited generator")
    assert generate.verilog_path("engine", cfg) != before


def test_unwritable_cache_still_generates(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FUSIONCIM_CACHE", str(blocker))
    assert "module ip_cim" in generate.verilog_text("ip_cim", PRESETS["test"])
