"""The golden model's arithmetic against float64, within error bounds derived from the number formats.

Hypothesis draws configs and operands (fixed budget, derandomised;
``FUSIONCIM_FUZZ_EXAMPLES`` for a longer run). Each bound is worked out from
docs/numerics.md, not measured:

- log-domain score (§3): ``x = round_half_up(s c / 2**k)`` is within half an
  LSB of ``s c / 2**k`` unless saturated at the x range;
- exponent (§4): an F-bit fraction is looked up by its top ``b`` bits in a LUT
  of bin means rounded to integers, so the entry is within
  ``p_max (1 - 2**-(2**-b)) + 1/2`` of ``p_max 2**-f``; the shift by the integer
  part adds half an LSB; skipped distances give 0 (error at most
  ``p_max 2**-skip_threshold``);
- normaliser (§5): ``round_half_away(O 2**f / l)`` is within half an LSB of the
  exact quotient unless saturated.
"""

import os

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from fusioncim.core.config import EngineConfig
from fusioncim.golden import op_cim, softmax

EXAMPLES = int(os.environ.get("FUSIONCIM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def softmax_configs(draw):
    F = draw(st.integers(2, 10))
    fine = draw(st.integers(0, min(F, 7)))
    fields = dict(
        log_frac_bits=F, fine_lut_bits=fine, coarse_lut_bits=draw(st.integers(0, fine)),
        prob_bits=draw(st.integers(fine + 4, 16)), x_int_bits=draw(st.integers(6, 12)),
        tiers=draw(st.booleans()), fine_window=draw(st.integers(1, 4)),
        skip_threshold=draw(st.one_of(st.none(), st.integers(6, 20))),
        lazy_threshold=draw(st.integers(0, 2)), op_bits_per_cycle=1)
    try:
        return EngineConfig(**fields)
    except ValueError:
        from hypothesis import reject
        reject()


@FUZZ
@given(cfg=softmax_configs(), data=st.data())
def test_exponent_within_lut_and_rounding_bound(cfg, data):
    F = cfg.log_frac_bits
    hi = (cfg.x_max - cfg.x_min)
    d = np.array(data.draw(st.lists(st.integers(-(cfg.lazy_threshold << F), hi), min_size=1, max_size=64)),
                 dtype=np.int64)
    p, tier = softmax.exp2_neg(d, cfg)
    pmax = float(cfg.prob_max)
    exact = pmax * np.exp2(-d / float(1 << F))
    n = d >> F
    coarse = cfg.tiers & (d >= (cfg.fine_window << F))
    b = np.where(coarse, cfg.coarse_lut_bits, cfg.fine_lut_bits).astype(np.float64)
    entry_err = pmax * (1 - np.exp2(-np.exp2(-b))) + 0.5
    bound = np.where(n >= 0, entry_err / np.exp2(np.minimum(n, 62)) + 0.5, entry_err * np.exp2(-n))
    skipped = np.zeros(d.shape, bool) if cfg.skip_threshold is None else d >= (cfg.skip_threshold << F)
    bound = np.where(skipped, pmax * 2.0 ** -(cfg.skip_threshold or 0) + 1e-9, bound)
    err = np.abs(p - exact)
    assert (err <= bound * (1 + 1e-12)).all(), (d[err > bound], p[err > bound], exact[err > bound])
    assert ((p == 0) | ~skipped).all()


@FUZZ
@given(data=st.data(), F=st.integers(0, 10), x_int=st.integers(3, 14), const_bits=st.integers(2, 16))
def test_log_domain_score_within_half_lsb(data, F, x_int, const_bits):
    cfg = EngineConfig(log_frac_bits=F, x_int_bits=x_int, const_bits=const_bits, fine_lut_bits=0,
                       coarse_lut_bits=0, prob_bits=4, fine_window=1, skip_threshold=None, tiers=False,
                       op_bits_per_cycle=1)
    s = np.array(data.draw(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=32)), np.int64)
    c_mant = data.draw(st.integers(0, (1 << const_bits) - 1))
    c_shift = data.draw(st.integers(0, 24))
    x = softmax.to_log2(s[None, :], np.array([c_mant]), np.array([c_shift]), cfg)[0]
    exact = s * float(c_mant) / float(1 << c_shift)
    inside = (exact >= cfg.x_min) & (exact <= cfg.x_max)
    assert ((x - exact > -0.5) & (x - exact <= 0.5))[inside].all()
    assert (x[exact > cfg.x_max] == cfg.x_max).all() and (x[exact < cfg.x_min] == cfg.x_min).all()


@FUZZ
@given(data=st.data(), f=st.integers(0, 12), out_bits=st.integers(2, 20))
def test_normaliser_within_half_lsb(data, f, out_bits):
    O = np.array(data.draw(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=16)), np.int64)
    l = data.draw(st.integers(0, 1 << 30))
    out = op_cim.normalise(O, np.int64(l), out_frac_bits=f, out_bits=out_bits)
    lim = 1 << (out_bits - 1)
    if l == 0:
        assert (out == 0).all()
        return
    exact = O.astype(np.float64) * (1 << f) / l
    inside = (exact >= -lim) & (exact <= lim - 1)
    assert (np.abs(out - exact)[inside] <= 0.5 + 1e-9).all()
    assert (out[exact > lim - 1] == lim - 1).all() and (out[exact < -lim] == -lim).all()
