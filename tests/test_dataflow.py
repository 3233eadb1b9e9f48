"""Dataflow models (fusioncim.perf.dataflow): the engine's counters from its structure, and hand-computed events."""

import dataclasses

import numpy as np
import pytest

from fusioncim.core.files import data_path
from fusioncim.accuracy import attnfile
from fusioncim.perf import dataflow as df
from fusioncim.core.config import PRESETS
from fusioncim.golden import engine
from fusioncim.accuracy import quant

REAL = data_path("real")

STRUCTURAL = ("ideal_cycles", "q_load_cycles", "ip_busy", "softmax_busy", "norm_busy", "tiles", "keys", "k_reads",
              "masked_entries", "cim_writes", "kv_writes")
PATTERN = ("skipped_keys", "v_reads", "fine_lookups", "coarse_lookups", "skipped_entries", "rescales", "op_busy")


def _check_model_matches(cfg, wl, golden_counters):
    # Rates measured on a run, applied to the same workload's structure, give that run's counters back.
    pat = df.rates_of(golden_counters, cfg)
    model = df.model_counters(cfg, wl, pat)
    for f in STRUCTURAL + PATTERN:
        assert getattr(model, f) == getattr(golden_counters, f), f
    # cycles: exact but for a tile whose last key is skipped or rescaled (at most op_cycles + 2 each).
    slack = golden_counters.tiles * (cfg.op_cycles_per_key + 2)
    assert golden_counters.cycles - slack <= model.cycles <= golden_counters.cycles + slack
    return model


@pytest.mark.parametrize("mode,heads,kv,tokens,positions", [("prefill", 4, 2, 37, 1), ("decode", 6, 2, 50, 1),
                                                            ("prefill", 1, 1, 16, 1), ("decode", 4, 2, 21, 2)])
def test_model_counters_reproduce_golden_on_random_data(mode, heads, kv, tokens, positions):
    cfg = dataclasses.replace(PRESETS["test"], max_seq_len=64)
    wl = df.Workload("w", heads, kv, cfg.head_dim, mode, tokens, positions)
    rng = np.random.default_rng(tokens)
    lim = 1 << (cfg.data_bits - 1)
    q = rng.integers(-lim, lim, (heads, wl.queries, cfg.head_dim))
    k = rng.integers(-lim, lim, (kv, tokens, cfg.head_dim))
    v = rng.integers(-lim, lim, (kv, tokens, cfg.head_dim))
    cm = rng.integers(1 << (cfg.const_bits - 1), 1 << cfg.const_bits, (heads, wl.queries))
    cs = np.full((heads, wl.queries), cfg.score_bits)
    res = engine.run(q, k, v, cm, cs, cfg, causal=True, mode=mode, positions=positions)
    _check_model_matches(cfg, wl, res.counters)


def test_model_counters_reproduce_golden_on_real_attention():
    att = attnfile.load(REAL / "smollm2-L12-T256.npz")
    cfg = dataclasses.replace(PRESETS["default"], head_dim=att.head_dim)
    z = quant.quantise(att.q, att.k, att.v, cfg, scale=att.scale)
    res = engine.run(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=True)
    wl = df.Workload("smollm2", att.heads, att.kv_heads, att.head_dim, "prefill", att.k.shape[1])
    _check_model_matches(cfg, wl, res.counters)
    # ... and the report's default rates are the same measurement over several layers.
    pat = df.measure_patterns(cfg, [REAL / "smollm2-L12-T256.npz"], "prefill")
    assert pat.key_skip == res.counters.skipped_keys / res.counters.keys


def test_workloads_are_llama3_shapes():
    # 2 sizes x (prefill 512, 2048, 8192 + decode 2048, 8192 at 1, 2 and 4 positions)
    assert len(df.WORKLOADS) == 2 * (3 + 2 * 3)
    w = df.WORKLOADS["llama3-8b-prefill-2048"]
    assert (w.heads, w.kv_heads, w.head_dim, w.queries, w.tokens) == (32, 8, 128, 2048, 2048)
    w = df.WORKLOADS["llama3-70b-decode-8192"]
    assert (w.heads, w.kv_heads, w.head_dim, w.queries, w.tokens) == (64, 8, 128, 1, 8192)
    w = df.WORKLOADS["llama3-8b-decode-8192-p4"]
    assert (w.heads, w.kv_heads, w.queries, w.tokens, w.positions) == (32, 8, 4, 8192, 4)
    # LLaMA-3-8B's group of 4 at 4 positions fills the default 16 rows: 8 tiles, one per KV head.
    st = df.structure(PRESETS["default"].fit(128, 8192), w)
    assert st.r.tolist() == [16] * 8 and st.n.tolist() == [8192] * 8
    with pytest.raises(ValueError, match="positions 2 applies to decode only"):
        df.Workload("x", 4, 4, 8, "prefill", 8, 2)
    with pytest.raises(ValueError, match="positions 9 exceed its 8 tokens"):
        df.Workload("x", 4, 4, 8, "decode", 8, 9)
    with pytest.raises(ValueError, match="heads 6 must be a multiple of kv_heads 4"):
        df.Workload("x", 6, 4, 8, "prefill", 8)
    with pytest.raises(ValueError, match="mode must be one of prefill, decode, not 'train'"):
        df.Workload("x", 4, 4, 8, "train", 8)


