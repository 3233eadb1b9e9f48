"""The energy table and the event-energy formulas, against hand calculation (docs/energy.md)."""

import math
import subprocess
import sys

import pytest

from fusioncim.core.config import PRESETS
from fusioncim.synth import energy as E

DEFAULT = E.DEFAULT_TABLE.read_text()


def test_default_table_cites_every_number():
    t = E.load_table()
    assert set(t.pj) == set(E.TABLE_EVENTS) and set(t.params) == set(E.TABLE_PARAMS)
    # Horowitz ISSCC 2014, 45 nm, as the issue quotes them.
    assert (t.pj["add8"], t.pj["mul8"], t.pj["add32"]) == (0.03, 0.2, 0.1)
    assert (t.pj["sram64_8k"], t.pj["sram64_32k"], t.pj["sram64_1m"]) == (10, 20, 100)
    assert 1300 <= t.pj["dram64"] <= 2600
    for name in E.TABLE_EVENTS:
        src = t.sources[name]
        assert "Horowitz" in src or src.startswith("assumption:"), name
    assert t.sources["fexp32"].startswith("assumption:")


def test_derived_operations_by_hand():
    t = E.load_table()
    assert t.add(8) == pytest.approx(0.03)
    assert t.add(24) == pytest.approx(0.075)          # halfway from 16 (0.05) to 32 (0.1) bits
    assert t.add(48) == pytest.approx(0.15)           # the 16-32 slope carried on
    assert t.mul(16, 22) == pytest.approx(0.2 * 352 / 64)
    assert t.mul(32, 32) == pytest.approx(3.2)        # vs Horowitz's 3.1: the proportional rule is 3% high
    assert t.sram64(8 << 10) == pytest.approx(10)
    assert t.sram64(16 << 10) == pytest.approx(15)    # log-linear: 16 KB is halfway from 8 to 32 KB
    assert t.sram64(1 << 10) == pytest.approx(10)     # below the smallest point: clamped
    assert t.sram64(8 << 20) == pytest.approx(20)     # banked at 32 KB


def test_node_scaling_by_hand():
    t = E.load_table()
    half = t.at(node_nm=22.5)
    assert half.pj["add32"] == pytest.approx(0.05) and half.pj["sram64_1m"] == pytest.approx(50)
    assert half.pj["dram64"] == t.pj["dram64"]        # off-chip: not scaled
    low = t.at(vdd=0.45)
    assert low.pj["mul8"] == pytest.approx(0.05)      # (0.45/0.9)^2
    assert t.scale(7, 0.7) == pytest.approx(7 / 45 * (0.7 / 0.9) ** 2)
    with pytest.raises(ValueError, match="node_nm must be a positive number"):
        t.at(node_nm=0)


def test_event_energies_and_sum_by_hand():
    cfg = PRESETS["default"]
    t = E.load_table()
    sizes = E.Sizes(kv_buffer=2 << 20, sp_buffer=4 << 10, qo_buffer=16 << 10, cim_array=2 << 10)
    en = E.event_energies(cfg, t, sizes)
    assert set(en) == set(E.EVENTS)
    assert en["ip_bitplane"] == pytest.approx(0.025)      # an 8x8 multiply is 8 bit-plane rows
    assert en["sm_convert"] == pytest.approx(0.2 * cfg.score_bits * cfg.const_bits / 64)
    assert en["kv_read_bits"] == pytest.approx(20 / 64)   # 2 MB buffer in 32 KB banks
    assert en["sp_read_bits"] == pytest.approx(10 / 64)   # 4 KB: the 8 KB point
    assert en["qo_write_bits"] == pytest.approx(15 / 64)
    assert en["dram_bits"] == pytest.approx(1950 / 64)
    assert en["fp_exp"] == pytest.approx(4 * 3.7 + 4 * 0.9)
    r = E.energy({"ip_bitplane": 1000, "dram_bits": 64, "fp_exp": 2}, en)
    assert r["total_pj"] == pytest.approx(25 + 1950 + 36.8)
    assert r["by_class"]["ip_cim"] == pytest.approx(25)
    assert r["by_class"]["softmax"] == pytest.approx(36.8)
    assert r["by_class"]["dram"] == pytest.approx(1950)
    assert math.fsum(r["by_class"].values()) == pytest.approx(r["total_pj"])
    with pytest.raises(ValueError, match="unknown event 'flux'"):
        E.energy({"flux": 1}, en)


BAD = [
    (DEFAULT.replace("[events.add8]", "[events.add9]"), r"unknown key 'add9' in \[events\]"),
    (DEFAULT.replace('source = "Horowitz ISSCC 2014: 8-bit integer multiply"', ""),
     r"\[events.mul8\] has no source"),
    (DEFAULT.replace('source = "Horowitz ISSCC 2014: 8-bit integer multiply"', 'source = " "'),
     r"\[events.mul8\] has no source"),
    (DEFAULT.replace("pj = 0.03", "pj = -0.03"), r"\[events.add8\] pj must be zero or more, not -0.03"),
    (DEFAULT.replace("pj = 0.03", 'pj = "cheap"'), r"\[events.add8\] pj must be a number, not 'cheap'"),
    (DEFAULT.replace("pj = 0.03", "pj = 0.03\nunit = 'pJ'"), r"unknown key 'unit' in \[events.add8\]"),
    (DEFAULT.replace("[events.fexp32]\npj = 18.4", "[events.fexp32]"), r"\[events.fexp32\] needs pj"),
    (DEFAULT.replace("[events.lut_read]", "[unused.lut_read]"), r"unknown key 'unused' in the file"),
    (DEFAULT.replace("value = 32768", "value = 0"), r"sram_bank_bytes\] value must be positive, not 0"),
    (DEFAULT.replace("node_nm = 45", "node_nm = 0"), r"\[reference\] node_nm must be positive"),
    (DEFAULT + "\n[events.add8]\n", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_tables_are_refused(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(E.EnergyTableError, match=message) as exc:
        E.load_table(p)
    assert str(p) in str(exc.value)


def test_missing_event_and_file(tmp_path):
    p = tmp_path / "t.toml"
    start = DEFAULT.index("[events.dram64]")
    p.write_text(DEFAULT[:start] + DEFAULT[DEFAULT.index("# -- assumptions"):])
    with pytest.raises(E.EnergyTableError, match=r"missing event \[events.dram64\]"):
        E.load_table(p)
    with pytest.raises(E.EnergyTableError, match="no such file"):
        E.load_table(tmp_path / "none.toml")


def test_cli_refuses_a_bad_table(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(DEFAULT.replace("pj = 0.2", "pj = -1"))
    r = subprocess.run([sys.executable, "-m", "fusioncim", "report", "-q", "--energy", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert "pj must be zero or more, not -1" in r.stderr and "Traceback" not in r.stderr
