"""fusioncim explore: sweep records, resuming, plots, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fusioncim import dataflow as df, explore, report
from fusioncim.config import PRESETS, load


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


@pytest.mark.parametrize("args,message", [
    (["--sweep", "colour=1,2"], "--sweep: unknown key 'colour'"),
    (["--sweep", "rows"], "--sweep 'rows' must be KEY=V1,V2,..."),
    (["--sweep", "rows=4,0"], "--sweep point rows=0: rows must be from 1 to 1024, not 0"),
    (["--workload", "bert"], "--workload 'bert' is not one of"),
    (["--jobs", "0"], "--jobs must be a positive integer, not 0"),
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
    rec = explore.evaluate_point((None, ["skip_threshold=none"], {**opts, "accuracy_file": str(a / src.name)}))
    assert rec["accuracy_file"] == src.name and str(tmp_path) not in json.dumps(rec)
