"""Quantisation front end: scales, constants, rotation, round trip."""

import math

import numpy as np
import pytest

from fusioncim.core.config import PRESETS
from fusioncim.accuracy import quant

CFG = PRESETS["default"]


def test_hadamard_orthonormal():
    for d in (8, 32, 64, 128, 96, 12):
        h = quant.hadamard(d)
        assert np.allclose(h @ h.T, np.eye(d))


def test_score_constant_precision():
    s = np.array([1e-4, 3e-3, 0.05, 0.7])
    mant, shift = quant.score_constant(s, CFG)
    c = s / math.log(2) * (1 << CFG.log_frac_bits)
    # mantissa normalised: top bit set, relative error below half an LSB
    assert ((mant >> (CFG.const_bits - 1)) == 1).all()
    assert np.all(np.abs(mant / 2.0 ** shift - c) <= 0.5 / 2.0 ** shift)


def test_score_constant_too_large():
    with pytest.raises(ValueError, match="does not fit const_bits 16"):
        quant.score_constant(np.array([1e6]), CFG)
    with pytest.raises(ValueError, match="finite and positive"):
        quant.score_constant(np.array([0.0]), CFG)


@pytest.mark.parametrize("method", quant.METHODS)
def test_ranges_and_scores_preserved(method):
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(4, 20, 64)), rng.normal(size=(2, 20, 64)) * 3, rng.normal(size=(2, 20, 64))
    z = quant.quantise(q, k, v, CFG, method=method)
    for a in (z.q, z.k, z.v):
        assert a.dtype == np.int64 and np.abs(a).max() <= 127
    # integer scores times their scale track the float logits up to a per-row constant
    kv_of = np.arange(4) // 2
    s = np.einsum("hqd,hkd->hqk", z.q, z.k[kv_of]) * z.score_scale[..., None]
    ref = np.einsum("hqd,hkd->hqk", q, k[kv_of]) / 8
    diff = (s - ref) - (s - ref).mean(-1, keepdims=True)
    assert np.abs(diff).max() < 0.1 * np.abs(ref).max()
    # V round trip within half a step per channel
    vd = z.v * z.v_scale[:, None, :] + z.v_offset[:, None, :]
    assert (np.abs(vd - v) <= 0.5 * z.v_scale[:, None, :] + 1e-12).all()


def test_sink_anchor_makes_first_value_exact():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(1, 5, 64)), rng.normal(size=(1, 5, 64)), rng.normal(size=(1, 5, 64))
    z = quant.quantise(q, k, v, CFG, v_anchor="sink")
    assert (z.v[0, 0] == 0).all()
    zm = quant.quantise(q, k, v, CFG, v_anchor="mean")
    assert np.allclose(zm.v_offset, v.mean(1))


def test_dequantise_gqa():
    z = quant.Quantised(q=None, k=None, v=None, c_mant=None, c_shift=None, score_scale=None,
                        v_scale=np.array([[1.0, 2.0], [3.0, 4.0]]), v_offset=np.array([[0.5, 0], [0, 1]]))
    out = np.full((4, 1, 2), 16)      # 1.0 in V units with 4 fraction bits
    o = quant.dequantise(out, z, CFG)
    assert o[:, 0].tolist() == [[1.5, 2.0], [1.5, 2.0], [3.0, 5.0], [3.0, 5.0]]


def test_bad_method():
    x = np.zeros((1, 2, 64))
    with pytest.raises(ValueError, match="method must be one of fusioncim, per-tensor, not 'fp8'"):
        quant.quantise(x, x, x, CFG, method="fp8")
    with pytest.raises(ValueError, match="v_anchor must be one of sink, mean, not 'max'"):
        quant.quantise(x, x, x, CFG, v_anchor="max")


