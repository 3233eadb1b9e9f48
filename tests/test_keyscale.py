"""Per-key K and V scales (fusioncim/core/keyscale.py; docs/numerics.md §1, §3, §5; issue 33).

The golden engine's two forms agree with per-key scales, the log-domain step and the V shift follow the
contract by hand, zero codes change nothing, the per-key front end depends on no later key and clips
nothing, and a sink-like key with an outlier element stays close to the dynamic mode's error.
"""

import numpy as np
import pytest

from fusioncim.accuracy import quant
from fusioncim.core.config import PRESETS
from fusioncim.core.errors import InputError
from fusioncim.core.keyscale import KeyScales, k_factor
from fusioncim.golden import engine, reference, softmax

CFG = PRESETS["test"].replace(k_exp_bits=3, k_mant_bits=2, v_exp_bits=2)


def _head(seed, H=2, Hkv=1, L=40, d=16, outlier=None):
    # Logits with a spread of a few units and an attention sink on key 0 (as sim/workload.py's random heads).
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=d)
    q = rng.normal(size=(H, L, d)) + 0.5 * mu
    k = rng.normal(size=(Hkv, L, d)) * np.exp(rng.normal(size=(Hkv, L, 1)) / 2)
    k[:, 0] += 1.5 * mu
    v = rng.normal(size=(Hkv, L, d)) * np.exp(rng.normal(size=(Hkv, L, 1)) / 2)
    if outlier is not None:
        k[:, 0, 3] = outlier * k[:, 1:, 3].std()
    return q, k, v


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_fast_and_sequential_agree_with_per_key_scales(mode):
    q, k, v = _head(1, H=4, Hkv=2)
    z = quant.quantise(q, k, v, CFG, per_key=True)
    assert z.scales.k_exp.max() > 0 and z.scales.k_mant.max() > 0 and z.scales.v_exp.max() > 0
    kw = dict(causal=True, mode=mode, scales=z.scales)
    a = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, **kw)
    b = engine.run_sequential(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, **kw)
    c = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, chunk_entries=60, **kw)
    for r in (b, c):
        np.testing.assert_array_equal(a.out, r.out)
        np.testing.assert_array_equal(a.l, r.l)
        assert a.counters == r.counters


def test_log_domain_step_by_hand():
    # x = sat(round_half_up(s * c_mant * (2^kmb + mant) * 2^exp / 2^c_shift)), docs/numerics.md §3.
    s = np.array([[7, -7, 1000]])
    cm, cs = np.array([40000]), np.array([30])
    exp, mant = np.array([0, 2, 7]), np.array([3, 0, 1])
    f = k_factor(CFG, exp, mant)
    assert f.tolist() == [7, 16, 5 * 128]
    want = [(7 * 40000 * 7 + (1 << 29)) >> 30, (-7 * 40000 * 16 + (1 << 29)) >> 30,
            min((1000 * 40000 * 640 + (1 << 29)) >> 30, CFG.x_max)]
    assert softmax.to_log2(s, cm, cs, CFG, f)[0].tolist() == want


def test_v_exponent_shifts_the_product():
    # One key, one row: O = p * (v << v_exp); l is p alone, so the output is v << v_exp in V units.
    cfg = CFG.replace(rows=1)
    q = np.ones((1, 1, 16), np.int64)
    k = np.ones((1, 1, 16), np.int64)
    v = np.arange(-8, 8, dtype=np.int64).reshape(1, 1, 16)
    for e in range(4):
        sc = KeyScales(np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.full((1, 1), e))
        r = engine.run(q, k, v, np.array([[1 << 15]]), np.array([[20]]), cfg, causal=True, scales=sc)
        assert r.out[0, 0].tolist() == [(x << e) << cfg.out_frac_bits for x in range(-8, 8)]


