"""fusioncim report: the table's numbers hang together, and the CLI's outputs and errors."""

import dataclasses
import json
import subprocess
import sys

import pytest

from fusioncim.perf import dataflow as df, report
from fusioncim.core.config import PRESETS
from fusioncim.synth import energy as E


@pytest.fixture(scope="module")
def pats():
    return report.patterns(PRESETS["default"])


def test_report_is_consistent(pats):
    cfg = PRESETS["default"]
    wl = df.WORKLOADS["llama3-8b-prefill-512"]
    r = report.evaluate(cfg, wl, pats)
    V = r["variants"]
    assert set(V) == set(df.VARIANTS)
    # fusioncim's energy is its counters' events x the table, by hand from the parts
    wcfg = cfg.fit(wl.head_dim, wl.tokens)
    c = df.model_counters(wcfg, wl, pats["prefill"][0])
    en = E.event_energies(wcfg, E.load_table(), df.sizes_for(wcfg, wl, report.DEFAULT_BUFFERS))
    ev = df.events_from_counters(wcfg, c)
    onchip = sum(n * en[e] for e, n in ev.items() if e != "dram_bits")
    assert V["fusioncim"]["energy_pj"] == pytest.approx(onchip)
    assert V["fusioncim"]["events"] == ev
    s = r["summary"]
    assert s["energy_ratio"] == pytest.approx(V["baseline"]["energy_pj"] / V["fusioncim"]["energy_pj"])
    assert s["speed_ratio"] == pytest.approx(V["baseline"]["cycles"] / V["fusioncim"]["cycles"])
    assert s["tops_w"] == pytest.approx(df.ops(df.structure(wcfg, wl), wcfg) / onchip)
    assert sum(s["energy_share"].values()) == pytest.approx(1)
    assert set(s["energy_share"]) == set(report.IDEAS.values())
    # every idea saves energy on a prefill workload: switching any off costs more
    for v in report.IDEAS:
        assert V[v]["energy_pj"] > V["fusioncim"]["energy_pj"], v
    assert "model" in r["counters_source"]
    # Traffic: on-chip is the sum of the buffer and array events; off-chip the parts of the capacity model.
    for v in df.VARIANTS:
        assert V[v]["onchip_bits"] == sum(V[v]["events"].get(e, 0) for e in df.ONCHIP_EVENTS)
        assert V[v]["offchip_bits"] == sum(V[v]["offchip_parts"].values()) == V[v]["events"]["dram_bits"]
    assert s["offchip_reduction"] == pytest.approx(1 - V["fusioncim"]["offchip_bits"] / V["baseline"]["offchip_bits"])
    assert V["baseline"]["offchip_bits"] == V["baseline_pipelined"]["offchip_bits"]


def test_traffic_follows_the_buffers(pats):
    # Buffers that hold every working set: the baselines fetch what FusionCIM fetches (K, V once per
    # KV head, Q in, O out); a small S/P buffer sends the baselines' scores off chip, not FusionCIM's.
    cfg, wl = PRESETS["default"], df.WORKLOADS["llama3-8b-prefill-512"]
    roomy = report.evaluate(cfg, wl, pats, buffers=df.Buffers())
    tight = report.evaluate(cfg, wl, pats, buffers=df.Buffers(sp_bytes=16 << 10))
    R, T = roomy["variants"], tight["variants"]
    assert R["baseline"]["offchip_bits"] == R["fusioncim"]["offchip_bits"] and roomy["summary"]["offchip_reduction"] == 0
    assert T["fusioncim"]["offchip_bits"] == R["fusioncim"]["offchip_bits"]
    assert T["baseline"]["offchip_parts"]["sp_spill"] > 0 and tight["summary"]["offchip_reduction"] > 0
    assert T["baseline"]["onchip_bits"] == R["baseline"]["onchip_bits"]        # the buffer stages what spills


def test_counters_given_are_used_and_named(pats):
    cfg = PRESETS["default"]
    wl = df.WORKLOADS["llama3-8b-decode-2048"]
    wcfg = cfg.fit(wl.head_dim, wl.tokens)
    c = df.model_counters(wcfg, wl, pats["decode"][0])
    c.cycles += 1000
    r = report.evaluate(cfg, wl, pats, counters=c, counters_source="RTL (Verilator)")
    assert r["counters_source"] == "RTL (Verilator)"
    assert r["variants"]["fusioncim"]["cycles"] == c.cycles + wl.tokens * wl.kv_heads


def test_node_scaling_moves_tops_w(pats):
    cfg = PRESETS["default"]
    wl = df.WORKLOADS["llama3-8b-prefill-512"]
    a = report.evaluate(cfg, wl, pats)
    b = report.evaluate(cfg, wl, pats, node_nm=22.5)
    assert b["summary"]["tops_w"] == pytest.approx(2 * a["summary"]["tops_w"])
    assert b["summary"]["energy_ratio"] == pytest.approx(a["summary"]["energy_ratio"])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fusioncim", "report", *args], capture_output=True, text=True)


