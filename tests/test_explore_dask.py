"""fusioncim explore on a Dask cluster: same results as the local pool, a killed worker, resume, bad addresses.

Needs ``distributed`` (the cluster extra; in the dev extra for the regression).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusioncim.perf import explore, report

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
SWEEP = {"rows": ["4", "8"], "tiers": ["true", "false"]}           # four points on the test preset
ACC = report.REAL / "smollm2-L00-T256.npz"
VARIES = ("seconds", "host")                                        # what may differ between two runs of a point


def _run(out, sweep=SWEEP, **kw):
    # Rates measured on one file (not the six shipped ones) keep each point to about a second.
    return explore.run("test", sweep, out, workload="llama3-8b-prefill-2048", accuracy_file=ACC, area=False,
                       progress=False, patterns=[ACC], **kw)


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


def _same(a, b):
    return {k: v for k, v in a.items() if k not in VARIES} == {k: v for k, v in b.items() if k not in VARIES}


def test_dask_local_equals_the_process_pool(tmp_path):
    local, s1 = _run(tmp_path / "pool", jobs=2)
    dask, s2 = _run(tmp_path / "dask", dask="local:2")
    assert s1 == s2 == {"points": 4, "skipped": 0, "done": 4, "failed": 0}
    assert [r["id"] for r in local] == [r["id"] for r in dask]
    for a, b in zip(local, dask):
        assert "error" not in a and "failed" not in a
        assert _same(a, b), (a["sets"], a, b)
    assert a["versions"]["fusioncim"] == explore.__version__ and a["versions"]["numpy"]
    # results.jsonl holds each point once, in completion order
    assert sorted(r["id"] for r in _lines(tmp_path / "dask" / "results.jsonl")) == sorted(r["id"] for r in dask)


def test_a_killed_worker_loses_nothing(tmp_path):
    # The first point to start kills its worker process; Dask reruns it on another worker.
    marker = tmp_path / "killed"

    def die_once(job):
        import os as _os
        try:
            fd = _os.open(marker, _os.O_CREAT | _os.O_EXCL)
        except FileExistsError:
            return explore.evaluate_point(job)
        _os.close(fd)
        _os._exit(1)

    records, summary = _run(tmp_path / "out", {"rows": ["4", "8"]}, dask="local:2", evaluate=die_once)
    assert marker.exists()
    assert summary == {"points": 2, "skipped": 0, "done": 2, "failed": 0}
    lines = _lines(tmp_path / "out" / "results.jsonl")
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in records)      # each point exactly once
    assert len(lines) == 2 and not (tmp_path / "out" / "failed.jsonl").exists()


def test_a_failing_point_is_recorded_and_the_rest_continue(tmp_path):
    def fail_rows8(job):
        if "rows=8" in job[1]:
            raise RuntimeError("this worker lacks something")
        return explore.evaluate_point(job)

    sweep = {"rows": ["4", "8"]}
    records, summary = _run(tmp_path / "out", sweep, dask="local:2", evaluate=fail_rows8)
    assert summary == {"points": 2, "skipped": 0, "done": 1, "failed": 1}
    failed = [r for r in records if "failed" in r]
    assert [r["sets"] for r in failed] == [["rows=8"]]
    assert failed[0]["failed"] == "RuntimeError: this worker lacks something"
    assert [r["sets"] for r in _lines(tmp_path / "out" / "results.jsonl")] == [["rows=4"]]
    assert [r["sets"] for r in _lines(tmp_path / "out" / "failed.jsonl")] == [["rows=8"]]
    # run again: the finished point is skipped, the failed one runs
    again, summary = _run(tmp_path / "out", sweep, dask="local:2")
    assert summary == {"points": 2, "skipped": 1, "done": 1, "failed": 0}
    assert all("failed" not in r for r in again)


def test_a_worker_with_another_version_fails_its_points():
    with pytest.raises(RuntimeError, match="this worker has fusioncim .*, the sweep's client 0.0.0"):
        explore.evaluate_point(("test", [], {"version": "0.0.0"}, "some-id"))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "fusioncim", "explore", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


POINTS = 8
ARGS = ["--config", "test", "--no-area", "--sweep", "rows=2,3,4,5,6,7,8,9", "--dask", "local:1",
        "--accuracy-file", ACC, "--patterns", ACC]


def test_interrupt_and_resume(tmp_path):
    out = tmp_path / "ex"
    p = _cli(*ARGS, "--out", out)
    results = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and results.read_text().count("\n") >= 1):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no point finished in 120 s"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    before = results.read_text().splitlines()
    # Whenever the interrupt lands (after the first point; the others may or may not have finished: the
    # test does not depend on timing), the file holds whole records only, and a second run computes
    # exactly the points that are missing.
    assert 1 <= len(before) <= POINTS and all(json.loads(x)["id"] for x in before)
    if len(before) < POINTS:
        assert p.returncode == 130, "an interrupted sweep exits 130"
    q = _cli(*ARGS, "--out", out)
    stdout, stderr = q.communicate(timeout=300)
    assert q.returncode == 0, stderr
    assert f"{len(before)} of {POINTS} points already in" in stderr
    assert f"{POINTS - len(before)} done, 0 failed, {len(before)} skipped" in stderr
    after = results.read_text().splitlines()
    assert after[:len(before)] == before                      # finished points were not recomputed
    assert len(after) == POINTS and len({json.loads(x)["id"] for x in after}) == POINTS


# The connect limit at 1 s (FUSIONCIM_DASK_TIMEOUT) where a test waits it out; 5 s, the default, elsewhere.
FAST = {**os.environ, "FUSIONCIM_DASK_TIMEOUT": "1"}


def test_unreachable_scheduler(tmp_path):
    out = tmp_path / "ex"
    t0 = time.monotonic()
    p = _cli("--config", "test", "--no-area", "--sweep", "rows=4,8", "--dask", "tcp://127.0.0.1:9", "--out", out,
             env=FAST)
    stdout, stderr = p.communicate(timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 2
    assert stderr.startswith("fusioncim: error: --dask tcp://127.0.0.1:9: no Dask scheduler answered within 1 s")
    assert stderr.count("\n") == 1 and stdout == ""
    assert took < 1 + 5, took                                   # the connect limit plus start-up
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_bad_connect_limit_is_one_line(tmp_path, value):
    p = _cli("--config", "test", "--no-area", "--sweep", "rows=4", "--dask", "tcp://127.0.0.1:9", "--out",
             tmp_path / "ex", env={**os.environ, "FUSIONCIM_DASK_TIMEOUT": value})
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and stdout == "" and stderr.count("\n") == 1
    assert f"FUSIONCIM_DASK_TIMEOUT must be a positive number of seconds, not {value!r}" in stderr
    assert not (tmp_path / "ex").exists()


@pytest.mark.parametrize("spec", ["local:0", "local", "cluster:2", "tcp://host", "http://h:1"])
def test_bad_dask_address(tmp_path, spec):
    p = _cli("--config", "test", "--no-area", "--dask", spec, "--out", tmp_path / "ex")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and f"--dask {spec!r} must be local:N" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "ex").exists()


def test_bad_area_head_dim(tmp_path):
    p = _cli("--config", "test", "--area-head-dim", "0", "--out", tmp_path / "ex")
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2 and "--area-head-dim must be a positive integer, not 0" in stderr
    assert not (tmp_path / "ex").exists()


def _server(handler):
    """A TCP server on a free local port running ``handler(conn)`` per connection; returns its address."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{srv.getsockname()[1]}"


