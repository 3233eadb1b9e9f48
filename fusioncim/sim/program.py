"""The host side of the engine: what it is sent, in which order, and the host-program file.

``golden`` computes what the engine must produce; this module prepares what
it is given. :func:`program` turns quantised heads into the host's command
sequence (per KV head: load the buffer, then one command and its Q rows per
tile); :func:`encode` turns that into stream beats, packed through the
engine's own payload layouts, each with its stall gap; :func:`write_program`
and :func:`read_program` are the one definition of the file that carries them
into a simulation (the cocotb testbench ``tb/engine_tests.py`` only drives
and compares what it reads).

Host-program file, format 1 (text, one record a line)::

    fusioncim-host-program 1
    config {EngineConfig as JSON}
    workload {"name": ..., "stall": 0.4, "exact_cycles": false, "counters": {golden's counters}}
    segment
    kv_wr GAP HEX        one line per beat, in stream order, per stream
    cmd GAP HEX
    q_in GAP HEX
    o_out GAP HEX        the expected output rows, in order
    ...                  more segments, more workloads

A segment is one KV-buffer load: the host waits until the engine is idle with
every expected row out, sends the ``kv_wr`` beats, then the ``cmd`` and
``q_in`` beats (two independent streams, sent concurrently). ``HEX`` is the
payload word in hexadecimal (the layouts of ``hw/engine.py``,
``hw/controller.py`` and ``hw/op_cim.py``). For a source, ``GAP`` is the
number of cycles the source stays idle before offering the beat; for
``o_out``, the number of cycles ``ready`` stays low before the row may be
taken (counted from the previous row's transfer). Counters are compared
exactly, ``cycles`` only when ``exact_cycles`` (no gaps), else it must not be
below golden's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError
from ..core.schedule import segments, tile_keys
from ..golden.engine import prepare

__all__ = ["Command", "Segment", "program", "HostWorkload", "encode", "write_program", "read_program",
           "SOURCES", "FORMAT", "axi_ops", "axi_from_float", "axi_outputs"]

FORMAT = 1
SOURCES = ("kv_wr", "cmd", "q_in")
_HEADER = "fusioncim-host-program"


@dataclass
class Command:
    """One engine command (a Q tile) as the host sends it (hw/engine.py ``cmd`` and ``q_in``)."""
    n_keys: int
    causal: bool
    pattern: bool
    q: np.ndarray          # [n_rows, d]
    pos: np.ndarray        # [n_rows]
    c_mant: np.ndarray     # [n_rows]
    c_shift: np.ndarray    # [n_rows]
    head: np.ndarray       # [n_rows]: where each output row belongs
    qrow: np.ndarray       # [n_rows]

    @property
    def n_rows(self):
        return len(self.pos)


@dataclass
class Segment:
    """The host's work for one KV head: load the buffer with ``k``/``v``, then run ``commands`` back to back."""
    kv_head: int
    k: np.ndarray          # [Lk, d]
    v: np.ndarray
    commands: list


def program(q, k, v, c_mant, c_shift, cfg, *, causal=None, mode="prefill", positions=1):
    """The command sequence that makes the engine compute ``golden.engine.run``'s result, tile for tile."""
    causal, q, k, v, cm, cs, qpos, tiles, _, _ = prepare(q, k, v, c_mant, c_shift, cfg, causal, mode, positions)
    Lk = k.shape[1]
    if Lk > cfg.kv_keys:
        raise InputError(f"{Lk} keys exceed the engine's KV buffer (kv_depth {cfg.kv_keys})")
    out = []
    for seg in segments(tiles):
        g = int(tiles.kv[seg[0]])
        cmds = []
        for t in seg:
            valid = tiles.qrow[t] >= 0
            qr, hh = tiles.qrow[t][valid], tiles.head[t][valid]
            pos = qpos[qr]
            n, _ = tile_keys(pos, np.ones(len(pos), bool), Lk, causal)
            cmds.append(Command(n_keys=n, causal=causal, pattern=cfg.key_order == "pattern", q=q[hh, qr],
                                pos=pos, c_mant=cm[hh, qr], c_shift=cs[hh, qr], head=hh, qrow=qr))
        out.append(Segment(kv_head=g, k=k[g], v=v[g], commands=cmds))
    return out


