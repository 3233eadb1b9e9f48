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


@pytest.mark.parametrize("max_shift", [3, 40])          # 40: rows past float64's exact range (Python ints)
def test_accumulate_in_stream_order(max_shift):
    # p and s given in the order keys streamed (one order per tile), with slot[t, key] saying where each
    # key sits: the same bits as the fold over the keys in their own order.
    rng = np.random.default_rng(7 + max_shift)
    T, R, N, d = 3, 4, 40, 8
    v = rng.integers(-128, 128, (N, d))
    p = rng.integers(0, 4096, (T, R, N))
    shifts = rng.integers(0, max_shift + 1, (T, R, N)) * (rng.random((T, R, N)) < 0.1)
    order = np.stack([rng.permutation(N) for _ in range(T)])       # order[t, i]: the key in slot i
    slot = np.argsort(order, axis=1)
    p_stream, sh_stream = (np.take_along_axis(a, order[:, None, :], -1) for a in (p, shifts))
    # Shift seen by each streamed key: the shifts of the keys after it in the stream.
    s_stream = np.cumsum(sh_stream[..., ::-1], axis=-1)[..., ::-1] - sh_stream
    O, l = op_cim.accumulate(p_stream, s_stream, v, v_bits=8, slot=slot)
    for t in range(T):
        O_fold, l_fold = _fold(p_stream[t], sh_stream[t], v[order[t]])
        assert np.array_equal(O[t], O_fold) and np.array_equal(l[t], l_fold)
    if max_shift == 40:
        assert not op_cim.exact_rows(p_stream, s_stream, v_bits=8).all()


def test_take_keys_is_take_along_axis():
    rng = np.random.default_rng(3)
    a = rng.integers(-50, 50, (2, 3, 5, 6))
    index = rng.integers(0, 6, (2, 3, 4))
    assert np.array_equal(op_cim.take_keys(a, index), np.take_along_axis(a, index[..., None, :], -1))
