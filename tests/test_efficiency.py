"""Area and energy efficiency beside the peers (fusioncim.perf.efficiency): every figure by hand."""

import pytest

from fusioncim.cli import main
from fusioncim.core.config import PRESETS
from fusioncim.perf import efficiency as ef

# An engine's area result as synth.area.estimate gives it (the fields efficiency reads).
AREA = {"area_um2": 2_000_000.0, "sram_um2": 2_000_000.0, "clock_mhz": 400.0}


def test_peak_operations_by_hand():
    # 2 operations a MAC, QK^T and PV each rows x head_dim MACs a key, a key every data_bits / ip_bits cycles.
    assert ef.peak_ops_per_cycle(PRESETS["default"]) == 4 * 16 * 64 // (8 // 2) == 1024
    assert ef.peak_ops_per_cycle(PRESETS["test"]) == 4 * 4 * 16 // 4
    assert ef.peak_ops_per_cycle(PRESETS["default"], head_dim=128) == 2048


def test_node_rules_by_hand():
    # Area as node squared (clock held); energy per operation as node x vdd squared.
    assert ef.to_node_tops_mm2(5.93, 22, 45) == pytest.approx(5.93 * 22 ** 2 / 45 ** 2)
    assert ef.to_node_tops_mm2(1.0, 45, 22) == pytest.approx((45 / 22) ** 2)
    assert ef.to_node_tops_w(16.9, 22, 45, 0.8, 0.9) == pytest.approx(16.9 * 22 / 45 * 0.64 / 0.81)
    assert ef.to_node_tops_w(26.1, 28, 45) == pytest.approx(26.1 * 28 / 45)       # no supply: node alone


def test_figures_by_hand():
    cfg = PRESETS["default"]
    fig = ef.figures(cfg, AREA, utilisation=0.5, utilisation_source="half", tops_w=4.0, tops_w_source="given")
    peak = 1024 * 400e6 / 1e12
    assert fig["peak_tops"] == pytest.approx(peak)
    assert fig["peak_tops_mm2_logic"] == pytest.approx(peak / 2.0)
    assert fig["peak_tops_mm2_with_sram"] == pytest.approx(peak / 4.0)
    assert fig["achieved_tops_mm2_logic"] == pytest.approx(peak / 4.0)
    assert fig["achieved_tops_mm2_with_sram"] == pytest.approx(peak / 8.0)
    ita, cimple, seed = fig["peers"]
    assert ita["tops_mm2_at_45nm"] == pytest.approx(5.93 * (22 / 45) ** 2)
    assert ita["ours_tops_mm2_logic_at_node"] == pytest.approx(peak / 4.0 * (45 / 22) ** 2)
    assert ita["ours_tops_w_at_node"] == pytest.approx(4.0 * 45 / 22 * (0.9 / 0.8) ** 2)
    assert cimple["tops_w_at_45nm"] == pytest.approx(26.1 * 28 / 45)
    assert seed["tops_w"] == 29.4 and "tops_w_at_45nm" not in seed          # no node: not scaled
    text = "\n".join(ef.lines(fig))
    assert f"{peak:.2f} TOPS" in text and "utilisation 50.0%: half" in text and "TOPS/W    4.00 (given)" in text
    assert "node not stated" in text and "arXiv 2307.03493" in text


def test_no_clock_no_tops():
    fig = ef.figures(PRESETS["default"], {**AREA, "clock_mhz": None})
    assert ef.lines(fig) == [fig["note"]] and "no TOPS" in fig["note"]


def test_utilisation_from_a_report_result_by_hand():
    cfg = PRESETS["default"]
    result = {"workload": "w", "shape": {"head_dim": 128}, "ops": 2048 * 900, "node_nm": 45.0, "vdd": 0.9,
              "variants": {"fusioncim": {"cycles": 1000}}, "summary": {"tops_w": 3.5}}
    use = ef.from_report(cfg, result)
    assert use["utilisation"] == pytest.approx(0.9) and use["tops_w"] == 3.5
    # A report at another node: its TOPS/W moved to 45 nm 0.9 V, where the area is.
    use = ef.from_report(cfg, {**result, "node_nm": 22.0, "vdd": 0.8})
    assert use["tops_w"] == pytest.approx(3.5 * 22 / 45 * (0.8 / 0.9) ** 2)
    assert "moved from 22 nm 0.8 V" in use["tops_w_source"]


def test_report_prints_efficiency_when_the_area_is_cached(monkeypatch, capsys):
    from fusioncim.synth import area
    monkeypatch.setattr(area, "cached_result", lambda block, cfg: {**AREA, "area_um2": AREA["area_um2"]})
    assert main(["report", "--workload", "llama3-8b-prefill-2048", "-q"]) == 0
    out = capsys.readouterr()[0]
    assert "efficiency at 45 nm, 400 MHz" in out and "TOPS/mm² of logic" in out and "ITA (22 nm 0.8 V" in out
