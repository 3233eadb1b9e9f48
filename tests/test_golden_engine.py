"""Whole-engine golden model: fast == per-key, against float64, invariants, counters."""

import numpy as np
import pytest

from fusioncim.core.config import PRESETS
from fusioncim.core import schedule
from fusioncim.golden import engine, reference
from fusioncim.accuracy import quant

TEST = PRESETS["test"]          # d = 16, rows = 4


def _data(seed, H, Hkv, L, d, Lq=None, scale=1.0):
    rng = np.random.default_rng(seed)
    Lq = L if Lq is None else Lq
    return (rng.normal(size=(H, Lq, d)) * scale, rng.normal(size=(Hkv, L, d)) * scale,
            rng.normal(size=(Hkv, L, d)))


def _run_both(z, cfg, **kw):
    a = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, **kw)
    b = engine.run_sequential(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, **kw)
    # Tiny chunks: many chunks of unequal key counts must give the same bits.
    c = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, chunk_entries=60, **kw)
    for other in (b, c):
        assert np.array_equal(a.out, other.out)
        assert np.array_equal(a.l, other.l)
        assert a.counters == other.counters
    return a


VARIANTS = {
    "default": TEST,
    "sequential-order": TEST.replace(key_order="sequential"),
    "lazy": TEST.replace(lazy_threshold=2, op_bits_per_cycle=2),
    "no-tiers-no-skip": TEST.replace(tiers=False, skip_threshold=None, key_skip=False),
    "naive-rescale": TEST.replace(rescale_on_growth_only=False),
    "narrow": TEST.replace(prob_bits=6, op_bits_per_cycle=3, fine_lut_bits=3, coarse_lut_bits=1,
                           skip_threshold=8, log_frac_bits=5, out_frac_bits=0, ip_bits_per_cycle=8),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_fast_equals_sequential(variant, causal, mode):
    cfg = VARIANTS[variant]
    q, k, v = _data(11, 4, 2, 13, cfg.head_dim, scale=1.5)     # 13 keys: not a multiple of 4 rows
    z = quant.quantise(q, k, v, cfg)
    _run_both(z, cfg, causal=causal, mode=mode)


@pytest.mark.parametrize("L, Lq", [(1, 1), (4, 4), (9, 9), (12, 3), (30, 1)])
def test_lengths(L, Lq):
    q, k, v = _data(L, 2, 1, L, TEST.head_dim, Lq=Lq)
    z = quant.quantise(q, k, v, TEST)
    for causal in (True, False):
        r = _run_both(z, TEST, causal=causal)
        ref = reference.attention(q, k, v, causal=causal)
        m = reference.metrics(quant.dequantise(r.out, z, TEST), ref)
        # int8 data, 12-bit p: a few percent at most on random data
        assert (m["rel_l2"] < 0.05).all(), m["rel_l2"]


def test_random_against_float64():
    cfg = PRESETS["default"]
    q, k, v = _data(3, 8, 2, 200, cfg.head_dim, scale=1.0)
    z = quant.quantise(q, k, v, cfg)
    r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=True)
    m = reference.metrics(quant.dequantise(r.out, z, cfg), reference.attention(q, k, v, causal=True))
    assert np.median(m["rel_l2"]) < 0.03 and (m["cosine"] > 0.999).all()


def test_huge_rescale_uses_exact_integer_path():
    # Keys in order with scores rising by ~60 log2 units: early contributions
    # are shifted past what float64 holds exactly, so the fast model must fall
    # back to Python integers for those rows, and still match bit for bit.
    cfg = TEST.replace(key_order="sequential", skip_threshold=None, tiers=False)
    L = 6
    k = np.zeros((1, L, 16), np.int64)
    k[0, :, 0] = [10, 20, 40, 60, 90, 127]
    z = quant.Quantised(q=np.full((1, 4, 16), 1, np.int64) * np.eye(16, dtype=np.int64)[0] * 127,
                        k=k, v=np.random.default_rng(0).integers(-128, 128, (1, L, 16)),
                        c_mant=np.full((1, 4), 1 << 15), c_shift=np.full((1, 4), 14),
                        score_scale=None, v_scale=None, v_offset=None)
    a = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=False)
    assert a.fallback_rows > 0
    _run_both(z, cfg, causal=False)


