"""The register map: SystemRDL compiled by systemrdl-compiler against the table the hardware is built from;
the C header (peakrdl-cheader) compiles, with every offset where the table puts it; the HTML is written;
the C example of docs/integration.md compiles against the header."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncim.hw import regmap
from fusioncim.core.config import PRESETS
from fusioncim.core.counters import ENGINE_COUNTERS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"test": PRESETS["test"], "default": PRESETS["default"]}
CC = shutil.which("cc") or shutil.which("gcc")


def _access(field):
    """The table's access kind of a compiled RDL field."""
    from systemrdl.rdltypes import OnWriteType
    sw_r, sw_w = field.is_sw_readable, field.is_sw_writable
    if field.get_property("singlepulse"):
        return "w1p"
    if field.get_property("onwrite") == OnWriteType.woclr:
        return "w1c"
    if sw_w:
        return "rw"
    assert sw_r
    return "ro" if field.is_hw_writable else "const"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rdl_is_the_hardware_table(name, tmp_path):
    cfg = CONFIGS[name]
    path = tmp_path / "map.rdl"
    path.write_text(regmap.rdl(cfg))
    root = regmap.compile_rdl(path)
    compiled = {r.inst_name: r for r in root.top.registers()}
    table = regmap.registers(cfg)
    assert list(compiled) == [r.name for r in table]
    for r in table:
        node = compiled[r.name]
        assert node.absolute_address == r.offset and node.size == 4, r.name
        fields = list(node.fields())
        assert [(f.inst_name, f.lsb, f.width, _access(f)) for f in fields] == \
            [(f.name, f.lsb, f.width, f.access) for f in r.fields], r.name
        for f, want in zip(fields, r.fields):
            assert (f.get_property("reset") or 0) == want.reset, (r.name, want.name)
    # The access rules travel with the map (the header's and the HTML's description come from here).
    assert root.top.get_property("desc") == regmap.ACCESS_RULES and "wstrb byte by byte" in regmap.ACCESS_RULES


def test_table_rules():
    # Offsets word-aligned and unique, fields inside 32 bits and not overlapping, every counter mapped.
    for cfg in CONFIGS.values():
        regs = regmap.registers(cfg)
        offsets = [r.offset for r in regs]
        assert offsets == sorted(set(offsets)) and all(o % 4 == 0 for o in offsets)
        for r in regs:
            used = 0
            for f in r.fields:
                assert f.access in regmap.ACCESS and 0 <= f.lsb and f.lsb + f.width <= 32
                assert used & f.mask == 0, (r.name, f.name)
                used |= f.mask
        names = {r.name for r in regs}
        for i, counter in enumerate(ENGINE_COUNTERS):
            assert {f"{counter.upper()}_LO", f"{counter.upper()}_HI"} <= names
        assert regmap.by_name(cfg)["ID"].reset == int.from_bytes(b"FCIM", "big")
        assert regmap.by_name(cfg)["KV_DEPTH"].reset == cfg.kv_keys


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_c_header_and_example_compile(tmp_path):
    cfg = CONFIGS["test"]
    written = regmap.write_outputs(cfg, rdl_path=tmp_path / "m.rdl", c_path=tmp_path / "fusioncim_regs.h",
                                   html_dir=tmp_path / "html")
    assert written == [tmp_path / "m.rdl", tmp_path / "fusioncim_regs.h", tmp_path / "html"]
    assert (tmp_path / "html" / "index.html").is_file()
    # Every register at the table's offset in the header's struct, checked by the compiler.
    checks = "".join(f"_Static_assert(offsetof(fusioncim_engine_t, {r.name}) == {r.offset}, \"{r.name}\");\n"
                     for r in regmap.registers(cfg))
    (tmp_path / "offsets.c").write_text(f'#include <stddef.h>\n#include "fusioncim_regs.h"\n{checks}')
    # The C example of docs/integration.md, as written there.
    example = re.search(r"```c\n(.*?)```", (ROOT / "docs" / "integration.md").read_text(), flags=re.S).group(1)
    (tmp_path / "example.c").write_text(example)
    for src in ("offsets.c", "example.c"):
        r = subprocess.run([CC, "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "-I", str(tmp_path),
                            str(tmp_path / src)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr


def test_regmap_cli(tmp_path):
    def fc(*args):
        return subprocess.run([sys.executable, "-m", "fusioncim", "regmap", *map(str, args)], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
    r = fc("--config", "test")
    assert r.returncode == 0 and r.stdout == regmap.markdown(CONFIGS["test"])
    r = fc("--rdl", "a.rdl", "--c", "a.h")
    assert r.returncode == 0 and r.stdout.split() == ["a.rdl", "a.h"]
    assert (tmp_path / "a.rdl").read_text() == regmap.rdl(PRESETS["default"])
    r = fc("--html", tmp_path / "missing" / "deeper")
    assert r.returncode == 2 and "does not exist (it is not created)" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "missing").exists()


def test_changelog_records_this_maps_version_and_digest():
    # The newest CHANGELOG.md entry is this map: its version is REGMAP_VERSION (which the register reads)
    # and its digest this map's; each entry's digest differs from the others (a change got a new version).
    import re
    text = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## REGMAP_VERSION (\d+).*?\n\nmap digest: ([0-9a-f]{12})", text, re.M)
    assert entries, "no versioned entries in CHANGELOG.md"
    (version, digest), *older = entries
    cfg = CONFIGS["test"]
    assert int(version) == regmap.REGMAP_VERSION
    assert regmap.by_name(cfg)["REGMAP_VERSION"].reset == regmap.REGMAP_VERSION
    assert digest == regmap.map_digest(PRESETS["test"]), "the map changed: raise REGMAP_VERSION, add an entry"
    assert [int(v) for v, _ in entries] == list(range(int(version), 0, -1))
    assert len({d for _, d in entries}) == len(entries)


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_two_prefixed_headers_compile_together(tmp_path):
    # Two configs' headers, each with its own prefix and file name: distinct structs, macros and include
    # guards, so one driver can include both.
    for prefix, sets in (("a_", []), ("b_", ["--set", "rows=2"])):
        r = subprocess.run([sys.executable, "-m", "fusioncim", "regmap", "--config", "test", *sets, "--prefix", prefix,
                            "--c", str(tmp_path / f"{prefix}regs.h"), "-q"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        text = (tmp_path / f"{prefix}regs.h").read_text()
        assert f"#ifndef {prefix.upper()}REGS_H" in text and f"}} {prefix}fusioncim_engine_t;" in text
    (tmp_path / "both.c").write_text('#include <stdint.h>\n#include "a_regs.h"\n#include "b_regs.h"\n'
                                     "int rows(volatile a_fusioncim_engine_t *a, volatile b_fusioncim_engine_t *b)\n"
                                     "{ return (int)(a->ROWS + b->ROWS); }\n")
    r = subprocess.run([CC, "-std=c11", "-Wall", "-Werror", "-fsyntax-only", "both.c"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
