"""Issue 17, item by item: the CLI never quietly does something other than what was asked.

Each test runs ``fusioncim`` as a subprocess and checks the exit status, stdout,
stderr and the files left behind. Items 6 and 7 (a sweep with no buildable
point, the plots) are in tests/test_explore.py, item 8 (packaging warnings) in
tests/test_package.py, item 10's loader cases in tests/test_attnfile.py and
``make fuzz``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncim.core import config as config_mod
from fusioncim.sim import rtlsim
from fusioncim.core.files import data_path

ROOT = Path(__file__).resolve().parent.parent
MINILM = data_path("real", "minilm-L02-T256.npz")          # head_dim 32, 12 heads, 256 tokens
ENGINE_TEST = ["--config", "test", "--set", "kv_depth=48"]
needs_icarus = pytest.mark.skipif(bool(rtlsim.available("icarus")), reason="needs Icarus")


def fc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fusioncim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def refused(r, *messages):
    """Exit 2, one line on stderr naming what was wrong, nothing on stdout."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.startswith("fusioncim: error: ") and r.stderr.count("\n") == 1, r.stderr
    for m in messages:
        assert m in r.stderr, r.stderr


# 1. No silent overrides -------------------------------------------------------------------------

@pytest.mark.parametrize("args, messages", [
    (["simulate", *ENGINE_TEST, "--set", "head_dim=16", "--npz", MINILM],
     ["--set head_dim=16 conflicts with", "whose head_dim is 32"]),
    (["demo", "--config", "test", "--set", "head_dim=64", "--npz", MINILM, "--no-synth"],
     ["--set head_dim=64 conflicts with", "whose head_dim is 32"]),
    (["accuracy", "--set", "head_dim=16", MINILM], ["--set head_dim=16 conflicts with", "whose head_dim is 32"]),
    (["simulate", *ENGINE_TEST, "--npz", MINILM, "--queries", "3"], ["--queries sets random data; with --npz"]),
    (["simulate", *ENGINE_TEST, "--npz", MINILM, "--keys", "30"], ["--keys sets random data"]),
    (["simulate", *ENGINE_TEST, "--npz", MINILM, "--kv-heads", "2"], ["--kv-heads sets random data"]),
])
def test_an_option_that_conflicts_with_the_file_is_an_error(tmp_path, args, messages):
    refused(fc(*args, cwd=tmp_path), *messages)
    assert list(tmp_path.iterdir()) == []


@needs_icarus
def test_values_taken_from_the_file_are_printed(tmp_path):
    # Five tokens: what is checked is the config line, not the run (the real heads' runs: test_engine_rtl.py).
    args = ["simulate", *ENGINE_TEST, "--npz", MINILM, "--heads", "3", "--tokens", "5", "--sim", "icarus"]
    r = fc(*args, "-q")
    assert r.returncode == 0, r.stderr
    assert "\nconfig        head_dim 32, from the file\n" in r.stdout
    doc = json.loads(fc(*args, "-q", "--json").stdout)
    assert doc["config_notes"] == ["head_dim 32, from the file"] and doc["config"]["head_dim"] == 32
    # an explicit head_dim equal to the file's is no conflict
    r = fc(*args, "--set", "head_dim=32", "-q")
    assert r.returncode == 0 and "head_dim 32, from the file" in r.stdout
    # the file raises the KV buffer to hold its keys, and says so
    doc = json.loads(fc("simulate", "--config", "test", "--set", "max_seq_len=4", "--npz", MINILM, "--heads", "3",
                        "--tokens", "5", "--sim", "icarus", "-q", "--json").stdout)
    assert doc["config_notes"] == ["head_dim 32, from the file",
                                   "max_seq_len 5, raised from 4 to hold the file's keys"]


# 2. config output round-trips through --config ----------------------------------------------------

@pytest.mark.parametrize("args", [["--config", name] for name in config_mod.PRESETS]
                         + [["--set", "skip_threshold=none"], ["--config", "test", "--set", "softmax_lanes=2",
                                                                "--set", "acc_bits=30", "--set", "kv_depth=none"]])