@dataclass
class HostWorkload:
    """One workload as the testbench reads it: beats per segment and stream, and golden's counters."""
    name: str
    stall: float
    counters: dict
    segments: list = field(default_factory=list)    # [{stream: [(gap, word), ...]}] with SOURCES and "o_out"
    where: list = field(default_factory=list)       # (head, qrow) of each output row in order (not in the file)

    @property
    def exact_cycles(self):
        return self.stall == 0


def encode(name, cfg, prog, expected, counters, *, stall=0.0, seed=0) -> HostWorkload:
    """Beats of a program (:func:`program`) with golden's output ``expected [H, Lq, d]`` and counters.

    With ``stall`` > 0 every beat gets a random gap (seeded by ``seed``): a
    source offers a beat in a cycle with probability ``1 - stall``, and the
    sink is ready in a cycle with the same probability.
    """
    from ..hw.common import encode as pack
    from ..hw.controller import cmd_layout, q_layout
    from ..hw.engine import kv_wr_layout
    from ..hw.op_cim import o_out_layout
    kv_l, cmd_l, q_l, o_l = kv_wr_layout(cfg), cmd_layout(cfg), q_layout(cfg), o_out_layout(cfg)
    rng = np.random.default_rng(seed)

    def gaps(n):
        if not stall:
            return [0] * n
        return (rng.geometric(1.0 - stall, n) - 1).tolist()

    def beats(layout, values):
        words = [pack(layout, v) for v in values]
        return list(zip(gaps(len(words)), words))

    w = HostWorkload(name=name, stall=float(stall), counters=dict(counters))
    for seg in prog:
        kv = [{"addr": i, "k": seg.k[i], "v": seg.v[i]} for i in range(len(seg.k))]
        cmds = [{"n_keys": c.n_keys, "n_rows": c.n_rows, "causal": int(c.causal), "pattern": int(c.pattern)}
                for c in seg.commands]
        rows = [{"q": c.q[r], "pos": c.pos[r], "c_mant": c.c_mant[r], "c_shift": c.c_shift[r]}
                for c in seg.commands for r in range(c.n_rows)]
        outs = [{"row": r, "o": expected[c.head[r], c.qrow[r]]} for c in seg.commands for r in range(c.n_rows)]
        w.where += [(int(c.head[r]), int(c.qrow[r])) for c in seg.commands for r in range(c.n_rows)]
        w.segments.append({"kv_wr": beats(kv_l, kv), "cmd": beats(cmd_l, cmds), "q_in": beats(q_l, rows),
                           "o_out": beats(o_l, outs)})
    return w


def write_program(path, cfg, workloads):
    """Write host workloads (:func:`encode`) as a host-program file (format in the module docstring)."""
    from ..core.files import atomic_write

    def write(f):
        f.write(f"{_HEADER} {FORMAT}\n")
        f.write(f"config {json.dumps(cfg.to_dict(), sort_keys=True)}\n")
        for w in workloads:
            head = {"name": w.name, "stall": w.stall, "exact_cycles": w.exact_cycles, "counters": w.counters}
            f.write(f"workload {json.dumps(head)}\n")
            for seg in w.segments:
                f.write("segment\n")
                for stream in (*SOURCES, "o_out"):
                    f.writelines(f"{stream} {gap} {word:x}\n" for gap, word in seg[stream])
    return atomic_write(path, write)


def read_program(path):
    """``(config dict, [HostWorkload])`` from a host-program file; ValueError names the line that is wrong."""
    config, workloads = None, []
    with open(path) as f:
        lines = iter(enumerate(f, 1))
        first = next(lines, (1, ""))[1].split()
        if first != [_HEADER, str(FORMAT)]:
            raise InputError(f"{path}: not a host program of format {FORMAT} (first line {' '.join(first)!r})")
        for no, line in lines:
            kind, _, rest = line.rstrip("\n").partition(" ")
            try:
                if kind == "config":
                    config = json.loads(rest)
                elif kind == "workload":
                    head = json.loads(rest)
                    workloads.append(HostWorkload(name=head["name"], stall=head["stall"], counters=head["counters"]))
                elif kind == "segment":
                    workloads[-1].segments.append({s: [] for s in (*SOURCES, "o_out")})
                elif kind in (*SOURCES, "o_out"):
                    gap, word = rest.split()
                    workloads[-1].segments[-1][kind].append((int(gap), int(word, 16)))
                elif kind:
                    raise InputError(f"unknown record {kind!r}")
            except (ValueError, KeyError, IndexError) as exc:
                raise InputError(f"{path}:{no}: {exc}") from None
    if config is None:
        raise InputError(f"{path}: no config record")
    return config, workloads


