"""Config validation: every bad value gets its own clear error; derived widths by hand."""

import dataclasses

import pytest

from fusioncim.core import config, configfile
from fusioncim.core.config import EngineConfig, ConfigError


def test_defaults_and_derived_widths_by_hand():
    c = EngineConfig()
    # |q.k| <= 64 * 128 * 128 = 2**20 -> 21 magnitude bits + sign.
    assert c.score_bits == 22
    assert c.prob_max == 4095 and c.p_bits == 12
    # l <= 4096 keys * 4095 < 2**24; |O| <= l * 128 -> 31 bits + sign.
    assert c.sum_width == 24 and c.acc_width == 32
    assert c.ip_cycles_per_key == 8 // 2 and c.op_cycles_per_key == 12 // 4
    assert c.x_bits == 12 + 8 and c.out_bits == 8 + 4


def test_llama_preset_widths():
    c = configfile.preset("llama3-8b")
    assert c.head_dim == 128 and c.score_bits == 23   # 128 * 2**14 = 2**21
    assert c.sum_width == (8192 * 4095).bit_length()


def test_lazy_threshold_widens_p():
    c = EngineConfig(lazy_threshold=1, op_bits_per_cycle=1)
    assert c.p_bits == 13 and c.sum_width == ((4096 * 4095) << 1).bit_length()


@pytest.mark.parametrize("field, value, exc, message", [
    ("rows", 0, ValueError, "rows must be from 1 to 1024, not 0"),
    ("rows", 2.0, TypeError, "rows must be an integer, not 2.0"),
    ("head_dim", True, TypeError, "head_dim must be an integer, not True"),
    ("data_bits", 1, ValueError, "data_bits must be from 2 to 16, not 1"),
    ("ip_bits_per_cycle", 3, ValueError, "ip_bits_per_cycle 3 must divide data_bits 8"),
    ("op_bits_per_cycle", 5, ValueError, "op_bits_per_cycle 5 must divide the probability width p_bits 12"),
    ("fine_lut_bits", 9, ValueError, "fine_lut_bits 9 cannot exceed log_frac_bits 8"),
    ("coarse_lut_bits", 8, ValueError, "coarse_lut_bits 8 cannot exceed fine_lut_bits 7"),
    ("skip_threshold", 4, ValueError, "skip_threshold 4 must be above fine_window 4"),
    ("skip_threshold", 0, ValueError, "skip_threshold must be at least 1, not 0"),
    ("key_order", "random", ValueError, "key_order must be one of sequential, pattern, not 'random'"),
    ("tiers", 1, TypeError, "tiers must be true or false, not 1"),
    ("lazy_threshold", 9, ValueError, "lazy_threshold must be from 0 to 8, not 9"),
    ("acc_bits", 24, ValueError, "acc_bits 24 cannot hold 4096 keys of 12-bit p times 8-bit v; needs 32"),
    ("sum_bits", 20, ValueError, "sum_bits 20 cannot hold the sum of 4096 keys of 12-bit p; needs 24"),
    ("max_seq_len", 0, ValueError, "max_seq_len must be from 1 to 16777215, not 0"),
    ("out_frac_bits", -1, ValueError, "out_frac_bits must be from 0 to 16, not -1"),
    ("sink_keys", -1, ValueError, "sink_keys must be at least 0, not -1"),
    ("diag_window", "8", TypeError, "diag_window must be an integer, not '8'"),
    ("log_frac_bits", 17, ValueError, "log_frac_bits must be from 0 to 16, not 17"),
    ("x_int_bits", 1, ValueError, "x_int_bits must be from 2 to 24, not 1"),
    ("const_bits", 40, ValueError, "const_bits must be from 2 to 24, not 40"),
    ("prob_bits", 17, ValueError, "prob_bits must be from 2 to 16, not 17"),
    ("fine_window", 0, ValueError, "fine_window must be at least 1, not 0"),
    ("key_skip", "yes", TypeError, "key_skip must be true or false, not 'yes'"),
    ("rescale_on_growth_only", None, TypeError, "rescale_on_growth_only must be true or false, not None"),
    ("causal", 0, TypeError, "causal must be true or false, not 0"),
    ("acc_bits", 32.0, TypeError, "acc_bits must be an integer, not 32.0"),
    ("ip_bits_per_cycle", 0, ValueError, "ip_bits_per_cycle must be at least 1, not 0"),
    ("kv_depth", 4097, ValueError, "kv_depth must be from 1 to 4096, not 4097"),
    ("kv_depth", 0, ValueError, "kv_depth must be from 1 to 4096, not 0"),
    ("double_buffer", "no", TypeError, "double_buffer must be true or false, not 'no'"),
])
def test_bad_values(field, value, exc, message):
    with pytest.raises(exc) as info:
        EngineConfig(**{field: value})
    assert str(info.value).startswith(message)