def _tiny():
    # 1 head, head_dim 8, 3 tokens causal, tiles of 2 rows: tile 0 = queries 0, 1 (keys 0-1),
    # tile 1 = query 2 (keys 0-2). Live (query, key) pairs: 1 + 2 + 3 = 6.
    cfg = dataclasses.replace(PRESETS["test"], rows=2, max_seq_len=16)
    wl = df.Workload("tiny", 1, 1, cfg.head_dim, "prefill", 3)
    return cfg, wl


def test_structure_and_ops_by_hand():
    cfg, wl = _tiny()
    st = df.structure(cfg, wl)
    assert st.n.tolist() == [2, 3] and st.r.tolist() == [2, 1] and st.live.tolist() == [3, 3]
    assert df.ops(st, cfg) == 2 * 2 * 6 * cfg.head_dim


def test_fusioncim_events_by_hand():
    cfg, wl = _tiny()
    d, R = cfg.head_dim, 2
    c = engine.Counters(ip_busy=5 * cfg.ip_cycles_per_key, keys=5, k_reads=5, v_reads=4, skipped_keys=1,
                        fine_lookups=3, coarse_lookups=2, rescales=1, norm_busy=3 * (cfg.out_bits + 4),
                        cim_writes=3, kv_writes=3)
    ev = df.events_from_counters(cfg, c)
    assert ev["ip_bitplane"] == 5 * R * d * cfg.data_bits          # every key, every row slot, every bit
    assert ev["ip_row_add"] == 5 * R * cfg.ip_cycles_per_key
    assert ev["op_bitplane"] == 4 * R * d * cfg.p_bits             # the skipped key costs nothing
    assert ev["op_acc_add"] == 4 * R * d * cfg.op_cycles_per_key
    assert ev["op_rescale"] == d
    assert ev["sm_lookup"] == 5 and ev["sm_rescale"] == 1 and ev["sm_convert"] == 5 * R
    assert ev["norm_step"] == 3 * (cfg.out_bits + 4) * d
    assert ev["kv_read_bits"] == 9 * d * cfg.data_bits
    assert ev["cim_write_bits"] == 3 * d * cfg.data_bits
    assert ev["dram_bits"] == 3 * d * (cfg.data_bits + cfg.out_bits) + 3 * 2 * d * cfg.data_bits


def _tiny_variant(name):
    # The tiny workload under another dataflow, no skipping, no rescales.
    cfg, wl = _tiny()
    pat = df.Patterns(key_skip=0, fine=1, coarse=0, skipped=0, rescale=0, op_rescale=0, source="")
    c = df.model_counters(cfg, wl, pat)
    ev, cycles = df.variant_events(name, cfg, wl, c, c)
    return cfg, cfg.head_dim, 2, cfg.data_bits, ev, cycles