# -- the AXI top (hw/axi.py): the same sequence as register writes and stream frames -----------------

def axi_ops(prog, cfg):
    """The AXI top's transactions for a program (:func:`program`), in order, as JSON-ready lists:

    ``["wait", REG, FIELD]``      poll the register until the field reads 1
    ``["write", REG, VALUE]``     an AXI4-Lite write
    ``["stream", BUS, HEX]``      one AXI4-Stream frame (whole beats, tlast on the last); K/V frames
                                  must have left before the next command (their beats go straight in)
    ``["frame", "m_axis_o", N]``  the output frame this command returns: N rows

    Per segment: wait for ``STATUS.idle``, the K/V frame; per command ``CMD_KEYS``, wait for
    ``STATUS.cmd_ready``, ``CMD``, the Q frame. Payloads are packed by the engine's own layouts,
    ``CMD``'s fields placed by the register map (:mod:`fusioncim.hw.regmap`).
    """
    from ..hw.common import encode as pack
    from ..hw.regmap import cmd_word, stream_bytes, stream_layouts
    sb, layouts = stream_bytes(cfg), stream_layouts(cfg)

    def frame(layout, values, nbytes):
        return b"".join(pack(layout, x).to_bytes(nbytes, "little") for x in values).hex()

    ops = []
    for seg in prog:
        ops.append(["wait", "STATUS", "idle"])
        ops.append(["stream", "s_axis_kv", frame(layouts["kv"], [{"addr": i, "k": seg.k[i], "v": seg.v[i]}
                                                       for i in range(len(seg.k))], sb["kv"])])
        for c in seg.commands:
            ops.append(["write", "CMD_KEYS", int(c.n_keys)])
            ops.append(["wait", "STATUS", "cmd_ready"])
            ops.append(["write", "CMD", cmd_word(cfg, c.n_rows, c.causal, c.pattern)])
            rows = [{"q": c.q[r], "pos": c.pos[r], "c_mant": c.c_mant[r], "c_shift": c.c_shift[r]}
                    for r in range(c.n_rows)]
            ops.append(["stream", "s_axis_q", frame(layouts["q"], rows, sb["q"])])
            ops.append(["frame", "m_axis_o", c.n_rows])
    return ops


def axi_from_float(q, k, v, cfg, *, scale=None, causal=None, mode="prefill", positions=1):
    """From float ``q [H, Lq, d]``, ``k, v [Hkv, Lk, d]``: the quantised inputs (``golden.quant``), the
    program and the AXI transactions (:func:`axi_ops`). Returns ``(z, prog, ops)``; the reference a
    driver author ports."""
    from ..accuracy.quant import quantise
    z = quantise(q, k, v, cfg, scale=scale)
    prog = program(z.q, z.k, z.v, z.c_mant, z.c_shift, cfg, causal=causal, mode=mode, positions=positions)
    return z, prog, axi_ops(prog, cfg)


def axi_outputs(frames, prog, z, cfg, shape):
    """Float attention output ``[H, Lq, d]`` from the output frames (bytes, one per command, in order):
    each row decoded by the engine's layout, placed by its command's heads and query rows, and
    dequantised (``golden.quant.dequantise``)."""
    from ..accuracy.quant import dequantise
    from ..hw.common import decode
    from ..hw.regmap import stream_bytes, stream_layouts
    n, layout = stream_bytes(cfg)["o"], stream_layouts(cfg)["o"]
    out = np.zeros(shape, dtype=np.int64)
    commands = [c for seg in prog for c in seg.commands]
    if len(frames) != len(commands):
        raise ValueError(f"{len(frames)} output frames for {len(commands)} commands")
    for c, data in zip(commands, frames):
        if len(data) != c.n_rows * n:
            raise ValueError(f"an output frame of {len(data)} bytes for {c.n_rows} rows of {n} bytes")
        for r in range(c.n_rows):
            row = decode(layout, int.from_bytes(data[r * n:(r + 1) * n], "little"))
            if row["row"] != r:
                raise ValueError(f"row {row['row']} where slot {r} was expected")
            out[c.head[r], c.qrow[r]] = row["o"]
    return dequantise(out, z, cfg)