def test_bad_combination_too_wide():
    # 4096 * 2**30 = 2**42 -> score_bits 44; 44 + 24 > 62.
    with pytest.raises(ValueError, match=r"score_bits 44 \(head_dim 4096, data_bits 16\) plus const_bits 24 exceed 62"):
        EngineConfig(head_dim=4096, data_bits=16, ip_bits_per_cycle=1, const_bits=24)


def test_prob_bits_too_small_for_the_lut():
    # 32 fine entries need 7 bits before neighbours stop colliding (checked by hand
    # from the bin means: at 6 bits entries 29 and 30 are both 33).
    with pytest.raises(ValueError, match="prob_bits 6 cannot represent the 32-entry fine LUT .*needs prob_bits >= 7"):
        EngineConfig(prob_bits=6, op_bits_per_cycle=2, fine_lut_bits=5, coarse_lut_bits=4)


@pytest.mark.parametrize("field, value", [("skip_threshold", 2048), ("fine_window", 4000)])
def test_thresholds_outside_log_range(field, value):
    kw = {field: value} if field == "skip_threshold" else {field: value, "skip_threshold": None}
    with pytest.raises(ValueError, match=f"{field} {value} is outside the log-domain range: .* 2047 units"):
        EngineConfig(**kw)


def test_lazy_threshold_needs_log_range():
    with pytest.raises(ValueError, match="x_int_bits 4 leaves no range above lazy_threshold"):
        EngineConfig(x_int_bits=4, lazy_threshold=2, op_bits_per_cycle=2, skip_threshold=None, fine_window=2)


def test_accumulator_beyond_model_width():
    with pytest.raises(ValueError, match="acc_bits 59 plus out_frac_bits 4 exceed the 60 bits"):
        EngineConfig(acc_bits=59)


def test_frozen_and_replace_revalidates():
    c = EngineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.rows = 3
    assert c.replace(rows=4).rows == 4
    with pytest.raises(ValueError, match="rows must be"):
        c.replace(rows=0)


def test_toml_roundtrip(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('preset = "test"\nrows = 8\nkey_order = "sequential"\nskip_threshold = 12\n')
    c = configfile.from_toml(p)
    assert c == dataclasses.replace(config.PRESETS["test"], rows=8, key_order="sequential", skip_threshold=12)
    assert configfile.load(str(p)) == c


@pytest.mark.parametrize("text, message", [
    ("rowz = 3\n", "unknown key 'rowz'"),
    ('rows = "3"\n', "rows must be an integer, not '3'"),
    ("rows = 0\n", "rows must be from 1 to 1024, not 0"),
    ("preset = 3\n", "preset must be a string, not 3"),
    ('preset = "huge"\n', "unknown preset 'huge'"),
    ("rows = \n", "not valid TOML"),
    ("causal = 1\n", "causal must be true or false, not 1"),
])
def test_toml_errors(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        configfile.from_toml(p)
    assert str(p) in str(info.value)


def test_missing_file_and_bad_spec(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        configfile.from_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="neither a preset"):
        configfile.load("nonsense")


def test_engine_rule_names_the_fix():
    assert EngineConfig().check_engine().kv_keys == 4096               # 3 + 1 OP-CIM cycles <= 4
    assert EngineConfig(kv_depth=100).kv_keys == 100
    with pytest.raises(ValueError, match=r"OP-CIM 3 \+ 1 \(rescale\) cycles per key, more than the IP-CIM's 2 .*"
                                         r"op_bits_per_cycle 12 would"):
        EngineConfig(ip_bits_per_cycle=4).check_engine()
    with pytest.raises(ValueError, match="no op_bits_per_cycle can; lower ip_bits_per_cycle"):
        EngineConfig(ip_bits_per_cycle=8).check_engine()


def test_fit_raises_lengths_and_never_lowers_them():
    cfg = config.PRESETS["test"]                            # max_seq_len 256, kv_depth None
    assert cfg.fit(32, 100) == cfg.replace(head_dim=32)
    assert cfg.fit(16, 300) == cfg.replace(max_seq_len=300)
    small = cfg.replace(kv_depth=48)
    assert small.fit(16, 64) == small.replace(kv_depth=64)
    assert small.fit(16, 10) == small
    assert small.fit(16, 400) == small.replace(max_seq_len=400, kv_depth=400)
