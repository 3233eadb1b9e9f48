"""fusioncim ports: the port and payload tables against the generated Verilog, the packing, and the docs."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusioncim.core import config, configfile
from fusioncim.ip import generate, ports
from fusioncim.hw.common import decode, encode

ROOT = Path(__file__).resolve().parents[1]
TEST = configfile.load("test", [])
# Another small config, odd sizes, that makes every block (tests/test_hierarchy.py's).
OTHER = config.EngineConfig(rows=3, head_dim=4, softmax_lanes=2, double_buffer=False, key_order="sequential",
                            max_seq_len=64, kv_depth=8, sink_keys=2, diag_window=4, ip_bits_per_cycle=1)


def verilog_ports(text, module):
    """{name: (direction, width)} from the port declarations of ``module`` in Yosys's Verilog."""
    body = re.search(rf"^module {module}\(.*?^endmodule", text, flags=re.S | re.M).group(0)
    found = {}
    for direction, hi, name in re.findall(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?(\w+);", body,
                                          flags=re.M):
        found[name] = (direction, int(hi) + 1 if hi else 1)
    return found


@pytest.mark.parametrize("cfg", [TEST, OTHER], ids=["test", "other"])
@pytest.mark.parametrize("block", sorted(generate.BLOCKS))
def test_ports_are_the_verilog_ports(block, cfg):
    table = ports.ports(block, cfg)
    assert {p.name: (p.direction, p.width) for p in table} == verilog_ports(generate.verilog_text(block, cfg), block)
    assert len({p.name for p in table}) == len(table)


@pytest.mark.parametrize("block", sorted(generate.BLOCKS))
def test_fields_tile_each_payload(block):
    # The fields of a payload cover its bits exactly once, in order, from bit 0.
    for p in ports.ports(block, TEST):
        if p.fields:
            at = 0
            for f in p.fields:
                assert f.offset == at and f.width >= 1 and f.count >= 1, (p.name, f)
                at += f.bits
            assert at == p.width, p.name


def _payload_layouts(block, cfg):
    comp = generate.build(block, cfg)
    comp._MustUse__silence = True
    return {"__".join(path): member.shape for path, member, _ in comp.signature.flatten(comp)
            if path[-1] == "payload"}


@pytest.mark.parametrize("block", sorted(generate.BLOCKS))
def test_fields_unpack_what_the_hardware_packs(block):
    # Random words decoded by the hardware's own layout (hw.common.decode; the host and the testbenches
    # pack with the same layouts) are read back field by field, element by element, at the table's offsets.
    rng = np.random.default_rng(7)
    table = {p.name: p for p in ports.ports(block, TEST)}
    for name, layout in _payload_layouts(block, TEST).items():
        for _ in range(5):
            word = int.from_bytes(rng.bytes(128), "little") & ((1 << table[name].width) - 1)
            value = decode(layout, word)
            assert encode(layout, value) == word
            for f in table[name].fields:
                for i in range(f.count):
                    raw = (word >> (f.offset + i * f.width)) & ((1 << f.width) - 1)
                    if f.signed and raw >> (f.width - 1):
                        raw -= 1 << f.width
                    assert raw == _get(value, f.name, i if f.count > 1 else None), (name, f.name, i)


def _get(value, dotted, index):
    for part in re.findall(r"\w+|\[\d+\]", dotted):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value if index is None else value[index]


def test_a_hand_packed_command():
    # The test preset's cmd by hand: n_keys 10 bits (2 x 256 keys needs 10), n_rows 4 bits (0..4 plus an
    # oversized value), causal, pattern: n_keys=300, n_rows=3, causal=1, pattern=0.
    fields = {f.name: f for f in next(p for p in ports.ports("engine", TEST) if p.name == "cmd__payload").fields}
    assert [(f.offset, f.width) for f in fields.values()] == [(0, 10), (10, 4), (14, 1), (15, 1)]
    from fusioncim.hw.controller import cmd_layout
    assert encode(cmd_layout(TEST), {"n_keys": 300, "n_rows": 3, "causal": 1, "pattern": 0}) == \
        300 | (3 << 10) | (1 << 14)


def test_docs_tables_are_the_commands_output():
    # Every block of docs/*.md between "<!-- generated: fusioncim ARGS -->" and "<!-- end generated -->"
    # is exactly what `fusioncim ARGS` prints now.
    found = 0
    for md in sorted((ROOT / "docs").glob("*.md")):
        for args, body in re.findall(r"<!-- generated: fusioncim (.*?) -->\n(.*?)<!-- end generated -->",
                                     md.read_text(), flags=re.S):
            r = subprocess.run([sys.executable, "-m", "fusioncim", *shlex.split(args)], capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            assert body == r.stdout, f"{md.name}: `fusioncim {args}` prints something else; regenerate it"
            found += 1
    assert found >= 1


def test_ports_cli_json_and_errors():
    r = subprocess.run([sys.executable, "-m", "fusioncim", "ports", "softmax", "--config", "test", "--json"],
                       capture_output=True, text=True, timeout=120)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["block"] == "softmax" and doc["config"] == TEST.to_dict()
    assert [p["name"] for p in doc["ports"]] == [p.name for p in ports.ports("softmax", TEST)]
    r = subprocess.run([sys.executable, "-m", "fusioncim", "ports", "engine", "--set", "rows=0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "rows must be from 1 to 1024, not 0" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""