def test_baseline_events_and_cycles_by_hand():
    cfg, d, R, b, ev, cycles = _tiny_variant("baseline")
    # K blocks per tile: 1 and 2; stored key rows x query rows: 1*2*2 + 2*2*1 = 8.
    assert ev["ip_bitplane"] == 8 * d * b
    assert ev["op_bitplane"] == 8 * d * cfg.p_bits
    assert ev["cim_write_bits"] == 2 * 5 * d * b                  # K and V of 2 + 3 keys
    assert (ev["fp_exp"], ev["fp_add"], ev["fp_mul"], ev["fp_convert"]) == (6, 18, 6, 18)
    assert ev["sp_write_bits"] == 6 * (cfg.score_bits + 32 + cfg.p_bits)
    assert ev["qo_read_bits"] == (1 * 2 + 2 * 1) * d * (b + cfg.acc_width)
    cpk, opc = cfg.ip_cycles_per_key, cfg.op_cycles_per_key
    tile0 = 1 * (R + 2 * cpk) + 3 * -(-4 // cfg.lanes) + 1 * (R + 2 * opc) + R
    tile1 = 2 * (R + 1 * cpk) + 3 * -(-3 // cfg.lanes) + 2 * (R + 1 * opc) + R
    assert cycles == tile0 + tile1 + 3                              # + loading 3 keys


def test_pipelined_baseline_by_hand():
    cfg, d, R, b, ev, cycles = _tiny_variant("baseline_pipelined")
    serial_ev, serial = _tiny_variant("baseline")[4:]
    assert ev == serial_ev                                          # the same work, overlapped
    cpk, opc = cfg.ip_cycles_per_key, cfg.op_cycles_per_key
    qk = [1 * (R + 2 * cpk), 2 * (R + 1 * cpk)]
    sm = [3 * -(-4 // cfg.lanes), 3 * -(-3 // cfg.lanes)]
    pv = [1 * (R + 2 * opc) + R, 2 * (R + 1 * opc) + R]
    # Unit by unit: tile 1's QK follows tile 0's; each later phase waits for its unit and its input.
    qk_end = [qk[0], qk[0] + qk[1]]
    sm_end = [qk_end[0] + sm[0]]
    sm_end.append(max(sm_end[0], qk_end[1]) + sm[1])
    pv_end = [sm_end[0] + pv[0]]
    pv_end.append(max(pv_end[0], sm_end[1]) + pv[1])
    assert cycles == pv_end[1] + 3                                  # + loading 3 keys
    assert cycles < serial


def test_pipelined_cycles_by_hand():
    assert df.pipelined_cycles([[5, 5, 5], [1, 1, 1], [1, 1, 1]]) == 5 * 3 + 1 + 1
    assert df.pipelined_cycles([[1, 1, 1], [5, 5, 5], [1, 1, 1]]) == 1 + 5 * 3 + 1
    assert df.pipelined_cycles([[2], [3], [4]]) == 9
    assert df.pipelined_cycles([[1, 1], [1, 9], [9, 1]]) == max(1 + 1 + 9, 1 + 1 + 9) + 1
    assert df.pipelined_cycles([[], [], []]) == 0


def test_no_qo_stationary_by_hand():
    cfg, d, R, b, ev, cycles = _tiny_variant("no_qo_stationary")
    # Key blocks {0,1}, {2}: queries 0, 1 meet block 0; query 2 meets both: 4 query-block pairs.
    assert ev["ip_bitplane"] == 4 * R * d * b
    assert ev["cim_write_bits"] == 2 * R * 2 * d * b                # 2 blocks of K and V, padded to R keys
    state = d * cfg.acc_width + cfg.x_bits + cfg.sum_width
    assert ev["qo_read_bits"] == 4 * (d * b + state)
    assert cycles == 2 * R + 4 * cfg.ip_cycles_per_key + 3


def _tiny_traffic(name, buffers):
    cfg, wl = _tiny()
    pat = df.Patterns(key_skip=0, fine=1, coarse=0, skipped=0, rescale=0, op_rescale=0, source="")
    c = df.model_counters(cfg, wl, pat)
    ev, _ = df.variant_events(name, cfg, wl, c, c, buffers=buffers)
    off = df.traffic(name, cfg, wl, df.structure(cfg, wl), c, buffers)["offchip"]
    assert ev["dram_bits"] == sum(off.values())
    return cfg, cfg.head_dim, 2, cfg.data_bits, off


def test_offchip_traffic_by_hand():
    # Tiny workload: tiles of 2 and 1 rows streaming 2 and 3 keys, 3 live pairs each, one KV head of 3 keys.
    cfg, d, R, b, off = _tiny_traffic("baseline", None)
    q_o, kv = 3 * d * (b + cfg.out_bits), 3 * 2 * d * b
    assert off == {"q_o": q_o, "kv": kv, "sp_spill": 0, "qo_spill": 0}     # everything fits
    assert _tiny_traffic("fusioncim", None)[4] == {"q_o": q_o, "kv": kv}
    # A 1-byte S/P buffer: both tiles' scores and probabilities go out and come back,
    # written (S, P float32, p) and read (S twice, P float32, p): 6 live pairs.
    off = _tiny_traffic("baseline_pipelined", df.Buffers(sp_bytes=1))[4]
    assert off["sp_spill"] == 6 * ((cfg.score_bits + 32 + cfg.p_bits) + (2 * cfg.score_bits + 32 + cfg.p_bits))
    # A 2-key KV buffer: each tile streams its own keys from DRAM (2 + 3), for every Q-tiled dataflow.
    for name in ("fusioncim", "baseline", "no_fusion"):
        assert _tiny_traffic(name, df.Buffers(kv_keys=2))[4]["kv"] == 5 * 2 * d * b
    # no_fusion spills S and P of every row slot of both tiles (2 rows x 5 keys): written, then read.
    off = _tiny_traffic("no_fusion", df.Buffers(sp_bytes=1))[4]
    assert off["sp_spill"] == 5 * R * (cfg.score_bits + cfg.p_bits) + 5 * R * (cfg.score_bits + cfg.p_bits)
    # no_qo_stationary loads each key block once however small the KV buffer, and with a 1-byte Q/O buffer
    # reads each query and reads and writes its state at each of its 4 query-block meetings.
    off = _tiny_traffic("no_qo_stationary", df.Buffers(kv_keys=1, qo_bytes=1))[4]
    state = d * cfg.acc_width + cfg.x_bits + cfg.sum_width
    assert off == {"q_o": q_o, "kv": kv, "qo_spill": 4 * (d * b + 2 * state)}
    with pytest.raises(ValueError, match="buffer sp_bytes must be a positive integer or None, not 0"):
        df.Buffers(sp_bytes=0)


def test_unknown_variant():
    cfg, wl = _tiny()
    with pytest.raises(ValueError, match="variant must be one of"):
        df.variant_events("magic", cfg, wl, engine.Counters(), engine.Counters())