def test_one_key_returns_its_value():
    # One key: p is the same for every row, so O / l = v exactly (up to out_frac_bits rounding, none here).
    cfg = TEST
    z = quant.Quantised(q=np.ones((1, 1, 16), np.int64), k=np.ones((1, 1, 16), np.int64),
                        v=np.arange(-8, 8)[None, None, :].astype(np.int64) * 15,
                        c_mant=np.array([[1 << 15]]), c_shift=np.array([[20]]),
                        score_scale=np.ones((1, 1)), v_scale=np.ones((1, 16)), v_offset=np.zeros((1, 16)))
    r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg)
    assert r.out[0, 0].tolist() == (np.arange(-8, 8) * 15 * 16).tolist()


def test_all_scores_equal_gives_the_mean():
    cfg = TEST.replace(tiers=False, skip_threshold=None)
    L = 8
    v = np.random.default_rng(0).integers(-128, 128, (1, L, 16))
    z = dict(q=np.zeros((1, L, 16), np.int64), k=np.zeros((1, L, 16), np.int64), v=v,
             c_mant=np.full((1, L), 1 << 15), c_shift=np.full((1, L), 20))
    r = engine.run(**z, cfg=cfg, causal=False)
    # every p equal -> exact mean, rounded half away from zero to 1/16
    mean = v[0].sum(0) * 16 / L
    want = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
    assert (r.out[0] == want).all()
    assert r.counters.rescales == 0


def test_one_dominant_key():
    cfg = TEST
    q, k, v = _data(5, 1, 1, 20, 16)
    q[0] += 2.0
    k[0, 7] = 8.0                        # q.k7 ~ 256: ~90 log2 units above every other key
    z = quant.quantise(q, k, v, cfg)
    r = _run_both(z, cfg, causal=False)
    o = quant.dequantise(r.out, z, cfg)
    m = reference.metrics(o, reference.attention(q, k, v, causal=False))
    assert (m["rel_l2"] < 0.02).all()
    # keys streamed after key 7 fall below the skip threshold in every row
    want = 0
    for tile in range(5):                       # 20 queries, 4 rows a tile
        order = schedule.key_order(20, 4 * tile + 3, cfg).tolist()
        want += len(order) - 1 - order.index(7)
    assert r.counters.skipped_keys == want


def test_all_masked_but_one_row():
    # Causal: query 0 sees key 0 only, so its output is key 0's value.
    cfg = TEST
    q, k, v = _data(9, 2, 1, 10, 16)
    z = quant.quantise(q, k, v, cfg)
    r = _run_both(z, cfg, causal=True)
    want = z.v[0, 0] << cfg.out_frac_bits
    assert (r.out[:, 0] == want).all()


@pytest.mark.parametrize("qv, kv", [(127, 127), (-128, 127), (-128, -128)])
def test_extreme_int8(qv, kv):
    cfg = TEST
    L = 6
    z = dict(q=np.full((1, L, 16), qv), k=np.full((1, L, 16), kv), v=np.full((1, L, 16), -128),
             c_mant=np.full((1, L), (1 << 16) - 1), c_shift=np.zeros((1, L), np.int64))
    a = engine.run(**z, cfg=cfg)
    b = engine.run_sequential(**z, cfg=cfg)
    assert np.array_equal(a.out, b.out) and a.counters == b.counters
    assert (a.out == -128 * 16).all()       # every average of -128 is -128