@pytest.mark.parametrize("change, exc, message", [
    (dict(q=np.full((2, 3, 64), np.nan)), ValueError, "q holds NaN or infinite values"),
    (dict(v=np.full((1, 3, 64), np.inf)), ValueError, "v holds NaN or infinite values"),
    (dict(q=np.zeros((2, 64))), ValueError, "q must be a non-empty [heads, length, head_dim] array"),
    (dict(k=np.zeros((1, 0, 64))), ValueError, "k must be a non-empty"),
    (dict(q=np.zeros((2, 3, 64), complex)), TypeError, "q must hold real numbers, not complex128"),
    (dict(v=np.zeros((1, 4, 64))), ValueError, "k and v shapes differ"),
    (dict(q=np.zeros((3, 3, 64)), k=np.zeros((2, 3, 64)), v=np.zeros((2, 3, 64))), ValueError,
     "query heads 3 must be a multiple of KV heads 2"),
    (dict(q=np.zeros((2, 3, 32))), ValueError, "head_dim of q (32), k (64) and the config (64) must agree"),
    (dict(scale=-1.0), ValueError, "scale must be a positive finite number, not -1.0"),
])
def test_bad_float_inputs(change, exc, message):
    args = dict(q=np.zeros((2, 3, 64)), k=np.zeros((1, 3, 64)), v=np.zeros((1, 3, 64)))
    scale = change.pop("scale", None)
    args.update(change)
    with pytest.raises(exc) as info:
        quant.quantise(args["q"], args["k"], args["v"], CFG, scale=scale)
    assert message in str(info.value)


# -- static (calibrated) scales: docs/numerics.md §1 -----------------------------------------------

def test_kv_stats_by_hand():
    k = np.array([[[1.0, -2.0], [3.0, 0.0], [-1.0, 2.0]]])          # [1 KV head, 3 keys, d=2]
    v = np.array([[[9.0, 9.0], [1.0, -1.0], [2.0, 3.0]]])
    s = quant.kv_stats(k, v)
    assert s.k_min.tolist() == [[-1.0, -2.0]] and s.k_max.tolist() == [[3.0, 2.0]]
    kr = k[0] @ quant.hadamard(2)
    assert np.allclose(s.k_min_rot, kr.min(0)) and np.allclose(s.k_max_rot, kr.max(0))
    assert s.v_min.tolist() == [[1.0, -1.0]] and s.v_max.tolist() == [[2.0, 3.0]]   # the first key left out
    assert np.allclose(s.v_mean, [[4.0, 11 / 3]])
    assert np.allclose(s.v_amax_mean, [[5.0, 16 / 3]])               # |9 - 4|, |-1 - 11/3|
    assert s.keys == 3
    m = s.merge(quant.kv_stats(k + 4, v * 2))
    assert m.keys == 6 and m.k_min.tolist() == [[-1.0, -2.0]] and m.k_max.tolist() == [[7.0, 6.0]]
    assert m.v_min.tolist() == [[1.0, -2.0]] and m.v_max.tolist() == [[4.0, 6.0]]
    assert np.allclose(m.v_mean, [[6.0, 5.5]])
    w = s.widened(2.0)                                              # about the middle of each bound pair
    assert w.k_min.tolist() == [[-3.0, -4.0]] and w.k_max.tolist() == [[5.0, 4.0]]
    assert w.v_min.tolist() == [[0.5, -3.0]] and w.v_max.tolist() == [[2.5, 5.0]]
    assert np.allclose(w.v_amax_mean, 2 * s.v_amax_mean)


def _static_case(seed=3, L=24, H=2, Hkv=1, d=16):
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(H, L, d)), rng.normal(size=(Hkv, L, d)), rng.normal(size=(Hkv, L, d))
    calib = quant.kv_stats(rng.normal(size=(Hkv, 200, d)), rng.normal(size=(Hkv, 200, d)))
    return q, k, v, calib


