"""OP-CIM golden model: per-key update, closed-form accumulate, normalisation."""

import numpy as np
import pytest

from fusioncim.golden import op_cim


def test_update_hand():
    O = np.array([[7, -7]])
    l = np.array([9])
    O2, l2 = op_cim.update(O, l, np.array([3]), np.array([1]), np.array([2, -5]))
    # floor(7/2) + 6 = 9; floor(-7/2) - 15 = -19; floor(9/2) + 3 = 7
    assert O2.tolist() == [[9, -19]] and l2.tolist() == [7]


def _fold(p, shifts, v):
    R, N = p.shape
    O = np.zeros((R, v.shape[1]), np.int64)
    l = np.zeros(R, np.int64)
    for n in range(N):
        O, l = op_cim.update(O, l, p[:, n], shifts[:, n], v[n])
    return O, l


@pytest.mark.parametrize("max_shift", [0, 3, 40])
def test_accumulate_equals_fold(max_shift):
    rng = np.random.default_rng(max_shift)
    R, N, d = 5, 64, 16
    p = rng.integers(0, 4096, (R, N))
    p[:, ::7] = 0
    shifts = rng.integers(0, max_shift + 1, (R, N)) * (rng.random((R, N)) < 0.1)
    v = rng.integers(-128, 128, (N, d))
    O, l = _fold(p, shifts, v)
    # total shift seen by key n's contribution: all shifts applied after it
    s = np.cumsum(shifts[:, ::-1], axis=1)[:, ::-1] - shifts
    Oa, la = op_cim.accumulate(p, s, v, v_bits=8)
    assert np.array_equal(O, Oa) and np.array_equal(l, la)


def test_accumulate_negative_floor_edge():
    # One tiny negative contribution shifted far: floor gives -1, not 0.
    p = np.array([[1, 4095]])
    s = np.array([[60, 0]])
    v = np.array([[-1], [0]])
    O, l = op_cim.accumulate(p, s, v, v_bits=8)
    assert O.tolist() == [[-1]] and l.tolist() == [4095]


@pytest.mark.parametrize("O, l, want", [
    (255 * -128, 255, -128 * 16),      # exactly -128
    (7, 2, 56),                        # 3.5 * 16
    (1, 32, 1),                        # 0.5 -> 1 (half away from zero)
    (-1, 32, -1),                      # -0.5 -> -1
    (1, 33, 0),                        # 0.485 -> 0
    (5, 0, 0),                         # empty row: 0
    (10 ** 6, 1, 2047),                # saturates to the 12-bit output
])
def test_normalise_hand(O, l, want):
    out = op_cim.normalise(np.array([[O]]), np.array([l]), out_frac_bits=4, out_bits=12)
    assert out.item() == want