def test_config_output_reads_back_as_the_same_config(tmp_path, args):
    r = fc("config", *args)
    assert r.returncode == 0, r.stderr
    path = tmp_path / "c.toml"
    path.write_text(r.stdout)
    again = fc("config", "--config", path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == r.stdout
    assert json.loads(fc("config", "--config", path, "--json").stdout) == json.loads(fc("config", *args,
                                                                                        "--json").stdout)
    if "skip_threshold=none" in args:
        assert 'skip_threshold = "none"' in r.stdout and json.loads(
            fc("config", "--config", path, "--json").stdout)["fields"]["skip_threshold"] is None
    assert "# score_bits = " in r.stdout          # derived values are comments


def test_none_in_a_toml_file_only_where_a_field_takes_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('skip_threshold = "none"\n')
    assert json.loads(fc("config", "--config", path, "--json").stdout)["fields"]["skip_threshold"] is None
    path.write_text('rows = "none"\n')
    refused(fc("config", "--config", path), "rows = 'none': only", "skip_threshold")


# 3. Wave files in the format their suffix says, and no folders made ------------------------------

@pytest.mark.parametrize("sim, name, message", [
    ("verilator", "run.fst", "verilator writes VCD traces; name a .vcd file"),
    ("icarus", "run.vcd", "icarus writes FST traces; name a .fst file"),
    ("icarus", "missing/run.fst", "does not exist (it is not created)"),
    ("verilator", ".", "name a .vcd file"),
])
def test_wave_files_follow_the_suffix_and_no_folder_is_made(tmp_path, sim, name, message):
    refused(fc("simulate", *ENGINE_TEST, "--sim", sim, "--queries", "4", "--waves", name, cwd=tmp_path), message)
    assert list(tmp_path.iterdir()) == []


@needs_icarus
def test_traced_build_names_its_own_cache_folder(tmp_path):
    r = fc("simulate", *ENGINE_TEST, "--sim", "icarus", "--queries", "4", "--heads", "1", "--waves", "w.fst",
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (folder,) = re.findall(r"cached in (\S+)\)", r.stderr)
    assert folder.endswith("-icarus-waves") and Path(folder).is_dir()
    assert (tmp_path / "w.fst").read_bytes()[:4] != b"$dat"          # FST, not VCD text
    assert "1 query head, 1 KV head, 4 queries, 4 keys" in r.stdout


# 4. One rule for score-pattern rates, said in the heading -----------------------------------------

def test_report_heading_says_where_the_rates_come_from(tmp_path):
    r = fc("report", "--workload", "llama3-8b-prefill-2048", "-q")
    assert r.stdout.splitlines()[1] == ("score-pattern rates: stored in fusioncim/data/patterns/smollm2-T2048.json, "
                                        "at 2048 tokens for this config")
    r = fc("report", "--workload", "llama3-8b-prefill-2048", "--set", "rows=8", "-q")
    assert r.stdout.splitlines()[1].startswith("score-pattern rates: measured now on the shipped files "
                                               "fusioncim/data/real/smollm2-*.npz, at 256 tokens; NOT stored rates "
                                               "for this config at 2048 tokens")


def test_patterns_out_is_read_by_report_and_explore(tmp_path):
    rates = tmp_path / "r.json"
    files = [data_path("real", "smollm2-L12-T256.npz")]
    assert fc("patterns", *files, "--out", rates, "--set", "rows=8", "-q").returncode == 0
    r = fc("report", "--workload", "llama3-8b-prefill-2048", "--set", "rows=8", "--patterns", rates, "--json", "-q")
    assert r.returncode == 0, r.stderr
    (doc,) = json.loads(r.stdout)
    # the rates in the file, as measured on the same file directly
    direct = json.loads(fc("report", "--workload", "llama3-8b-prefill-2048", "--set", "rows=8", "--patterns",
                           *files, "--json", "-q").stdout)[0]
    assert doc["summary"] == direct["summary"]
    assert doc["rates_note"].startswith(f"score-pattern rates: read from rates file {rates}, at 256 tokens; NOT")
    # measured with rows=8: refused for another rows value, naming the field
    refused(fc("report", "--patterns", rates), "measured with rows = 8, but the config has rows = 16")
    out = tmp_path / "ex"
    r = fc("explore", "--no-area", "--set", "rows=8", "--sweep", "tiers=true", "--patterns", rates, "--out", out)
    assert r.returncode == 0, r.stderr
    (rec,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert rec["energy_ratio"] == pytest.approx(doc["summary"]["energy_ratio"])
    assert f"read from rates file {rates}" in r.stdout
    refused(fc("explore", "--no-area", "--sweep", "rows=8,16", "--patterns", rates, "--out", tmp_path / "ex2"),
            "measured with rows = 8, but the config has rows = 16")
    assert not (tmp_path / "ex2").exists()


def test_results_report_is_the_report_commands_output():
    # docs/results.md's figures for the default design are `fusioncim report --markdown` verbatim, rates line
    # included.
    r = fc("report", "--markdown", "-q")
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("\n\nArea ")[0].strip()
    assert table in (ROOT / "docs" / "results.md").read_text()


# 5. Output path errors: one line, exit 2, nothing written ------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["generate", "ip_cim", "--config", "test", "--out", "."], "--out '.' is a folder; name a file"),
    (["generate", "ip_cim", "--config", "test", "--out", "missing/x.v"], "does not exist (it is not created)"),
    (["generate", "ip_cim", "--config", "test", "--out", "/proc/x.v"], "--out '/proc/x.v': the folder '/proc' cannot be written"),
    (["patterns", MINILM, "--out", "missing/r.json"], "does not exist (it is not created)"),
    (["explore", "--no-area", "--out", "missing/ex"], "does not exist (it is not created)"),
    # A folder that takes no files though os.access says yes to root (issue 31, item 4).
    (["explore", "--no-area", "--sweep", "rows=4", "--out", "/proc/x"],
     "--out '/proc/x': the folder '/proc' cannot be written (No such file or directory)"),
])
def test_output_path_errors_are_one_line(tmp_path, args, message):
    refused(fc(*args, cwd=tmp_path), message)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tmp_path, monkeypatch, capsys):
    # A folder the user may not write. Root writes anywhere (the machines here run as root), so the
    # permission is denied by os.access itself, the call the check makes, for that folder alone; the
    # command then runs in this process as it would for a user without the right.
    from fusioncim.cli import main
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw))
    assert main(["generate", "ip_cim", "--config", "test", "--out", str(locked / "x.v")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"fusioncim: error: --out '{locked / 'x.v'}': the folder '{locked}' cannot be written\n"
    assert list(locked.iterdir()) == []


# 9. The smaller things -------------------------------------------------------------------------------

def test_help_texts():
    assert "reads back" in fc("config", "--help").stdout
    assert "print one JSON document" in fc("config", "--help").stdout
    assert "print the full result as one JSON document" in fc("area", "--help").stdout
    top = " ".join(fc("--help").stdout.split())
    assert "(Verilator or Icarus)" in top and "(Verilator)" not in top
    assert "a .vcd file with Verilator, a .fst file with Icarus" in " ".join(fc("simulate", "--help").stdout.split())
    # Issue 31, item 9: every option says what it does.
    assert "the simulator (default verilator)" in " ".join(fc("simulate", "--help").stdout.split())
    assert "the rates file to write" in " ".join(fc("patterns", "--help").stdout.split())
    assert "how the tensors are stored" in " ".join(fc("extract", "--help").stdout.split())
    assert "not with --bus axi" in " ".join(fc("generate", "--help").stdout.split())


def test_per_layer_rows_follow_the_layer_number():
    # Issue 31, item 9: layers 0, 9, 19, 29, whatever order the records come in (not 0, 19, 29, 9).
    from fusioncim.accuracy.heads import per_layer
    recs = [{"model": "m", "layer": layer, "file": f"m-L{layer}.npz", "quant": "dynamic", "rel_l2": 0.01, "head": 0,
             "k_clipped_frac": 0.0, "v_clipped_frac": 0.0} for layer in (19, 29, 0, 9)]
    recs.append({**recs[0], "layer": None, "file": "other.npz"})
    assert [r["layer"] for r in per_layer(recs)] == [0, 9, 19, 29, "other.npz"]


def test_accuracy_explains_its_columns():
    r = fc("accuracy", MINILM, "-q")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    legend = " ".join(lines[lines.index("") - 5:lines.index("")])        # the five lines under the table
    for column in lines[0].split():
        if column not in ("file", "head", "pat", "seq"):
            assert column in legend, column
    assert "int8pt%: per-tensor int8" in legend and "resc/row pat / seq: rescales per query row" in legend


def test_keys_beyond_the_buffer_suggest_the_setting():
    refused(fc("simulate", "--config", "test", "--keys", "300", "--queries", "3"),
            "workload has 300 keys but the KV buffer holds 256 (kv_depth unset: max_seq_len 256); "
            "use --set max_seq_len=300")


def test_a_text_file_as_npz_is_named_for_what_it_is(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("just some text\n")
    refused(fc("accuracy", text), "not an .npz archive of q, k, v arrays (not a zip file)")
    assert "pickle" not in fc("accuracy", text).stderr


# 10. Container and decoder failures are bad input ------------------------------------------------------

def test_an_archive_claiming_encryption_is_bad_input(tmp_path):
    import numpy as np
    p = tmp_path / "enc.npz"
    np.savez(p, q=np.zeros((1, 2, 4)), k=np.zeros((1, 2, 4)), v=np.zeros((1, 2, 4)))
    data = bytearray(p.read_bytes())
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):       # the "encrypted" flag in every header
        i = data.find(sig)
        while i >= 0:
            data[i + at] |= 0x01
            i = data.find(sig, i + 4)
    p.write_bytes(bytes(data))
    refused(fc("accuracy", p), "not a readable .npz attention file", "encrypted")


def test_report_all_leaves_out_what_the_rows_cannot_run():
    # Issue 31, item 2: 'all' on the default config (16 rows) runs every workload but the two 70b
    # decode ones at 4 positions (GQA group 8 x 4 = 32 rows), each left out with a note; exit 0.
    from fusioncim.perf import dataflow
    r = fc("report", "--workload", "all", "--json", "-q")
    assert r.returncode == 0, r.stderr
    out = {w["workload"] for w in json.loads(r.stdout)}
    left = {"llama3-70b-decode-2048-p4", "llama3-70b-decode-8192-p4"}
    assert out == set(dataflow.WORKLOADS) - left
    notes = [line for line in r.stderr.splitlines() if line.startswith("fusioncim: note: ")]
    assert sorted(n.split()[2] for n in notes) == sorted(left)
    assert all("32 rows exceed the engine's rows 16" in n for n in notes)
    # Named on its own, such a workload is refused, not left out.
    refused(fc("report", "--workload", "llama3-70b-decode-2048-p4"), "32 rows exceed the engine's rows 16")


def test_config_says_what_every_field_means():
    # Issue 31, item 9: each field with its one-line meaning (from EngineConfig's docstring), read back
    # unchanged (the comments are TOML comments).
    r = fc("config")
    assert r.returncode == 0, r.stderr
    fields = [line for line in r.stdout.splitlines() if line and not line.startswith("#")]
    assert [line.split(" = ")[0] for line in fields] == list(config_mod.EngineConfig().to_dict())
    for line in fields:
        assert len(line.split("  # ", 1)[1]) > 15, line
    lines = dict(line.split(" = ", 1) for line in fields)
    assert lines["fine_window"].endswith("# Distance below the running max (log2 units) served by the fine LUT")
    assert "pattern\" order visits first" in lines["diag_window"]
    assert "Rescale only when a score exceeds the running max" in lines["lazy_threshold"]
