"""Attention .npz format: round trip and every malformed-input error."""

import numpy as np
import pytest

from fusioncim.accuracy import attnfile
from fusioncim.accuracy.attnfile import Attention, AttnFileError


def _att():
    rng = np.random.default_rng(0)
    return Attention(q=rng.normal(size=(4, 6, 8)), k=rng.normal(size=(2, 6, 8)), v=rng.normal(size=(2, 6, 8)),
                     out=rng.normal(size=(4, 6, 8)), causal=True, scale=0.3, source="unit test")


def test_roundtrip(tmp_path):
    p = tmp_path / "a.npz"
    a = _att()
    attnfile.save(p, a)
    b = attnfile.load(p)
    assert np.allclose(a.q, b.q, atol=1e-6) and b.causal is True and b.scale == pytest.approx(0.3)
    assert b.source == "unit test" and b.out.shape == (4, 6, 8)
    assert list(tmp_path.iterdir()) == [p]        # no temporary left behind


def _write(tmp_path, **arrays):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return p


GOOD = dict(q=np.zeros((4, 6, 8)), k=np.zeros((2, 6, 8)), v=np.zeros((2, 6, 8)))


@pytest.mark.parametrize("change, message", [
    (dict(q=None), "missing array 'q'"),
    (dict(extra=np.zeros(1)), "unknown array 'extra'"),
    (dict(q=np.zeros((4, 6, 8), np.int8)), "'q' must be a float array, not int8"),
    (dict(q=np.zeros((4, 8))), "'q' must have 3 dimensions"),
    (dict(v=np.zeros((2, 5, 8))), "'k' shape (2, 6, 8) and 'v' shape (2, 5, 8) differ"),
    (dict(q=np.zeros((3, 6, 8))), "3 query heads are not a multiple of 2 KV heads"),
    (dict(q=np.zeros((4, 6, 4))), "head_dim of 'q' (4) and 'k' (8) differ"),
    (dict(q=np.full((4, 6, 8), np.nan)), "'q' holds 192 NaN or infinite values"),
    (dict(k=np.full((2, 6, 8), np.inf)), "'k' holds 96 NaN or infinite values"),
    (dict(q=np.zeros((4, 7, 8))), "7 queries but only 6 keys"),
    (dict(out=np.zeros((4, 6, 7))), "'out' shape (4, 6, 7) differs"),
    (dict(causal=np.array([1, 0])), "'causal' must be a scalar bool"),
    (dict(scale=np.array(-1.0)), "'scale' must be a positive finite scalar float"),
    (dict(source=np.array(3)), "'source' must be a scalar string"),
    (dict(q=np.zeros((0, 6, 8))), "empty tensors"),
])
def test_bad_content(tmp_path, change, message):
    arrays = {**GOOD, **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    p = _write(tmp_path, **arrays)
    with pytest.raises(AttnFileError) as info:
        attnfile.load(p)
    assert message in str(info.value) and str(p) in str(info.value)
    assert "\n" not in str(info.value)


def test_pickled_object_array_refused(tmp_path):
    p = _write(tmp_path, **GOOD, source=np.array([{"a": 1}], dtype=object))
    with pytest.raises(AttnFileError, match="not a readable .npz attention file"):
        attnfile.load(p)


def test_truncated_and_not_npz(tmp_path):
    p = _write(tmp_path, **GOOD)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AttnFileError, match="not a readable .npz attention file"):
        attnfile.load(p)
    t = tmp_path / "text.npz"
    t.write_text("hello")
    with pytest.raises(AttnFileError, match=r"not an .npz archive of q, k, v arrays \(not a zip file\)$") as info:
        attnfile.load(t)
    assert "pickle" not in str(info.value)
    t.write_bytes(b"")
    with pytest.raises(AttnFileError, match=r"\(an empty file\)$"):
        attnfile.load(t)
    n = tmp_path / "single.npz"
    with open(n, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(AttnFileError, match="holds a single array, not an .npz archive"):
        attnfile.load(n)
    with pytest.raises(AttnFileError, match="no such file"):
        attnfile.load(tmp_path / "missing.npz")
    with pytest.raises(AttnFileError, match="is a directory"):
        attnfile.load(tmp_path)


def _with_flag(data, flag):
    # Set a general-purpose flag bit in every local and central zip header (offsets 6 and 8).
    data = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        while i >= 0:
            data[i + at] |= flag
            i = data.find(sig, i + 4)
    return bytes(data)


@pytest.mark.parametrize("flag, what", [(0x01, "encrypted"), (0x20, "patched data")])
def test_container_failures_the_fuzzer_found_are_bad_input(tmp_path, flag, what):
    # zipfile raises RuntimeError for a member that claims encryption and NotImplementedError for
    # compressed patched data: both are a bad file, one line.
    p = _write(tmp_path, **GOOD)
    p.write_bytes(_with_flag(p.read_bytes(), flag))
    with pytest.raises(AttnFileError, match="not a readable .npz attention file") as info:
        attnfile.load(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)
