"""``fusioncim cache``: size by kind, cleaning, builds in use left alone, and the size cap (issue 31, item 8)."""

import json
import os
import subprocess
import sys
import time

import pytest

from fusioncim.core import cache

DAY = 86400


def _cli(root, *args, env=None):
    env = {**os.environ, "FUSIONCIM_CACHE": str(root), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fusioncim", "cache", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def _file(path, size, age_days):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))


def _build(root, name, size, age_days):
    # A simulator build: a folder with its output and a stamp (written last: its time is the last use).
    d = root / "rtl" / name
    _file(d / "Vtop", size, age_days)
    _file(d / "fusioncim.stamp", 10, age_days)
    (root / "rtl" / f"{name}.lock").touch()
    return d


@pytest.fixture
def filled(tmp_path):
    root = tmp_path / "cache"
    _file(root / "verilog" / "engine-old.v", 1000, 10)
    _file(root / "verilog" / "engine-new.v", 2000, 0.5)
    _build(root, "engine-old-verilator", 5000, 9)
    _build(root, "engine-new-verilator", 7000, 1)
    _file(root / "area" / "engine-a.json", 300, 30)
    _file(root / "ccache" / "a" / "b.o", 400, 3)
    _file(root / "demo" / "run.log", 50, 5)
    return root


def test_show_gives_every_kind_its_entries_and_bytes(filled):
    out = _cli(filled, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    got = {k: (u["entries"], u["bytes"]) for k, u in doc["kinds"].items()}
    assert got == {"verilog": (2, 3000), "rtl": (2, 5010 + 7010), "area": (1, 300), "ccache": (1, 400),
                   "demo": (1, 50)}
    assert doc["total_bytes"] == 3000 + 12020 + 300 + 400 + 50
    assert doc["limit_bytes"] == cache.DEFAULT_LIMIT_GB * 1e9
    text = _cli(filled)
    assert text.returncode == 0 and "15.8 kB in all" in text.stdout
    assert all(f"  {kind} " in text.stdout for kind in cache.KINDS)


def test_clean_older_than_removes_only_what_was_unused_that_long(filled):
    out = _cli(filled, "clean", "--older-than", "4")
    assert out.returncode == 0, out.stderr
    # The old Verilog (10 days), the old build (9), the area result (30) and the demo (5); not ccache (3).
    assert out.stdout.startswith(f"removed 4 entries ({(1000 + 5010 + 300 + 50) / 1e3:.1f} kB)")
    left = sorted(p.relative_to(filled).as_posix() for p in filled.rglob("*") if p.is_file())
    assert left == ["ccache/a/b.o", "rtl/engine-new-verilator.lock", "rtl/engine-new-verilator/Vtop",
                    "rtl/engine-new-verilator/fusioncim.stamp", "rtl/engine-old-verilator.lock",
                    "verilog/engine-new.v"]


def test_clean_all_of_one_kind_and_a_build_in_use_is_left(filled):
    busy = filled / "rtl" / "engine-new-verilator.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_SH); print('held', flush=True); time.sleep(60)",
                               str(busy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = _cli(filled, "clean", "--all", "--kind", "rtl")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["removed 1 entries (5.0 kB) from " + str(filled) + " (rtl)",
                                       "left 1 simulator builds another process is using"]
    assert (filled / "rtl" / "engine-new-verilator" / "Vtop").exists()
    assert not (filled / "rtl" / "engine-old-verilator").exists()
    assert (filled / "verilog" / "engine-old.v").exists()               # another kind: untouched


@pytest.mark.parametrize("args,env,message", [
    (["clean"], None, "exactly one of --all or --older-than"),
    (["clean", "--all", "--older-than", "2"], None, "exactly one of --all or --older-than"),
    (["clean", "--older-than", "-1"], None, "--older-than -1 must be a number of days"),
    (["--all"], None, "go with `fusioncim cache clean`"),
    ([], {"FUSIONCIM_CACHE_LIMIT_GB": "lots"}, "FUSIONCIM_CACHE_LIMIT_GB 'lots' is not a number"),
    ([], {"FUSIONCIM_CACHE_LIMIT_GB": "-3"}, "must be 0 (no cap) or more"),
])
def test_bad_requests_are_one_line_and_change_nothing(filled, args, env, message):
    before = sorted((p, p.stat().st_mtime) for p in filled.rglob("*"))
    out = _cli(filled, *args, env=env)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert message in out.stderr and "Traceback" not in out.stderr
    assert sorted((p, p.stat().st_mtime) for p in filled.rglob("*")) == before


def test_the_cap_evicts_least_recently_used_first(filled):
    # 15,770 bytes in all; a cap of 10,000 needs the oldest evictable entries gone: the area result
    # (30 days), the old Verilog (10), the old build (9): then 9,460 remain. ccache and demo are not evicted.
    gone = cache.evict(root=filled, limit=10_000)
    assert [e.path.name for e in gone] == ["engine-a.json", "engine-old.v", "engine-old-verilator"]
    # Recently used entries and the one to keep are never evicted, however small the cap.
    _build(filled, "engine-now-verilator", 100, 0)
    gone = cache.evict(root=filled, limit=1, keep=filled / "rtl" / "engine-new-verilator")
    assert [e.path.name for e in gone] == ["engine-new.v"]    # not the build to keep, nor the one just used
    assert (filled / "rtl" / "engine-now-verilator").exists()


def test_a_build_reused_is_marked_used_and_a_new_one_enforces_the_cap(tmp_path, monkeypatch):
    from fusioncim.sim import rtlsim
    monkeypatch.setenv("FUSIONCIM_CACHE", str(tmp_path))
    monkeypatch.setenv("FUSIONCIM_CACHE_LIMIT_GB", str(3000 / 1e9))
    old = _build(tmp_path, "engine-a-verilator", 2000, 20)
    (old / "fusioncim.stamp").write_text("digest-a")
    os.utime(old / "fusioncim.stamp", (time.time() - 20 * DAY,) * 2)
    rtlsim.cached_build(old, "digest-a", lambda out: pytest.fail("rebuilt"))
    assert time.time() - (old / "fusioncim.stamp").stat().st_mtime < 60          # reused: used now
    os.utime(old / "fusioncim.stamp", (time.time() - 20 * DAY,) * 2)
    new = tmp_path / "rtl" / "engine-b-verilator"
    rtlsim.cached_build(new, "digest-b", lambda out: (out / "Vtop").write_bytes(b"y" * 2000))
    # 4,000+ bytes over a 3,000-byte cap: the old build goes, the new one stays.
    assert not old.exists() and (new / "Vtop").exists()
