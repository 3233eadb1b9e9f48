"""The Verilog cache: converted once per block, config and generator source; never served stale."""

import re
from pathlib import Path

import pytest

from fusioncim.ip import generate
from fusioncim.core.config import PRESETS

ROOT = Path(__file__).resolve().parent.parent


def test_sources_follow_the_imports():
    names = {f.relative_to(ROOT).as_posix() for f in generate.generator_sources()}
    assert {f"hw/{p.name}" for p in (ROOT / "hw").glob("*.py")} <= names
    # what hw imports from fusioncim, directly or not
    assert {"fusioncim/core/config.py", "fusioncim/core/counters.py", "fusioncim/core/lut.py", "fusioncim/core/schedule.py",
            "fusioncim/core/errors.py", "fusioncim/ip/generate.py"} <= names
    # and not the application around it
    assert not names & {"fusioncim/cli/", "fusioncim/sim/simulate.py", "fusioncim/sim/workload.py"}


def test_converted_once_then_read_back(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    cfg = PRESETS["test"]
    first = generate.verilog_text("ip_cim", cfg)
    assert generate.verilog_path("ip_cim", cfg).read_text() == first

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")
    monkeypatch.setattr(generate, "convert", no_conversion)
    assert generate.verilog_text("ip_cim", cfg) == first
    with pytest.raises(AssertionError, match="converted again"):
        generate.verilog_text("ip_cim", cfg.replace(rows=2))          # another config is not in the cache


def test_an_edit_to_the_generator_changes_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    cfg = PRESETS["test"]
    before = generate.verilog_path("engine", cfg)
    monkeypatch.setattr(generate, "generator_digest", lambda: "an edited generator")
    assert generate.verilog_path("engine", cfg) != before


def test_unwritable_cache_still_generates(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FUSIONCIM_CACHE", str(blocker))
    assert "module ip_cim" in generate.verilog_text("ip_cim", PRESETS["test"])


# -- the widest value: what Amaranth can build, checked before anything is generated (issue 31, item 4) --

def _groups(text):
    # One module's bit groups that Amaranth numbers in 16 bits: its inputs together (after the two
    # constant nets), its outputs together (an instance's outputs in its parent), and its widest wire.
    import re
    ins = sum(int(w or 1) for w in re.findall(r"^\s*wire (?:width (\d+) )?input \d+", text, re.M))
    outs = sum(int(w or 1) for w in re.findall(r"^\s*wire (?:width (\d+) )?output \d+", text, re.M))
    widest = max([int(w) for w in re.findall(r"^\s*wire width (\d+)", text, re.M)] + [1])
    return max(ins + 2, outs, widest)


@pytest.mark.parametrize("block,cfg", [
    ("engine_axi", PRESETS["test"]),
    ("op_cim", PRESETS["test"].replace(head_dim=4, rows=48)),           # rows-sized groups lead
    ("softmax", PRESETS["test"].replace(head_dim=4, rows=48)),
    ("ip_cim", PRESETS["test"].replace(data_bits=4, ip_bits_per_cycle=1, rows=2)),
], ids=["engine_axi-test", "op_cim-rows48", "softmax-rows48", "ip_cim-4bit"])
def test_widest_values_bound_every_module(block, cfg):
    from fusioncim.core.config import VALUE_SLACK_BITS
    bound = max(bits for bits, _ in cfg.widest_values(block)) + VALUE_SLACK_BITS
    measured = [_groups(m) for m in generate.rtlil_modules(block, cfg)]
    assert len(measured) > 1 and max(measured) <= bound, (bound, measured)
    # The bound is not idle: some module comes within the room left for control and counters.
    assert max(measured) > bound - 2 * VALUE_SLACK_BITS


def test_a_config_past_amaranths_limit_is_refused_before_generation(tmp_path):
    import subprocess
    import sys
    from fusioncim.core.config import MAX_VALUE_BITS, VALUE_SLACK_BITS, EngineConfig
    from fusioncim.core.errors import InputError
    # The OP-CIM's outputs: head_dim x (acc_width + out_bits), with 1,024 bits of room beside them.
    cfg = EngineConfig(head_dim=1024)
    per = cfg.acc_width + cfg.out_bits
    fits = (MAX_VALUE_BITS - VALUE_SLACK_BITS) // per
    EngineConfig(head_dim=fits).check_buildable("op_cim")
    with pytest.raises(InputError, match=rf"op_cim cannot be generated: the OP-CIM's outputs .* is "
                                         rf"{(fits + 1) * per:,} bits"):
        EngineConfig(head_dim=fits + 1).check_buildable("op_cim")
    EngineConfig(head_dim=fits + 1).check_buildable("softmax")        # no head_dim-wide value there
    # The new user's command: one line, exit 2, nothing written, at once.
    out = subprocess.run([sys.executable, "-m", "fusioncim", "generate", "engine", "--set", "head_dim=4096",
                          "--set", "max_seq_len=1048576", "--out", str(tmp_path / "e.v")],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "engine cannot be generated" in out.stderr and "65,536 bits" in out.stderr
    assert list(tmp_path.iterdir()) == []


# -- prefixes and scoped waivers: the IP beside other RTL (issue 32, item 3) --

USER_RTL = """module controller(input [7:0] a, output [3:0] y);
  assign y = a;
endmodule
module user_top(input aclk, input aresetn, output [3:0] y, output [7:0] z);
  controller u(.a(8'd3), .y(y));
  assign z = y;
  a_engine_axi ea(.aclk(aclk), .aresetn(aresetn));
  b_engine_axi eb(.aclk(aclk), .aresetn(aresetn));
endmodule
"""


def _lint(tmp_path, *files):
    import subprocess
    from fusioncim.sim import verilator
    env = verilator.setup_env(dict(__import__("os").environ))
    return subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", "user_top",
                           *map(str, files)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_two_prefixed_engines_lint_beside_users_rtl(tmp_path):
    import subprocess
    import sys
    configs = {"a_": ["--config", "test"], "b_": ["--config", "test", "--set", "rows=2"]}
    for prefix, args in configs.items():
        r = subprocess.run([sys.executable, "-m", "fusioncim", "generate", "engine", "--bus", "axi", *args,
                            "--prefix", prefix, "--out", f"{prefix}x.v", "-q"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr
    (tmp_path / "user.v").write_text(USER_RTL)        # a module named like one of ours, with a real warning
    r = _lint(tmp_path, "a_x.vlt", "b_x.vlt", "a_x.v", "b_x.v", "user.v")
    warnings = [line for line in r.stderr.splitlines() if line.startswith("%")]
    assert r.returncode == 0 and not any(w.startswith("%Error") for w in warnings), r.stderr
    # Every warning is the user's: the waivers cover the generated files and nothing else.
    assert warnings and all(": user.v:" in w for w in warnings), warnings
    assert any(w.startswith("%Warning-WIDTHTRUNC: user.v:2:") for w in warnings)
    # WIDTHEXPAND is waived whole in the generated files; in the user's it is still reported.
    assert any(w.startswith("%Warning-WIDTHEXPAND: user.v:6:") for w in warnings), warnings
    # Both configs' modules are there, each set under its own prefix.
    for prefix in configs:
        text = (tmp_path / f"{prefix}x.v").read_text()
        names = re.findall(r"^module \\\\?(\S+?)\s*\(", text, re.M)
        assert names and all(n.startswith(prefix) for n in names), names
        assert f'-file "{prefix}x.v"' in (tmp_path / f"{prefix}x.vlt").read_text()
    # Without prefixes the two designs name the same modules: Verilator refuses the pair.
    for f in ("a_x.v", "b_x.v"):
        text = (tmp_path / f).read_text()
        (tmp_path / f"plain_{f}").write_text(re.sub(r"\b[ab]_(?=[a-z])", "", text))
    r = _lint(tmp_path, "plain_a_x.v", "plain_b_x.v", "user.v")
    assert "Duplicate declaration of module" in r.stderr


def test_a_bad_prefix_is_one_line(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "fusioncim", "generate", "engine", "--prefix", "9x-", "--out",
                        str(tmp_path / "e.v")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "prefix '9x-' must be letters" in r.stderr
    assert list(tmp_path.iterdir()) == []


# -- timing constraints beside the Verilog (issue 32, item 5) --

def _cli(tmp_path, *args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "fusioncim", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def test_sdc_with_a_given_period_names_the_tops_ports(tmp_path):
    r = _cli(tmp_path, "generate", "engine", "--bus", "axi", "--config", "test", "--prefix", "p_", "--sdc", "2.5",
             "--out", "e.v", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["e.v", "e.vlt", "e.sdc"]
    sdc = (tmp_path / "e.sdc").read_text()
    top = re.search(r"^module p_engine_axi\((.*?)\);", (tmp_path / "e.v").read_text(), re.M | re.S).group(1)
    assert "aclk" in top.replace(" ", "").split(",") and "aresetn" in top.replace(" ", "").split(",")
    assert "create_clock -name aclk -period 2.500 [get_ports aclk]" in sdc
    # 20% of 2.5 ns on each input and output path, the clock itself left out of the inputs.
    assert "set_input_delay 0.500 -clock aclk [all_inputs -no_clocks]" in sdc
    assert "set_output_delay 0.500 -clock aclk [all_outputs]" in sdc
    assert "p_engine_axi" in sdc.splitlines()[0]


def test_sdc_defaults_to_the_estimated_clock(tmp_path):
    import json
    r = _cli(tmp_path, "generate", "ip_cim", "--config", "test", "--sdc", "--out", "i.v", "-q")
    assert r.returncode == 0, r.stderr
    est = json.loads(_cli(tmp_path, "area", "ip_cim", "--config", "test", "--json", "-q").stdout)
    assert f"create_clock -name clk -period {est['clock_ns']:.3f} [get_ports clk]" in (tmp_path / "i.sdc").read_text()


@pytest.mark.parametrize("args,message", [
    (["--sdc", "0", "--out", "x.v"], "--sdc '0' must be a clock period in ns"),
    (["--sdc", "fast", "--out", "x.v"], "--sdc 'fast' must be a clock period in ns"),
    (["--sdc", "2", "--fusesoc", "core"], "--sdc goes with --out"),
    (["--sdc", "2", "--out", "x.sdc"], "cannot end in .vlt or .sdc"),
])
def test_sdc_refusals_are_one_line(tmp_path, args, message):
    r = _cli(tmp_path, "generate", "engine", "--config", "test", *args)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and message in r.stderr
    assert list(tmp_path.iterdir()) == []
