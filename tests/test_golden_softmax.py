"""Online LUT softmax golden model: LUT contents, tiers, shifts, rescales, lazy threshold."""

import math

import numpy as np
import pytest

from fusioncim.core.config import EngineConfig
from fusioncim.golden import softmax
from fusioncim.golden.softmax import COARSE, FINE, MASKED, SKIPPED

# The hand values below are for 5-bit fine and 4-bit coarse LUTs (the default before issue 33).
CFG = EngineConfig(fine_lut_bits=5, coarse_lut_bits=4)
F = CFG.log_frac_bits


def test_lut_entries_are_bin_means_by_hand():
    fine, coarse = softmax.luts(CFG)
    assert len(fine) == 32 and len(coarse) == 16
    # Entry 0 of the fine LUT covers fractions 0/256 .. 7/256.
    want = math.floor(4095 * sum(2 ** (-j / 256) for j in range(8)) / 8 + 0.5)
    assert fine[0] == want
    # Last coarse entry covers 240/256 .. 255/256.
    want = math.floor(4095 * sum(2 ** (-j / 256) for j in range(240, 256)) / 16 + 0.5)
    assert coarse[-1] == want
    assert (np.diff(fine) < 0).all() and fine.flags.writeable is False


def test_default_lut_entries_by_hand():
    # The default's 7-bit fine and 5-bit coarse LUTs: 128 and 32 entries of 2 and 8 of the 256 fractions.
    fine, coarse = softmax.luts(EngineConfig())
    assert len(fine) == 128 and len(coarse) == 32
    assert fine[0] == math.floor(4095 * (1 + 2 ** (-1 / 256)) / 2 + 0.5)
    assert coarse[-1] == math.floor(4095 * sum(2 ** (-j / 256) for j in range(248, 256)) / 8 + 0.5)


def test_exp2_neg_hand_values():
    fine, coarse = softmax.luts(CFG)
    d = np.array([0, 1 << F, (3 << F) + 128, (5 << F) + 64, 14 << F, (14 << F) - 1])
    p, tier = softmax.exp2_neg(d, CFG)
    # d=0: fine[0]; d=1: (fine[0] + 1) >> 1; d=3.5: fine[16] rounded >> 3;
    # d=5.25: coarse tier (>= 4), coarse[4] >> 5; d=14: skipped; just below: coarse.
    assert p[0] == fine[0]
    assert p[1] == (fine[0] + 1) >> 1
    assert p[2] == (fine[16] + 4) >> 3
    assert p[3] == (coarse[4] + 16) >> 5
    assert p[4] == 0
    assert p[5] == (coarse[15] + (1 << 12)) >> 13
    assert tier.tolist() == [FINE, FINE, FINE, COARSE, SKIPPED, COARSE]


def test_exp2_neg_close_to_float():
    d = np.arange(0, 14 << F)
    p, tier = softmax.exp2_neg(d, CFG.replace(tiers=False))
    exact = 4095 * np.exp2(-d / (1 << F))
    # Fine LUT: 32 bins of width 1/32 -> entry within 2**(1/64)-1 (1.1%) of the
    # true value, plus half an LSB from each of the two roundings.
    assert (np.abs(p - exact) <= 0.0110 * exact + 1.0).all()


def test_switches():
    d = np.array([6 << F, 20 << F])
    p, tier = softmax.exp2_neg(d, CFG.replace(tiers=False))
    assert tier.tolist() == [FINE, SKIPPED]
    p, tier = softmax.exp2_neg(d, CFG.replace(skip_threshold=None))
    assert tier[1] == COARSE and p[1] == 0        # 2**-20 of 4095 rounds to 0 naturally
    # the shifter saturates: a huge distance costs nothing and stays 0
    p, _ = softmax.exp2_neg(np.array([4000 << F]), CFG.replace(skip_threshold=None))
    assert p[0] == 0


def test_to_log2_rounding_and_saturation():
    s = np.array([[3, -3, 10 ** 9]])
    x = softmax.to_log2(s, np.array([3]), np.array([1]), CFG)
    # 9/2 = 4.5 -> 5 (half up); -9/2 = -4.5 -> -4 (half up); huge -> saturate
    assert x.tolist() == [[5, -4, CFG.x_max]]