def test_static_scales_use_no_later_key():
    # Each key's integers depend on that key alone (and the sink's V): quantising a prefix gives the same.
    from fusioncim.core.config import PRESETS
    cfg = PRESETS["test"]
    q, k, v, calib = _static_case()
    whole = quant.quantise(q, k, v, cfg, stats=calib)
    for t in (1, 5, 23):
        part = quant.quantise(q[:, :t], k[:, :t], v[:, :t], cfg, stats=calib)
        np.testing.assert_array_equal(part.k, whole.k[:, :t])
        np.testing.assert_array_equal(part.v, whole.v[:, :t])
        np.testing.assert_array_equal(part.q, whole.q[:, :t])
        np.testing.assert_array_equal(part.v_scale, whole.v_scale)
    # V: a grid over the calibrated bounds and the sink, through the sink (docs/numerics.md §1)
    lo, hi = np.minimum(calib.v_min, v[:, 0]), np.maximum(calib.v_max, v[:, 0])
    np.testing.assert_allclose(whole.v_scale, (hi - lo) / 2 / 126)
    k0 = (v[:, 0] - whole.v_offset) / whole.v_scale
    np.testing.assert_allclose(k0, np.rint(k0), atol=1e-9)                       # the sink is on the grid
    np.testing.assert_array_equal(whole.v[:, 0], np.rint(k0).astype(int))
    np.testing.assert_allclose(whole.v[:, 0] * whole.v_scale + whole.v_offset, v[:, 0])   # and exact


def test_changing_a_future_key_leaves_earlier_rows_bit_identical():
    from fusioncim.core.config import PRESETS
    from fusioncim.golden import engine
    cfg = PRESETS["test"]
    q, k, v, calib = _static_case()
    t = 13
    k2, v2 = k.copy(), v.copy()
    k2[:, t] += 5.0            # a large change, beyond the calibrated range: it saturates
    v2[:, t] -= 7.0

    def rows(kk, vv, stats):
        z = quant.quantise(q, kk, vv, cfg, stats=stats)
        r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=True)
        return r.out, quant.dequantise(r.out, z, cfg), z
    a, ao, za = rows(k, v, calib)
    b, bo, zb = rows(k2, v2, calib)
    np.testing.assert_array_equal(a[:, :t], b[:, :t])          # rows 0..t-1 see keys 0..t-1 only
    np.testing.assert_array_equal(ao[:, :t], bo[:, :t])
    assert (a[:, t:] != b[:, t:]).any()                        # the test can tell a change
    assert zb.k_clipped > za.k_clipped and zb.v_clipped > za.v_clipped
    # dynamic scales take the changed key's range into every row's quantisation
    d, _, _ = rows(k, v, None)
    e, _, _ = rows(k2, v2, None)
    assert (d[:, :t] != e[:, :t]).any()


def test_clipping_counted():
    from fusioncim.core.config import PRESETS
    cfg = PRESETS["test"]
    q, k, v, calib = _static_case()
    z = quant.quantise(q, k, v, cfg, stats=calib, rotate=False)
    sk = (calib.k_max - calib.k_min) / 2 / 127
    mid = (calib.k_max + calib.k_min) / 2
    by_hand = int((np.abs(np.rint((k - mid[:, None]) / sk[:, None])) > 127).sum())
    assert z.k_clipped == by_hand > 0
    assert np.abs(z.k).max() <= 127 and np.abs(z.v).max() <= 127


def test_static_stats_shape_checked():
    from fusioncim.core.config import PRESETS
    cfg = PRESETS["test"]
    q, k, v, calib = _static_case()
    with pytest.raises(ValueError, match=r"calibrated k_min has shape \(1, 16\), but the data has 2 KV heads"):
        quant.quantise(np.concatenate([q, q]), np.concatenate([k, k]), np.concatenate([v, v]), cfg, stats=calib)
    with pytest.raises(ValueError, match="apply to the fusioncim method"):
        quant.quantise(q, k, v, cfg, stats=calib, method="per-tensor")
