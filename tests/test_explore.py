"""fusioncim explore: sweep records, resuming, plots, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fusioncim.perf import dataflow as df, explore, report
from fusioncim.core.config import PRESETS
from fusioncim.core.configfile import load


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fusioncim", "explore", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_sweep_records_resume_and_plots(tmp_path):
    out = tmp_path / "ex"
    r = _cli("--no-area", "--sweep", "rows=8,16", "--out", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(tuple(x["sets"]) for x in recs) == [("rows=16",), ("rows=8",)]
    assert (out / "utilisation.png").stat().st_size > 1000 and (out / "accuracy.png").exists()
    assert not (out / "pareto.png").exists()           # no area, no Pareto front
    # each record is the report's figure for that config
    rec = next(x for x in recs if x["sets"] == ["rows=8"])
    cfg = load(None, ["rows=8"])
    rep = report.evaluate(cfg, df.WORKLOADS["llama3-8b-prefill-2048"], report.patterns(cfg))
    f = rep["variants"]["fusioncim"]
    assert rec["pj_per_op"] == pytest.approx(f["energy_pj"] / rep["ops"])
    assert rec["energy_ratio"] == pytest.approx(rep["summary"]["energy_ratio"])
    # One source of rates for the whole sweep, said in the heading: rows=16 alone has stored rates.
    assert ("score-pattern rates: measured now on the shipped files fusioncim/data/real/smollm2-*.npz, at 256 "
            "tokens; NOT stored rates") in r.stdout
    assert "Stored 2048-token rates exist for 1 of the 2 points" in r.stdout
    assert all(x["rates_note"].startswith("score-pattern rates: measured now on the shipped files") for x in recs)
    # run again: nothing is redone
    again = _cli("--no-area", "--sweep", "rows=8,16", "--out", str(out))
    assert again.returncode == 0 and "2 of 2 points already in" in again.stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    # a cut-off line is ignored and its point redone
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
    third = _cli("--no-area", "--sweep", "rows=8,16", "--out", str(out), "-q")
    assert third.returncode == 0
    assert len([x for x in (out / "results.jsonl").read_text().splitlines() if x.endswith("}")]) == 2


def test_pareto_plot_and_front(tmp_path):
    xs = np.array([3.0, 1.0, 2.0, 4.0])
    ys = np.array([1.0, 3.0, 2.0, 0.5])
    assert explore._pareto(xs, ys).tolist() == [1, 2, 0, 3]
    assert explore._pareto(np.array([1.0, 2.0]), np.array([1.0, 2.0])).tolist() == [0]
    base = {"workload": "w", "utilisation": {str(n): 0.5 for n in explore.SEQ_LENS}, "rel_l2_median": 0.01,
            "rel_l2_max": 0.02}
    recs = [{**base, "sets": [f"rows={r}"], "transistors": t, "pj_per_op": e}
            for r, t, e in ((4, 1e6, 0.4), (8, 2e6, 0.3))]
    written = explore.plot(recs, tmp_path, {"rows": ["4", "8"]})
    assert written == ["pareto.png", "utilisation.png", "accuracy.png"]


def _inside(inner, outer, slack=1.0):
    return (inner.x0 >= outer.x0 - slack and inner.y0 >= outer.y0 - slack and inner.x1 <= outer.x1 + slack
            and inner.y1 <= outer.y1 + slack)


def test_figures_keep_titles_inside_legends_outside_and_caption_flat_metrics():
    import matplotlib.pyplot as plt
    # Two rows values: utilisation and energy vary, accuracy does not (as when sweeping rows).
    recs = [{"workload": "llama3-8b-prefill-2048", "sets": [f"rows={r}"], "transistors": t, "pj_per_op": e,
             "utilisation": {str(n): u * n / (n + 64) for n in explore.SEQ_LENS}, "rel_l2_median": 0.0141,
             "rel_l2_max": 0.0216, "accuracy_file": "smollm2-L12-T256.npz"}
            for r, t, e, u in ((4, 1e6, 0.47, 0.9), (32, 9e6, 0.24, 0.6))]
    figs = explore.figures(recs, {"rows": ["4", "32"]})
    assert list(figs) == ["pareto.png", "utilisation.png", "accuracy.png"]
    for name, fig in figs.items():
        fig.canvas.draw()
        title = fig.get_suptitle()
        assert title, name
        assert _inside(fig._suptitle.get_window_extent(), fig.bbox), name
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                assert not legend.get_window_extent().overlaps(ax.get_window_extent()), name
                assert _inside(legend.get_window_extent(), fig.bbox), name
        plt.close(fig)
    # accuracy does not vary: a caption with the values, no curves
    acc = explore.figures(recs, {"rows": ["4", "32"]})["accuracy.png"]
    (ax,) = acc.axes
    assert len(ax.get_lines()) == 0
    (caption,) = [t.get_text().replace("\n", " ") for t in ax.texts]
    assert "rows does not change the accuracy" in caption and "median 1.41%, max 2.16%" in caption
    # utilisation and energy vary: curves, one per point, and the Pareto front
    util = explore.figures(recs, {"rows": ["4", "32"]})["utilisation.png"]
    assert len(util.axes[0].get_lines()) == 2 and len(util.axes[0].texts) == 0
    # a long sweep title on a one-key accuracy plot is wrapped, not cut
    many = [{**recs[0], "sets": ["fine_lut_bits=4"], "rel_l2_median": 0.02},
            {**recs[1], "sets": ["fine_lut_bits=7"], "rel_l2_median": 0.01}]
    fig = explore.figures(many, {"fine_lut_bits": ["4", "7"]})["accuracy.png"]
    fig.canvas.draw()
    assert "\n" in fig.get_suptitle() and _inside(fig._suptitle.get_window_extent(), fig.bbox)
    assert len(fig.axes[0].get_lines()) == 2
    plt.close("all")


@pytest.mark.parametrize("args,message", [
    (["--sweep", "colour=1,2"], "--sweep: unknown key 'colour'"),
    (["--sweep", "rows"], "--sweep 'rows' must be KEY=V1,V2,..."),
    (["--sweep", "rows=4,0"], "--sweep point rows=0: rows must be from 1 to 1024, not 0"),
    (["--workload", "bert"], "--workload 'bert' is not one of"),
    (["--jobs", "0"], "--jobs must be a positive integer, not 0"),
    (["--sweep", "ip_bits_per_cycle=8"], "no point of the sweep can make an engine for llama3-8b-prefill-2048 (e.g. "
                                         "ip_bits_per_cycle=8: op_bits_per_cycle 4 gives the OP-CIM"),
    (["--out", "missing/ex"], "the folder"),
])
def test_errors_leave_nothing(tmp_path, args, message):
    r = _cli("--no-area", "--out", "ex", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert message in r.stderr
    assert not (tmp_path / "ex").exists()


def test_grid():
    sw = explore.parse_sweeps(["rows=4,8", "tiers=true,false"])
    assert explore.grid(sw) == [["rows=4", "tiers=true"], ["rows=4", "tiers=false"], ["rows=8", "tiers=true"],
                                ["rows=8", "tiers=false"]]
    assert PRESETS["default"].rows == 16


def test_point_ids_name_files_by_content_not_path(tmp_path):
    # A sweep resumes in another checkout: the same file under two paths gives the same id, another file not.
    src = report.REAL / "smollm2-L12-T256.npz"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / src.name).write_bytes(src.read_bytes())
    (b / src.name).write_bytes(src.read_bytes())
    opts = {"workload": "llama3-8b-prefill-2048", "area": False, "patterns": None}
    ida = explore._point_id(None, ["rows=8"], {**opts, "accuracy_file": str(a / src.name)})
    idb = explore._point_id(None, ["rows=8"], {**opts, "accuracy_file": str(b / src.name)})
    other = explore._point_id(None, ["rows=8"], {**opts, "accuracy_file": str(report.REAL / "smollm2-L00-T256.npz")})
    assert ida == idb != other
    job_opts = {**opts, "accuracy_file": str(a / src.name)}
    pid = explore._point_id(None, ["skip_threshold=none"], job_opts)
    rec = explore.evaluate_point((None, ["skip_threshold=none"], job_opts, pid))
    assert rec["id"] == pid and rec["accuracy_file"] == src.name and str(tmp_path) not in json.dumps(rec)


def test_pareto_axis_is_mm2_and_says_where_area_and_energy_differ_in_head_dim():
    import matplotlib.pyplot as plt
    base = {"workload": "llama3-8b-prefill-2048", "utilisation": {str(n): 0.5 for n in explore.SEQ_LENS},
            "rel_l2_median": 0.01, "rel_l2_max": 0.02, "area_head_dim": 16, "energy_head_dim": 128}
    recs = [{**base, "sets": [f"rows={r}"], "transistors": t, "area_mm2": a, "pj_per_op": e}
            for r, t, a, e in ((4, 1e6, 0.25, 0.4), (8, 2e6, 0.5, 0.3))]
    fig = explore.figures(recs, {"rows": ["4", "8"]})["pareto.png"]
    ax = fig.axes[0]
    assert "mm² at 45 nm" in ax.get_xlabel() and "synthesised at head_dim 16" in ax.get_xlabel()
    assert "head_dim 128" in ax.get_ylabel()
    title = fig.get_suptitle().replace("\n", " ")
    assert "area synthesised at head_dim 16" in title and "energy for the workload's head_dim 128" in title
    # The points are drawn at their mm², not their transistor counts.
    assert ax.collections[0].get_offsets()[:, 0].tolist() == [0.25, 0.5]
    plt.close(fig)
    # Records kept from before the mm² (a resumed sweep): transistors, as they were labelled then.
    old = [{k: v for k, v in r.items() if k not in ("area_mm2", "area_head_dim", "energy_head_dim")} for r in recs]
    fig = explore.figures(old, {"rows": ["4", "8"]})["pareto.png"]
    assert "million transistors" in fig.axes[0].get_xlabel()
    assert fig.axes[0].collections[0].get_offsets()[:, 0].tolist() == [1.0, 2.0]
    plt.close(fig)
