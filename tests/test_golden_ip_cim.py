"""IP-CIM golden model: bit-serial decomposition equals the exact dot product."""

import numpy as np
import pytest

from fusioncim.golden import ip_cim


def test_hand_example():
    q = np.array([[1, -2, 3]])
    k = np.array([[-128, 127, 2], [0, 1, -1]])
    # 1*-128 + -2*127 + 3*2 = -376;  0 - 2 - 3 = -5
    assert ip_cim.scores(q, k).tolist() == [[-376, -5]]


@pytest.mark.parametrize("bpc", [1, 2, 4, 8])
def test_digits_reconstruct_every_int8(bpc):
    k = np.arange(-128, 128)
    dg = ip_cim.digits(k, 8, bpc)
    G = 8 // bpc
    assert dg.shape == (G, 256)
    assert (dg[1:] >= 0).all() and (dg[1:] < (1 << bpc)).all()
    assert (dg[0] >= -(1 << (bpc - 1))).all() and (dg[0] < (1 << (bpc - 1))).all()
    recon = sum(dg[g] << (bpc * (G - 1 - g)) for g in range(G))
    assert np.array_equal(recon, k)


@pytest.mark.parametrize("bpc", [1, 2, 4, 8])
@pytest.mark.parametrize("rows, d", [(1, 8), (4, 64), (16, 128)])
def test_bitserial_matches_integer_matmul(bpc, rows, d):
    rng = np.random.default_rng(100 * bpc + rows + d)
    q = rng.integers(-128, 128, (rows, d))
    k = rng.integers(-128, 128, (5, d))
    trace = ip_cim.bitserial(q, k, 8, bpc)
    assert trace.shape == (8 // bpc, rows, 5)
    exact = q.astype(object) @ k.T.astype(object)          # Python ints: no overflow question
    assert np.array_equal(trace[-1], exact.astype(np.int64))
    assert np.array_equal(ip_cim.scores(q, k), trace[-1])
    # Horner: each cycle's accumulator is the score of the key's top bits so far.
    G = 8 // bpc
    for g in range(G):
        top = k >> (bpc * (G - 1 - g))                     # arithmetic shift keeps the sign
        assert np.array_equal(trace[g], q @ top.T)


@pytest.mark.parametrize("qv, kv", [(-128, -128), (127, 127), (-128, 127)])
def test_extremes(qv, kv):
    d = 128
    q = np.full((2, d), qv)
    k = np.full((3, d), kv)
    want = d * qv * kv                                     # hand: constant vectors
    for bpc in (1, 2, 4, 8):
        assert (ip_cim.bitserial(q, k, 8, bpc)[-1] == want).all()


def test_alternating_pattern():
    d = 64
    q = np.where(np.arange(d) % 2, 127, -128)[None, :]
    k = np.where(np.arange(d) % 2, -128, 127)[None, :]
    # every product is -128*127
    assert ip_cim.scores(q, k).item() == d * -128 * 127


def test_wide_data_uses_exact_path():
    q = np.full((1, 4096), -32768)
    k = np.full((1, 4096), -32768)
    assert ip_cim.scores(q, k).item() == 4096 * 2 ** 30


def test_range_check():
    with pytest.raises(ValueError, match="outside the 8-bit signed range"):
        ip_cim.check_range("k", np.array([128]), 8)
    with pytest.raises(TypeError, match="k must hold integers, not float64"):
        ip_cim.check_range("k", np.array([1.0]), 8)