def test_zero_codes_change_nothing():
    # With every code 0 and k_mant_bits 0, a config with exponent fields computes what one without them does.
    plain = PRESETS["test"]
    wide = plain.replace(k_exp_bits=3, v_exp_bits=2)
    q, k, v = _head(2)
    z = quant.quantise(q, k, v, plain)
    a = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, plain, causal=True)
    b = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, wide, causal=True, scales=KeyScales.zeros(z.k.shape[:2]))
    np.testing.assert_array_equal(a.out, b.out)
    # Every counter but the division's: the output is v_exp_max bits wider, a quotient bit a cycle per row
    # (one division lane), which the cycle count may or may not see.
    da, db = a.counters.to_dict(), b.counters.to_dict()
    assert db.pop("norm_busy") - da.pop("norm_busy") == a.counters.cim_writes * wide.v_exp_max
    assert db.pop("cycles") >= da.pop("cycles")
    assert da == db


def test_per_key_front_end_uses_no_later_key_and_clips_nothing():
    q, k, v = _head(3, L=30)
    t = 11
    k2, v2 = k.copy(), v.copy()
    k2[:, t:] *= 6.0              # later keys 6 times larger: their exponents follow, nothing saturates
    v2[:, t:] *= 3.0

    def run(kk, vv):
        z = quant.quantise(q, kk, vv, CFG, per_key=True)
        r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, causal=True, scales=z.scales)
        return r.out, quant.dequantise(r.out, z, CFG), z
    a, ao, za = run(k, v)
    b, bo, zb = run(k2, v2)
    np.testing.assert_array_equal(a[:, :t], b[:, :t])            # rows 0..t-1 see keys 0..t-1 only
    np.testing.assert_array_equal(ao[:, :t], bo[:, :t])
    assert (a[:, t:] != b[:, t:]).any()
    assert za.k_clipped == zb.k_clipped == 0 and za.v_clipped == zb.v_clipped == 0
    assert (zb.scales.k_exp[:, t:] > za.scales.k_exp[:, t:]).all()


def test_an_outlier_on_a_sink_like_key_stays_near_the_dynamic_error():
    # Issue 33, item 3: one K element 30x its channel's spread on key 0, which most rows weight most.
    # Static scales calibrated on the same head without the outlier clip it; per-key scales do not.
    scale = 2 / np.sqrt(16)
    for seed in range(4):
        q, k, v = _head(seed, L=64)
        qo, ko, vo = _head(seed, L=64, outlier=30)
        ref = reference.attention(qo, ko, vo, causal=True, scale=scale)

        def err(**kw):
            z = quant.quantise(qo, ko, vo, CFG, scale=scale, **kw)
            r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, causal=True, scales=z.scales)
            return float(np.median(reference.metrics(quant.dequantise(r.out, z, CFG), ref)["rel_l2"])), z
        dynamic, _ = err()
        per_key, z = err(per_key=True)
        static, zs = err(stats=quant.kv_stats(k, v))
        assert z.k_clipped == 0 and zs.k_clipped > 0
        assert per_key <= 1.5 * dynamic, (seed, per_key, dynamic)
        assert static > 1.5 * dynamic, (seed, static, dynamic)      # the check can fail


def test_per_key_needs_the_config_fields():
    q, k, v = _head(4)
    with pytest.raises(InputError, match="per-key scales need k_exp_bits and v_exp_bits"):
        quant.quantise(q, k, v, PRESETS["test"], per_key=True)


@pytest.mark.parametrize("field, value, message", [
    ("k_exp", 8, r"k_exp must be in \[0, 8\) for k_exp_bits 3"),
    ("k_mant", -1, r"k_mant must be in \[0, 4\) for k_mant_bits 2"),
    ("v_exp", 4, r"v_exp must be in \[0, 4\) for v_exp_bits 2"),
])
def test_codes_out_of_range_refused(field, value, message):
    q, k, v = _head(5)
    z = quant.quantise(q, k, v, CFG, per_key=True)
    codes = {n: getattr(z.scales, n).copy() for n in ("k_exp", "k_mant", "v_exp")}
    codes[field][0, 3] = value
    with pytest.raises(InputError, match=message):
        engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, CFG, scales=KeyScales(**codes))
