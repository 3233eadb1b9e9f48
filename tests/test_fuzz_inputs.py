"""Malformed inputs, drawn by hypothesis: every reader raises its own one-line error, nothing else.

The budget per property is ``FUSIONCIM_FUZZ_EXAMPLES`` (default 40); raise it for a longer run, e.g.
``FUSIONCIM_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_fuzz_inputs.py``.
"""

import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fusioncim.accuracy import attnfile
from fusioncim.core import config as config_mod
from fusioncim.core import configfile
from fusioncim.synth import energy

BUDGET = settings(max_examples=int(os.environ.get("FUSIONCIM_FUZZ_EXAMPLES", "40")), deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)


def _valid_npz():
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez_compressed(buf, q=rng.normal(size=(2, 4, 8)), k=rng.normal(size=(1, 6, 8)),
                        v=rng.normal(size=(1, 6, 8)), causal=np.array(True), scale=np.array(0.3))
    return buf.getvalue()


VALID = _valid_npz()


def _load_bytes(tmp_path, data):
    p = tmp_path / "f.npz"
    p.write_bytes(data)
    return attnfile.load(p)


def _loaded_ok(att):
    # Whatever load accepts is usable: float, finite, 3-d, consistent shapes.
    for a in (att.q, att.k, att.v):
        assert a.dtype.kind == "f" and a.ndim == 3 and np.isfinite(a).all()
    assert att.k.shape == att.v.shape and att.q.shape[2] == att.k.shape[2] and att.q.shape[0] % att.k.shape[0] == 0


@BUDGET
@given(cut=st.integers(0, len(VALID) - 1))
def test_truncated_npz(tmp_path, cut):
    with pytest.raises(attnfile.AttnFileError):
        _load_bytes(tmp_path, VALID[:cut])


@BUDGET
@given(flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_npz(tmp_path, flips):
    data = bytearray(VALID)
    for pos, val in flips:
        data[pos] = val
    try:
        att = _load_bytes(tmp_path, bytes(data))
    except attnfile.AttnFileError as exc:
        assert "\n" not in str(exc)
    else:
        _loaded_ok(att)


DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "bool", "complex64", "U3", "S2"])
SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@BUDGET
@given(arrays=st.dictionaries(st.sampled_from(["q", "k", "v", "out", "causal", "scale", "source", "extra"]),
                              st.tuples(DTYPES, SHAPES, st.sampled_from([0.0, 1.0, np.nan, np.inf, -2.0])),
                              max_size=8))
def test_wrong_arrays(tmp_path, arrays):
    p = tmp_path / "f.npz"
    with np.errstate(invalid="ignore"):          # NaN cast to an integer dtype: whatever it becomes
        np.savez(p, **{name: np.full(shape, fill).astype(dtype) if dtype[0] not in "US"
                       else np.full(shape, "ab", dtype) for name, (dtype, shape, fill) in arrays.items()})
    try:
        att = attnfile.load(p)
    except attnfile.AttnFileError as exc:
        assert str(p) in str(exc) and "\n" not in str(exc)
    else:
        _loaded_ok(att)


FIELDS = list(config_mod.EngineConfig.__dataclass_fields__)
VALUES = st.one_of(st.integers(-5, 5000), st.booleans(), st.text(max_size=6), st.floats(allow_nan=True),
                   st.none(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                  st.integers(), max_size=1))


@BUDGET
@given(data=st.dictionaries(st.sampled_from(FIELDS + ["preset", "bogus", "Rows"]), VALUES, max_size=6))
def test_config_mappings(data):
    try:
        cfg = configfile.from_mapping(data)
    except config_mod.ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(cfg, config_mod.EngineConfig)
        _round_trips(cfg)


def _round_trips(cfg):
    # What `fusioncim config` prints, read back by --config, is the same config.
    back = configfile.from_mapping(tomllib.loads(configfile.to_toml(cfg, {"score_bits": cfg.score_bits})))
    assert back == cfg


@BUDGET
@given(preset=st.sampled_from(list(config_mod.PRESETS)),
       changes=st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.none(), st.integers(0, 300), st.booleans(),
                                                                  st.sampled_from(["pattern", "sequential"])),
                               max_size=5))
def test_config_text_round_trips(preset, changes):
    try:
        cfg = config_mod.PRESETS[preset].replace(**changes)
    except (TypeError, ValueError):
        return
    _round_trips(cfg)


TABLE = energy.DEFAULT_TABLE.read_text().splitlines()


@BUDGET
@given(edits=st.lists(st.tuples(st.integers(0, len(TABLE) - 1),
                                st.sampled_from(["drop", "pj = -1", 'pj = "x"', "pj = 1e400", "value = 0",
                                                 'source = ""', "extra = 1", "[events.new]", "= ="])),
                      min_size=1, max_size=4))
def test_energy_tables(tmp_path, edits):
    lines = list(TABLE)
    for i, edit in edits:
        lines[i] = "" if edit == "drop" else edit
    p = tmp_path / "t.toml"
    p.write_text("\n".join(lines))
    try:
        t = energy.load_table(p)
    except energy.EnergyTableError as exc:
        assert str(p) in str(exc)
    else:
        assert all(v >= 0 for v in t.pj.values())


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [
    ["accuracy", "{bad}"],
    ["simulate", "--npz", "{bad}"],
    ["patterns", "{bad}", "--out", "{out}/rates.json"],
    ["report", "--patterns", "{bad}"],
    ["explore", "--no-area", "--accuracy-file", "{bad}", "--out", "{out}/ex"],
    ["demo", "--npz", "{bad}"],
    ["generate", "engine", "--config", "{bad_toml}", "--out", "{out}/e.v"],
    ["report", "--energy", "{bad_toml}"],
])
def test_cli_refuses_malformed_files_and_writes_nothing(tmp_path, command):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(VALID[: len(VALID) // 2])
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("rows = 'many'\n[[x]\n")
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(bad=bad, bad_toml=bad_toml, out=out) for a in command]
    r = subprocess.run([sys.executable, "-m", "fusioncim", *args, "-q"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr and r.stderr.startswith("fusioncim: error:")
    assert list(out.iterdir()) == [] and not (tmp_path / "build").exists()