def test_cli_table_json_markdown():
    r = _cli("-q")
    assert r.returncode == 0 and r.stderr == ""
    assert "llama3-8b-prefill-2048" in r.stdout and "llama3-8b-decode-8192" in r.stdout
    assert "paper" in r.stdout and "3.86x" in r.stdout and "29.4" in r.stdout
    j = _cli("-q", "--json", "--workload", "llama3-70b-decode-2048")
    doc = json.loads(j.stdout)
    assert [d["workload"] for d in doc] == ["llama3-70b-decode-2048"]
    assert set(doc[0]["variants"]) == set(df.VARIANTS)
    m = _cli("-q", "--markdown", "--workload", "llama3-8b-prefill-512")
    assert "| cycles |" in m.stdout and "| claim | ours | paper |" in m.stdout


@pytest.mark.parametrize("args,message", [
    (["--workload", "gpt5"], "--workload 'gpt5' is not one of"),
    (["--node", "0"], "--node must be a positive number, not 0"),
    (["--vdd", "-1"], "--vdd must be a positive number, not -1"),
    (["--patterns", "/no/such.npz"], "--patterns file '/no/such.npz' does not exist"),
    (["--set", "rows=0"], "rows must be"),
])
def test_cli_errors(args, message):
    r = _cli("-q", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr and "Traceback" not in r.stderr


REAL = report.REAL


def test_rates_files_are_used_only_when_they_match(tmp_path, monkeypatch):
    cfg = PRESETS["default"]
    files = [REAL / "smollm2-L12-T256.npz"]
    pats = report.measure(cfg, files)
    report.save_rates(tmp_path / "r.json", cfg, files, pats, 256)
    doc, back = report.load_rates(tmp_path / "r.json")
    # The same rates, now saying where they came from.
    assert {m: tuple(dataclasses.replace(x, origin="") for x in pq) for m, pq in back.items()} == pats
    assert back["prefill"][0].origin == f"read from rates file {tmp_path / 'r.json'}"
    assert doc["tokens"] == 256 and doc["files"] == ["smollm2-L12-T256.npz"]
    assert "SmolLM2" in doc["sources"][0]
    monkeypatch.setattr(report, "RATES", tmp_path)
    # Doctor the file so it can be told apart from a fresh measurement.
    doc["rates"]["prefill"]["key_skip"] = 0.5
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert report.patterns(cfg, tokens=256)["prefill"][0].key_skip == 0.5
    # rate-neutral fields may differ; the others must match; the length must match
    assert report.patterns(cfg.replace(head_dim=128, ip_bits_per_cycle=4), tokens=256)["prefill"][0].key_skip == 0.5
    assert report.patterns(cfg.replace(skip_threshold=10), tokens=256)["prefill"][0].key_skip != 0.5
    assert report.patterns(cfg, tokens=512)["prefill"][0].key_skip != 0.5


def test_cli_patterns(tmp_path):
    out = tmp_path / "p.json"
    files = [str(REAL / "smollm2-L00-T256.npz"), str(REAL / "smollm2-L24-T256.npz")]
    r = subprocess.run([sys.executable, "-m", "fusioncim", "patterns", *files, "--out", str(out), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["tokens"] == 256 and set(doc["rates"]) == {"prefill", "decode"}
    ref = report.measure(PRESETS["default"], sorted(files))
    assert doc["rates"]["decode"] == ref["decode"][0].to_dict()


def test_cli_patterns_refuses_mixed_lengths(tmp_path):
    from fusioncim.accuracy import attnfile
    att = attnfile.load(REAL / "smollm2-L00-T256.npz")
    short = tmp_path / "short.npz"
    attnfile.save(short, attnfile.Attention(q=att.q[:, :64], k=att.k[:, :64], v=att.v[:, :64], causal=True))
    out = tmp_path / "p.json"
    r = subprocess.run([sys.executable, "-m", "fusioncim", "patterns", str(REAL / "smollm2-L00-T256.npz"),
                        str(short), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "must all have the same number of tokens" in r.stderr
    assert not out.exists() and "Traceback" not in r.stderr


def test_committed_rates_serve_the_default_config():
    # data/patterns (make patterns) was measured with the default config at each LLaMA-3 workload length,
    # so the report's LLaMA-3 figures rest on it, not on the 256-token fallback.
    cfg = PRESETS["default"]
    lengths = sorted({w.tokens for w in df.WORKLOADS.values()})
    for t in lengths:
        path = report.RATES / f"smollm2-T{t}.json"
        doc, pats = report.load_rates(path, stored=True)
        assert doc["tokens"] == t and len(doc["files"]) == 6
        assert report.patterns(cfg, tokens=t) == pats
        for mode in ("prefill", "decode"):
            p, q = pats[mode]
            assert 0 <= p.key_skip < 1 and p.fine + p.coarse + p.skipped == pytest.approx(1)
            assert q.key_skip == 0 and q.fine == pytest.approx(1)    # no pattern-aware softmax: all fine