def _fold(x, live, cfg):
    st = softmax.initial_state(x.shape[0])
    outs = []
    for n in range(x.shape[1]):
        outs.append(softmax.step(st, x[:, n], live[:, n], cfg)[:4])
        st = softmax.step(st, x[:, n], live[:, n], cfg)[4]
    return outs, st


def test_step_hand_sequence():
    # One row; x in log2 units: 1.5, 0.25, 3.0, 2.5
    x = np.array([[384, 64, 768, 640]])
    live = np.ones_like(x, bool)
    outs, st = _fold(x, live, CFG)
    fine, _ = softmax.luts(CFG)
    # key 0: m = ceil(1.5) = 2, d = 0.5 -> fine[16], no rescale (first key)
    assert outs[0][0][0] == fine[16] and outs[0][1][0] == 0 and not outs[0][2][0]
    # key 1: m stays 2, d = 1.75 -> fine[24] >> 1 rounded
    assert outs[1][0][0] == (fine[24] + 1) >> 1 and not outs[1][2][0]
    # key 2: x = 3 > 2 -> m = 3, shift 1, rescale event, d = 0
    assert outs[2][0][0] == fine[0] and outs[2][1][0] == 1 and outs[2][2][0]
    # key 3: 2.5 <= 3: no rescale (integer max absorbs it), d = 0.5
    assert outs[3][0][0] == fine[16] and outs[3][1][0] == 0 and not outs[3][2][0]
    assert st.m[0] == 3 << F


def test_masked_entries_do_nothing():
    x = np.array([[5000, 100]])
    live = np.array([[False, True]])
    outs, st = _fold(x, live, CFG)
    assert outs[0][0][0] == 0 and outs[0][3][0] == MASKED
    assert st.m[0] == 1 << F        # the masked huge score never entered the max


def test_lazy_threshold_hand():
    cfg = CFG.replace(lazy_threshold=1, op_bits_per_cycle=1)
    x = np.array([[0, 200, 300, 600]])   # 0, 0.78, 1.17, 2.34 units
    outs, st = _fold(x, np.ones_like(x, bool), cfg)
    fine, _ = softmax.luts(cfg)
    # m = 0; 0.78 <= 0 + 1: no growth, p = 2**0.78 > 1 (shifted left); 1.17 > 1: m = 2, shift 2
    assert [o[1][0] for o in outs] == [0, 0, 2, 0]
    assert outs[1][0][0] == fine[(256 - 200) >> 3] << 1
    # 2.34 <= 2 + 1: m stays 2 and p = 2**0.34: d = -88 -> n = -1, f = 168
    assert st.m[0] == 2 << F
    assert outs[3][0][0] == fine[168 >> 3] << 1

@pytest.mark.parametrize("cfg", [
    CFG, CFG.replace(lazy_threshold=2, op_bits_per_cycle=2), CFG.replace(rescale_on_growth_only=False),
    CFG.replace(tiers=False, skip_threshold=None),
])
def test_online_equals_folded_steps(cfg):
    rng = np.random.default_rng(7)
    x = rng.integers(-3000, 3000, (6, 50)) + np.arange(50) * 40   # rising trend: many rescales
    live = rng.random((6, 50)) > 0.2
    live[5] = False                                                   # a row with nothing live
    res = softmax.online(x, live, cfg)
    outs, _ = _fold(x, live, cfg)
    assert np.array_equal(res.p, np.stack([o[0] for o in outs], 1))
    assert np.array_equal(res.rescale, np.stack([o[2] for o in outs], 1))
    assert np.array_equal(res.tier, np.stack([o[3] for o in outs], 1))
    assert res.rescale.sum() > 0


@pytest.mark.parametrize("cfg", [
    CFG, CFG.replace(lazy_threshold=3, op_bits_per_cycle=1), CFG.replace(tiers=False, skip_threshold=None),
    CFG.replace(skip_threshold=30, fine_window=20), CFG.replace(prob_bits=6, op_bits_per_cycle=2, fine_lut_bits=3, coarse_lut_bits=2),
])
def test_table_equals_direct(cfg):
    F = cfg.log_frac_bits
    rng = np.random.default_rng(3)
    d = np.concatenate([np.arange(-(cfg.lazy_threshold << F), 40 << F),
                        rng.integers(0, 1 << 40, 1000), [1 << 50]])
    p, tier = softmax.exp2_neg(d, cfg)
    pd, tierd = softmax.exp2_neg_direct(d, cfg)
    assert np.array_equal(p, pd) and np.array_equal(tier, tierd)
