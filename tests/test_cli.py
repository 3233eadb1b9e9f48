"""The command line: outputs, and user errors as one line with exit status 2."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusioncim.accuracy import attnfile
from fusioncim.accuracy.attnfile import Attention
from fusioncim.cli import main
from fusioncim.core.files import data_path

ROOT = Path(__file__).resolve().parent.parent


def _small_file(tmp_path, name="a.npz", **over):
    rng = np.random.default_rng(0)
    a = dict(q=rng.normal(size=(4, 24, 16)), k=rng.normal(size=(2, 24, 16)), v=rng.normal(size=(2, 24, 16)),
             causal=True)
    a.update(over)
    p = tmp_path / name
    attnfile.save(p, Attention(**a))
    return p


def run_cli(*args):
    # A real process: checks the exit status and that no traceback escapes.
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "fusioncim", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_accuracy_json(tmp_path, capsys):
    p = _small_file(tmp_path)
    assert main(["accuracy", str(p), "--config", "test", "--json", "-q"]) == 0
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert len(records) == 4 and err == ""
    for key in ("file", "head", "rel_l2", "max_abs", "cosine", "fine_frac", "coarse_frac", "skip_frac",
                "rescales_per_row_pattern", "rescales_per_row_sequential", "rel_l2_exact_softmax"):
        assert key in records[0]
    assert records[0]["file"] == str(p) and records[3]["kv_head"] == 1
    assert all(0 < r["rel_l2"] < 0.1 for r in records)


def test_accuracy_table_and_progress(tmp_path, capsys):
    p = _small_file(tmp_path)
    assert main(["accuracy", str(p), str(p), "--config", "test"]) == 0
    out, err = capsys.readouterr()
    assert "[1/2]" in err and "[2/2]" in err
    assert out.count("a.npz") == 8 and "rel L2 vs float64, engine" in out and "8 heads" in out


def test_accuracy_default_mode_follows_the_config(tmp_path, capsys):
    # A config with per-key scales is quantised per key unless told otherwise (as simulate does); one
    # without them keeps dynamic scales. Each default equals the mode asked for by name.
    p = _small_file(tmp_path)
    per_key = ["--set", "k_exp_bits=3", "--set", "k_mant_bits=2", "--set", "v_exp_bits=2"]

    def records(*extra):
        assert main(["accuracy", str(p), "--config", "test", "--json", "-q", *extra]) == 0
        return json.loads(capsys.readouterr()[0])
    assert records(*per_key) == records(*per_key, "--quant", "per-key")
    assert {r["quant"] for r in records(*per_key)} == {"per-key"}
    assert records() == records("--quant", "dynamic")
    assert {r["quant"] for r in records()} == {"dynamic"}


def test_config_command_roundtrips_as_toml(tmp_path, capsys):
    assert main(["config", "--config", "test"]) == 0
    out = capsys.readouterr().out
    fields = out.split("[derived]")[0].replace("[fields]\n", "")
    p = tmp_path / "c.toml"
    p.write_text(fields)
    assert main(["config", "--config", str(p), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fields"]["head_dim"] == 16 and doc["derived"]["score_bits"] == 20   # 16 * 2**14 = 2**18 needs 19 bits + sign


@pytest.mark.parametrize("make_args, message", [
    (lambda t: ["accuracy", t / "missing.npz"], "no such file"),
    (lambda t: ["accuracy", _small_file(t, q=np.full((4, 24, 16), np.nan))], "NaN or infinite"),
    (lambda t: ["accuracy", _small_file(t), "--config", "nope"], "neither a preset"),
    (lambda t: ["accuracy", _small_file(t), "--config", _toml(t, "rows = 0\n")], "rows must be from 1 to 1024"),
    (lambda t: ["accuracy", _small_file(t), "--config", _toml(t, "colour = 1\n")], "unknown key 'colour'"),
    (lambda t: ["accuracy", _small_file(t), "--config", _toml(t, "rows = [\n")], "not valid TOML"),
    (lambda t: ["accuracy", _trunc(t)], "not a readable .npz"),
    (lambda t: ["simulate", "--config", "test", "--mode", "decode", "--heads", "4", "--kv-heads", "1",
                "--positions", "2"], "positions 2 x GQA group 4 = 8 rows exceed the engine's rows 4"),
    (lambda t: ["simulate", "--config", "test", "--positions", "2"], "positions 2 applies to decode"),
    (lambda t: ["simulate", "--config", "test", "--mode", "decode", "--positions", "2", "--queries", "2",
                "--keys", "5000"], "workload has 5000 keys but the KV buffer holds"),
    (lambda t: ["extract", "smollm2", "--out", t / "o", "--layers", "1,x"], "--layers must be comma-separated"),
    (lambda t: ["extract", "smollm2", "--out", t / "o", "--tokens", "0"], "--tokens must be a positive"),
])
def test_user_errors(tmp_path, make_args, message):
    r = run_cli(*make_args(tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr and message in r.stderr
    assert r.stderr.startswith("fusioncim: error:") and r.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_error_in_second_file_prints_nothing(tmp_path):
    good = _small_file(tmp_path, "good.npz")
    bad = _small_file(tmp_path, "bad.npz", q=np.zeros((3, 24, 16)), k=np.zeros((2, 24, 16)),
                      v=np.zeros((2, 24, 16)))
    r = run_cli("accuracy", good, bad, "--config", "test", "--json")
    assert r.returncode == 2 and r.stdout == "" and "not a multiple of 2 KV heads" in r.stderr


def test_argparse_errors_exit_2():
    r = run_cli("accuracy")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run_cli("frobnicate")
    assert r.returncode == 2


def test_internal_error_is_a_traceback_and_exit_1():
    # A bug (any exception but fusioncim.core.errors.InputError) must not pass for bad input.
    code = ("import sys, fusioncim.cli as cli, fusioncim.core.configfile as configfile\n"
            "def broken(*a, **k):\n    raise ValueError('an internal bug')\n"
            "configfile.load = broken\nsys.exit(cli.main(['config']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "ValueError: an internal bug" in r.stderr
    assert "fusioncim: error" not in r.stderr


@pytest.mark.slow
def test_demo_runs(tmp_path):
    # The main job on a small engine (the default one takes Yosys about 15 minutes; this one-row
    # engine about a minute): generate, simulate a real MiniLM head bit-exact on Verilator,
    # synthesise, report.
    real = data_path("real", "minilm-L02-T256.npz")
    r = subprocess.run([sys.executable, "-m", "fusioncim", "demo", "-q", "--config", "test", "--set", "rows=1",
                        "--npz", str(real), "--heads", "0", "--tokens", "24"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # The Verilog goes beside the RTL builds in the cache folder, nothing into the current folder.
    verilog = Path(os.environ["FUSIONCIM_CACHE"]) / "demo" / "engine.v"
    assert f"1. generated {verilog} (1 rows x head_dim 32, KV buffer 256 keys; head_dim 32, from the file)" in out
    assert verilog.exists() and list(tmp_path.iterdir()) == []
    assert "0 of 768 output elements and 0 of 19 counters differ from golden" in out
    assert "3. synthesised" in out and "transistors" in out and "4. report" in out
    assert "RTL (Verilator) counters of the simulated engine" in out
    assert "llama3-8b-prefill-2048" in out and "llama3-8b-decode-8192" in out
    # The verdict last (issue 31, item 9), its ratios those of the simulated heads' table (fusioncim column).
    verdict = out.rstrip().splitlines()[-1]
    m = re.fullmatch(r"verdict: the RTL is bit-exact with golden \(768 output elements and 19 counters equal\), "
                     r"synthesised; on the simulated heads, FusionCIM against the pipelined baseline: "
                     r"([\d.]+)x energy efficiency, ([\d.]+)x speed", verdict)
    assert m, verdict
    table = out[out.index("4. report"):].split("\n\n")[1].splitlines()      # the simulated heads' table
    header = next(line.split() for line in table if line.split()[:1] == ["baseline"])
    rows = {line[:30].strip(): line[30:].split() for line in table}
    col = header.index("fusioncim")
    assert rows["energy vs pipelined baseline"][col] == f"{m.group(1)}x"
    assert rows["speed vs pipelined baseline"][col] == f"{m.group(2)}x"
    # Without Yosys the steps are still numbered in order, and the time says what it measured.
    r = subprocess.run([sys.executable, "-m", "fusioncim", "demo", "--config", "test", "--set", "rows=1",
                        "--npz", str(real), "--heads", "0", "--tokens", "24", "--no-synth"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    steps = re.findall(r"^(\d)\. ", r.stdout, flags=re.M)
    assert steps == ["1", "2", "3"] and "3. report" in r.stdout
    assert re.search(r"^\(simulation: \d+ s\)$", r.stderr, flags=re.M) and "synthesis" not in r.stderr


def _toml(t, text):
    p = t / "c.toml"
    p.write_text(text)
    return p


def _trunc(t):
    p = _small_file(t, "t.npz")
    p.write_bytes(p.read_bytes()[:100])
    return p


def test_generate_writes_verilog(tmp_path):
    out = tmp_path / "ip.v"
    r = run_cli("generate", "ip_cim", "--config", "test", "--set", "rows=2", "--out", out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "module ip_cim(" in text and "k__payload" in text and "s__valid" in text
    assert r.stdout.split() == [str(out), str(tmp_path / "ip.vlt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ip.v", "ip.vlt"]


def test_generated_verilog_lints_clean_with_its_waiver_file(tmp_path):
    # Plain Verilator, as an integrator runs it: `verilator --lint-only -Wall X.v X.vlt`, exit 0 and no
    # warning; without the waiver file the same command fails, so the file is what makes it clean.
    import shutil
    from fusioncim.sim import verilator
    out = tmp_path / "engine.v"
    assert run_cli("generate", "engine", "--config", "test", "--out", out).returncode == 0
    vlt = tmp_path / "engine.vlt"
    for rule, _, reason in verilator.WAIVERS:
        assert f"// {rule}: {reason}" in vlt.read_text()
    env = verilator.setup_env(dict(os.environ))
    exe = shutil.which("verilator", path=env["PATH"])
    lint = [exe, "--lint-only", "-Wall", str(out)]
    clean = subprocess.run(lint + [str(vlt)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert clean.returncode == 0 and "%Warning" not in clean.stderr, clean.stderr[-2000:]
    bare = subprocess.run(lint, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert bare.returncode != 0 and "%Warning-" in bare.stderr


def test_generate_refuses_a_vlt_name(tmp_path):
    r = run_cli("generate", "ip_cim", "--config", "test", "--out", tmp_path / "x.vlt")
    assert r.returncode == 2 and "cannot end in .vlt" in r.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("block, port", [("softmax", "p_out__payload"), ("op_cim", "o_out__payload")])
def test_generate_other_blocks(tmp_path, block, port):
    out = tmp_path / f"{block}.v"
    r = run_cli("generate", block, "--config", "test", "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"module {block}(" in out.read_text() and port in out.read_text()


@pytest.mark.parametrize("args, message", [
    (["--set", "rows=0"], "rows must be from 1 to 1024, not 0"),
    (["--set", "prob_bits=6", "--set", "op_bits_per_cycle=2"], "prob_bits 6 cannot represent the 128-entry fine LUT"),
    (["--set", "rows=16", "--set", "softmax_lanes=2"], "softmax_lanes 2 need 8 cycles per key"),
    (["--set", "ip_bits_per_cycle=3"], "ip_bits_per_cycle 3 must divide data_bits 8"),
    (["--set", "acc_bits=8"], "acc_bits 8 cannot hold"),
    (["--set", "head_dim=0"], "head_dim must be from 1 to 4096, not 0"),
])
def test_generate_bad_config_writes_nothing(tmp_path, args, message):
    out = tmp_path / "ip.v"
    r = run_cli("generate", "ip_cim", "--out", out, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_generate_engine_that_cannot_keep_up_writes_nothing(tmp_path):
    out = tmp_path / "engine.v"
    r = run_cli("generate", "engine", "--out", out, "--set", "ip_bits_per_cycle=8")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "the engine needs the OP-CIM to keep up" in r.stderr and not out.exists()


# The config of tests/test_engine_rtl.py's "test" entry: the simulate runs below reuse its build.
ENGINE_TEST = ["--config", "test", "--set", "kv_depth=48"]


def test_simulate_random_bit_exact_json():
    r = run_cli("simulate", *ENGINE_TEST, "--heads", "2", "--queries", "6", "--keys", "9", "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["bit_exact"] and doc["mismatching_elements"] == 0 and doc["elements"] == 2 * 6 * 16
    assert doc["counters_rtl"] == {k: doc["counters_golden"][k] for k in doc["counters_rtl"]}
    assert doc["ideal_cycles"] == doc["counters_rtl"]["keys"] * 4
    assert 0 < doc["error_vs_float64"]["rel_l2_median"] < 0.05


def test_simulate_real_attention_table(tmp_path):
    f = data_path("real", "minilm-L02-T256.npz")
    r = run_cli("simulate", *ENGINE_TEST, "--set", "head_dim=32", "--npz", f, "--heads", "3", "--tokens", "20",
                "--sim", "icarus", "--waves", tmp_path / "w.fst")
    assert r.returncode == 0, r.stderr
    assert "bit-exact: outputs and counters equal golden" in r.stdout and "vs float64" in r.stdout
    assert "0 of 640 elements differ" in r.stdout
    assert (tmp_path / "w.fst").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["--stall", "1.5"], "--stall must be a probability in [0, 1), not 1.5"),
    (["--queries", "10", "--keys", "5"], "workload 'random': queries 10 cannot exceed keys 5"),
    (["--kv-heads", "0"], "workload 'random': kv_heads must be a positive integer, not 0"),
    (["--heads", "x"], "--heads must be a positive integer for random data, not 'x'"),
    (["--keys", "60"], "workload has 60 keys but the KV buffer holds 48 (kv_depth 48); use --set kv_depth=60"),
    (["--heads", "3", "--kv-heads", "2"], "workload 'random': heads 3 must be a multiple of kv_heads 2"),
    (["--set", "ip_bits_per_cycle=8"], "the engine needs the OP-CIM to keep up"),
    (["--npz", "missing.npz"], "no such file"),
    (["--waves", "w.txt"], "--waves 'w.txt': verilator writes VCD traces; name a .vcd file"),
])
def test_simulate_user_errors(tmp_path, args, message):
    r = run_cli("simulate", *ENGINE_TEST, *args)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr and message in r.stderr
    assert r.stderr.startswith("fusioncim: error:") and r.stderr.count("\n") == 1


def test_area_command_with_liberty(tmp_path):
    lib = Path(__file__).with_name("data") / "toy.lib"
    args = ("area", "ip_cim", "--config", "test", "--set", "rows=1", "--set", "head_dim=4")
    r = run_cli(*args, "--liberty", lib, "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["area_um2"] > 0 and doc["lib_cells"]["DFF"] == doc["flip_flops"]
    text = run_cli(*args, "--liberty", lib, "-q")
    assert f"mapped to {lib.resolve()}" in text.stdout and "Yosys: result from the cache" in text.stdout
    assert "no clock estimate: the liberty file gives no delays" in text.stdout
    bad = run_cli(*args, "--liberty", tmp_path / "none.lib")
    assert bad.returncode == 2 and bad.stdout == "" and "is not a file" in bad.stderr