def test_invariants_on_structured_data():
    cfg = PRESETS["default"]
    q, k, v = _data(21, 4, 2, 150, cfg.head_dim, scale=2.0)
    k[:, 0] += 3.0                          # a sink
    z = quant.quantise(q, k, v, cfg)
    r = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=True)
    c = r.counters
    H, L = 4, 150
    # output inside the range of the V it averages (causal prefix), in V units:
    # floor rescales can move O/l by at most (1 + 128) / (l - 1) V units, plus
    # the output rounding; see docs/numerics.md section 5.
    out = r.out / 16
    for h in range(H):
        vv = z.v[h // 2]
        for i in range(0, L, 37):
            pref = vv[:i + 1]
            tol = 129 / (r.l[h, i] - 1) + 1 / 32
            assert (out[h, i] >= pref.min(0) - tol).all() and (out[h, i] <= pref.max(0) + tol).all()
    # counters: every (row slot, key) pair of every tile is fine, coarse, skipped or masked
    tiles = -(-L // cfg.rows) * H
    keys = sum(min(L, (t + 1) * cfg.rows) for t in range(-(-L // cfg.rows))) * H
    assert c.tiles == tiles and c.keys == keys and c.k_reads == keys
    assert c.fine_lookups + c.coarse_lookups + c.skipped_entries + c.masked_entries == keys * cfg.rows
    assert c.v_reads == keys - c.skipped_keys
    assert c.cim_writes == H * L and c.q_load_cycles == tiles * cfg.rows
    assert c.ideal_cycles == keys * cfg.ip_cycles_per_key == c.ip_busy
    assert c.softmax_busy == keys * cfg.softmax_groups and c.norm_busy == H * L * (cfg.out_bits + 4)
    assert c.kv_writes == 2 * L         # two KV heads, loaded once each
    assert c.cycles > c.ideal_cycles
    assert (r.l > 0).all()


def test_p_in_unit_range():
    from fusioncim.golden import softmax
    cfg = PRESETS["default"]
    x = np.random.default_rng(1).integers(-50000, 50000, (16, 300))
    res = softmax.online(x, np.ones_like(x, bool), cfg)
    assert res.p.min() >= 0 and res.p.max() <= cfg.prob_max


def test_pattern_order_hand():
    cfg = TEST.replace(sink_keys=2, diag_window=3)
    assert schedule.key_order(10, 6, cfg).tolist() == [0, 1, 6, 5, 4, 2, 3, 7, 8, 9]
    assert schedule.key_order(3, 2, cfg).tolist() == [0, 1, 2]
    assert schedule.key_order(1, 0, cfg).tolist() == [0]
    assert schedule.key_order(10, 6, cfg.replace(key_order="sequential")).tolist() == list(range(10))


def test_tiles_decode_groups_heads():
    t = schedule.tiles_decode(H=8, Lq=2, Hkv=2, rows=3)
    # 4 heads per KV head in chunks of 3: [0,1,2], [3,-,-] for each position
    assert t.head[:4].tolist() == [[0, 1, 2], [3, -1, -1], [0, 1, 2], [3, -1, -1]]
    assert t.qrow[:2].tolist() == [[0, 0, 0], [0, -1, -1]]
    assert t.kv.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_tiles_decode_positions_by_hand():
    # Group of 2 heads, 3 positions per tile, 6 rows: position-major, the last tile holding 2 positions.
    t = schedule.tiles_decode(H=4, Lq=5, Hkv=2, rows=6, positions=3)
    assert t.qrow.tolist() == [[0, 0, 1, 1, 2, 2], [3, 3, 4, 4, -1, -1]] * 2
    assert t.head.tolist() == [[0, 1, 0, 1, 0, 1], [0, 1, 0, 1, -1, -1],
                               [2, 3, 2, 3, 2, 3], [2, 3, 2, 3, -1, -1]]
    assert t.kv.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("positions, mode, message", [
    (3, "decode", "positions 3 x GQA group 2 = 6 rows exceed the engine's rows 4; use at most 2"),
    (2, "prefill", "positions 2 applies to decode"),
    (0, "decode", "positions must be a positive integer, not 0"),
    (1.5, "decode", "positions must be a positive integer, not 1.5"),
])
def test_bad_positions(positions, mode, message):
    z = np.zeros((4, 3, 16), np.int64)
    k = np.zeros((2, 6, 16), np.int64)
    with pytest.raises(ValueError, match=message):
        engine.run(z, k, k, np.ones((4, 3), np.int64), np.ones((4, 3), np.int64), TEST, mode=mode,
                   positions=positions)


@pytest.mark.parametrize("causal", [True, False])
def test_decode_positions_numerics_and_masking(causal):
    # Several positions per tile change the grouping, not a row's numerics: every output equals one
    # position per tile's, and the per-row causal mask is each row's own position (float64 agrees).
    # Without causal masking the pattern order's diagonal window follows the tile's latest position,
    # so a row meets its keys in another order: equal bits need keys in order there.
    cfg = TEST if causal else TEST.replace(key_order="sequential")
    q, k, v = _data(7, 4, 2, 11, cfg.head_dim, Lq=5)
    z = quant.quantise(q, k, v, cfg)
    one = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=causal, mode="decode")
    two = _run_both(z, cfg, causal=causal, mode="decode", positions=2)
    assert np.array_equal(one.out, two.out)
    assert two.counters.tiles == 2 * 3 and one.counters.tiles == 2 * 5
    assert two.counters.cim_writes == one.counters.cim_writes == 4 * 5
    # Tiles of 2 positions stream up to the later one: keys [0, 8) and [0, 10) and [0, 11) per KV head (causal).
    assert two.counters.keys == 2 * ((8 + 10 + 11) if causal else 3 * 11)
    m = reference.metrics(quant.dequantise(two.out, z, cfg), reference.attention(q, k, v, causal=causal))
    assert np.max(m["rel_l2"]) < 0.05


def test_gqa_decode_equals_prefill_numerics():
    # Decode groups rows differently but each row's numerics depend only on
    # its own scores: outputs are identical, counters are not.
    cfg = PRESETS["default"]
    q, k, v = _data(4, 8, 2, 40, cfg.head_dim, Lq=1)
    z = quant.quantise(q, k, v, cfg)
    a = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, mode="prefill")
    b = _run_both(z, cfg, mode="decode")
    assert np.array_equal(a.out, b.out)
    assert b.counters.tiles == 2 and a.counters.tiles == 8 and b.counters.keys == 2 * 40


@pytest.mark.parametrize("bad, message", [
    (dict(q=np.zeros((3, 2, 16), np.int64)), "query heads 3 must be a multiple of KV heads 2"),
    (dict(q=np.full((2, 2, 16), 200)), "q holds values outside the 8-bit signed range"),
    (dict(q=np.zeros((2, 2, 8), np.int64)), "head_dim of the data"),
    (dict(q=np.zeros((2, 9, 16), np.int64)), "9 queries but only 4 keys"),
    (dict(c_mant=np.zeros((2, 3), np.int64)), "c_mant and c_shift must be"),
    (dict(c_shift=np.full((2, 2), -1)), "c_shift must be in"),
    (dict(mode="train"), "mode must be one of prefill, decode"),
])
def test_bad_inputs(bad, message):
    args = dict(q=np.zeros((2, 2, 16), np.int64), k=np.zeros((2, 4, 16), np.int64),
                v=np.zeros((2, 4, 16), np.int64), c_mant=np.ones((2, 2), np.int64),
                c_shift=np.ones((2, 2), np.int64))
    mode = bad.pop("mode", "prefill")
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        engine.run(**args, cfg=TEST, mode=mode)


def test_sequence_beyond_max_seq_len():
    cfg = TEST.replace(max_seq_len=8)
    z = np.zeros((1, 9, 16), np.int64)
    with pytest.raises(ValueError, match="9 keys exceed max_seq_len 8"):
        engine.run(z, z, z, np.ones((1, 9), np.int64), np.ones((1, 9), np.int64), cfg)


def test_plain_tile_span_is_tile_span_without_events():
    cfg = PRESETS["test"]
    for c in (cfg, cfg.replace(ip_bits_per_cycle=1, op_bits_per_cycle=2), cfg.replace(rows=7, softmax_lanes=2)):
        none = [np.zeros(n, bool) for n in range(1, 40)]
        assert [schedule.tile_span(c, len(f), f, f) for f in none] == list(schedule.plain_tile_span(c, np.arange(1, 40)))


def test_schedule_by_hand():
    # test preset: rows 4, 4 IP-CIM cycles per key, softmax latency 4, OP-CIM 3 cycles per key,
    # div_cycles 16. A tile: command 1 + load 4 + key read 1 + IP-CIM accept 1, then key i
    # enters 4i cycles later; the IP-CIM takes 4, the softmax 4, the V read 1, the OP-CIM accept
    # 1 and 3 digit cycles (+1 with a rescale), the hand-over 1: 21 + 4i for the last key.
    cfg = TEST
    f = np.zeros(3, bool)
    assert schedule.tile_span(cfg, 3, f, f) == 1 + 4 + 1 + 1 + 8 + 4 + 4 + 1 + 1 + 3 + 1 == 29
    # a rescale on the last key adds its shift cycle; one on the first key hides behind the IP-CIM
    assert schedule.tile_span(cfg, 3, f, np.array([0, 0, 1], bool)) == 30
    assert schedule.tile_span(cfg, 3, f, np.array([1, 0, 0], bool)) == 29
    # a skipped last key ends at its V read (OP-CIM accept, digits: 4 cycles earlier)
    assert schedule.tile_span(cfg, 3, np.array([0, 0, 1], bool), f) == 29 - 4
    # Two tiles of 29 cycles and 4 rows (64 cycles of division each). Double-buffered: the
    # first tile hands over in cycle 28, its division runs 29..92, so the second tile, done
    # computing at 29 + 28 = 57, hands over at 93 and its division ends at 93 + 64.
    # Single-buffered, the second command waits for the first division: 2 x (29 + 64).
    spans, rows = np.array([29, 29]), np.array([4, 4])
    assert schedule.segment_cycles(cfg, spans, rows) == 93 + 64 + 1
    assert schedule.segment_cycles(cfg.replace(double_buffer=False), spans, rows) == 2 * (29 + 64)
    # Two division lanes: 4 rows in 2 groups of load 1 + 13 quotient bits + round 1, and 4 hand-over
    # cycles: 2 x 15 + 4 = 34 cycles a division instead of 64. The first tile hands over in cycle 28,
    # its division runs 29..62, still longer than the second tile (done at 57): that one hands over
    # at 63 and its division ends at 63 + 34.
    two = cfg.replace(norm_lanes=2)
    assert schedule.segment_cycles(two, spans, rows) == 63 + 34 + 1
    # ...and three rows on 4 lanes: one group, 15 + 3.
    assert schedule.segment_cycles(cfg.replace(norm_lanes=4), spans[:1], rows[:1] - 1) == 29 + 18


def test_preloaded_schedule_by_hand():
    # q_double_buffer: the first command in cycle 0, its 4 rows loaded by cycle 4, the swap in cycle 5;
    # the keys follow the swap as they follow the load otherwise, so the tile ends in cycle 5 + 29 - 1 - 4
    # = 29, one cycle later than without preloading. The second command comes in cycle 6, right after the
    # swap, and is loaded by cycle 10: it swaps in cycle 30, once the first tile has ended, and ends in
    # 30 + 24 = 54; its division (64 cycles, double-buffered) waits for the first one's (30..93): it ends in
    # 94 and its division takes 95..158.
    cfg = TEST.replace(q_double_buffer=True)
    spans, rows = np.array([29, 29]), np.array([4, 4])
    assert schedule.segment_cycles(cfg, spans[:1], rows[:1]) == 29 + 64 + 1
    assert schedule.segment_cycles(cfg, spans, rows) == 94 + 64 + 1
    # With four division lanes (4 rows: one group of 15 + 4 hand-overs = 19 cycles) nothing waits:
    # the second tile ends in 54, its division runs 55..73.
    assert schedule.segment_cycles(cfg.replace(norm_lanes=4), spans, rows) == 54 + 19 + 1
    # Single-buffered the second swap waits for the first division (29 + 64 + 1 = 94): it ends in 94 + 24.
    single = cfg.replace(double_buffer=False)
    assert schedule.segment_cycles(single, spans, rows) == 94 + 24 + 64 + 1
    # Short tiles: the next load (4 rows after its command) sets the pace, not the previous tile.
    short = np.array([1 + 4 + 2, 1 + 4 + 2])        # 2 cycles after the load or swap
    # tile 1: swap 5, ends 5 + 2 = 7; command 6, loaded 11 -> swap 11, ends 13; divisions of 19 cycles:
    # 8..26; the second tile ends once it is done, in 27, and its division takes 28..46.
    assert schedule.segment_cycles(cfg.replace(norm_lanes=4), short, rows) == max(13, 7 + 19 + 1) + 19 + 1


def test_bench_prints_the_comparable_figures(tmp_path):
    # `make bench` on a small layer: every figure printed, the ratio the quotient of the two times shown.
    import re
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "bench" / "golden_speed.py"
    out = subprocess.run([sys.executable, str(script), "--len", "64", "--heads", "4", "--kv-heads", "1",
                          "--repeat", "1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    t32 = float(re.search(r"float32 NumPy attention\s+([0-9.]+) s", out.stdout).group(1))
    tg = float(re.search(r"golden engine \(bit-exact\)\s+([0-9.]+) s", out.stdout).group(1))
    ratio = float(re.search(r"golden / float32\s+([0-9.]+) x\s+\(target: within 5x; (met|NOT met)\)",
                            out.stdout).group(1))
    if t32 >= 0.05:
        # The times print to 0.01 s and the ratio to 0.1 x: the ratio of the unrounded times lies within
        # the bounds the rounded ones allow (a golden time printed as 0.01 s may be anything from 0.005).
        lo, hi = max(tg - 0.005, 0) / (t32 + 0.005), (tg + 0.005) / (t32 - 0.005)
        assert lo - 0.05 <= ratio <= hi + 0.05, (tg, t32, ratio)
    assert re.search(r"load average \(1 min\) [0-9.]+ before, [0-9.]+ after", out.stdout)
    assert list(tmp_path.iterdir()) == []