def _silent(conn):
    time.sleep(30)                      # accepts, says nothing: a client alone waits on the handshake


def _http(conn):
    conn.recv(4096)                     # what a web server (the dashboard's port) answers to Dask's bytes
    conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>bad request</html>")
    conn.close()


def _garbage(conn):
    conn.sendall(b"\xff" * 64)          # a frame length Dask would try to allocate
    time.sleep(1)
    conn.close()


@pytest.mark.parametrize("handler, message, limit", [
    (_silent, "no Dask scheduler answered within 1 s (something accepted the connection but did not speak "
              "Dask's protocol)", 1),
    (_http, "no Dask scheduler answered within 5 s (", 5),
    (_garbage, "no Dask scheduler answered within 5 s (", 5),
])
def test_something_else_at_the_address_is_one_line_within_the_limit(tmp_path, handler, message, limit):
    # Issue 31, item 3: checked end to end (connection, handshake, identity), not just the TCP connect.
    address = _server(handler)
    out = tmp_path / "ex"
    t0 = time.monotonic()
    p = _cli("--config", "test", "--no-area", "--sweep", "rows=4", "--dask", address, "--out", out,
             env=FAST if limit == 1 else None)
    stdout, stderr = p.communicate(timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 2 and stdout == "" and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"fusioncim: error: --dask {address}: ") and message in stderr, stderr
    assert took < limit + 5, took                               # the limit plus start-up
    assert not out.exists()


def test_a_worker_address_is_not_a_scheduler(tmp_path):
    # A real Dask scheduler and worker in this process: the worker's address is refused by name, the
    # scheduler's runs the sweep.
    import distributed
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        worker = next(iter(cluster.scheduler_info["workers"]))
        p = _cli("--config", "test", "--no-area", "--sweep", "rows=4", "--dask", worker, "--out", tmp_path / "w")
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 2 and "is not a Dask scheduler (it says it is Worker)" in stderr, stderr
        assert not (tmp_path / "w").exists()
        p = _cli("--config", "test", "--no-area", "--sweep", "rows=4", "--dask", cluster.scheduler_address,
                 "--out", tmp_path / "s", "--patterns", ACC)
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        (rec,) = _lines(tmp_path / "s" / "results.jsonl")
        assert rec["sets"] == ["rows=4"] and "error" not in rec and "failed" not in rec
