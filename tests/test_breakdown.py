"""Where the OP-CIM column's and IP-CIM row's area goes (synth/breakdown.py): each function alone, beside the cell.

Flip-flop counts are by hand from the config; every part is synthesised, and only the storage parts hold
registers, as many as the whole cells.
"""

import json
import subprocess
import sys

from fusioncim.core.config import EngineConfig
from fusioncim.synth.area import GENERIC_LIBERTY
from fusioncim.synth.breakdown import breakdown, lines

SMALL = EngineConfig(rows=2, head_dim=4, max_seq_len=64, kv_depth=16, sink_keys=2, diag_window=4)


def test_parts_and_their_flip_flops():
    c = SMALL
    r = breakdown(c)
    assert set(r) == {"op_column", "ip_row"}
    want_ff = {"op_column": c.rows * c.acc_width * (2 if c.double_buffer else 1),          # accumulators and bank
               "ip_row": c.head_dim * c.data_bits + c.score_bits - c.ip_bits_per_cycle}    # Q, the read part of acc
    for cell, res in r.items():
        assert res["whole"]["flip_flops"] == want_ff[cell]
        storage = [p for p in res["parts"] if p["function"].startswith("storage")]
        assert len(storage) == 1 and storage[0]["flip_flops"] == want_ff[cell]
        for p in res["parts"]:
            assert p["area_um2"] > 0 and p["share"] == round(p["area_um2"] / res["whole"]["area_um2"], 4)
            if p is not storage[0]:
                assert p["flip_flops"] == 0, p
        total = sum(p["area_um2"] for p in res["parts"])
        assert res["rest_um2"] == round(res["whole"]["area_um2"] - total, 1)
        assert abs(res["rest_um2"]) < 0.25 * res["whole"]["area_um2"]        # the parts are the cell's functions
    names = {p["function"] for p in r["op_column"]["parts"]}
    assert {"multiply (p digit x v)", "accumulate (add)", "rescale shift (O >> shift)"} <= names
    text = "\n".join(lines(r, {"op_column": {"instances": 4}}))
    assert "op_column (4 instances)" in text and all(n in text for n in names)


def test_cli_breakdown_is_for_the_engine_and_the_bundled_library(tmp_path):
    def fc(*args):
        return subprocess.run([sys.executable, "-m", "fusioncim", "area", *args], capture_output=True, text=True,
                              timeout=600)
    r = fc("softmax", "--config", "test", "--breakdown")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "--breakdown is for the engine" in r.stderr
    lib = tmp_path / "x.lib"
    lib.write_text(GENERIC_LIBERTY.read_text())
    r = fc("engine", "--config", "test", "--breakdown", "--liberty", lib)
    assert r.returncode == 2 and "bundled library only" in r.stderr and r.stderr.count("\n") == 1
    # SMALL, as tests/test_engine_area.py and the test above synthesise it: the results come from the run's cache.
    sets = [x for k in ("rows", "head_dim", "max_seq_len", "kv_depth", "sink_keys", "diag_window")
            for x in ("--set", f"{k}={getattr(SMALL, k)}")]
    r = fc("engine", "--config", "default", *sets, "--breakdown", "--json", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["breakdown"]) == {"op_column", "ip_row"}
    assert doc["breakdown"]["op_column"]["whole"]["flip_flops"] * doc["modules"]["op_column"]["instances"] <= doc["flip_flops"]
