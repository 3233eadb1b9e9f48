"""Event-count energy model: counted events x a per-event energy table (docs/energy.md).

The table (``synth/energy.toml``, or a user's file of the same form) holds
measured per-operation energies at a reference node, each with its source,
and the assumptions this project made, each saying so. :func:`load_table`
validates it; :meth:`Table.at` scales it to another node and supply.

:data:`EVENTS` are the events the dataflow models count
(:mod:`fusioncim.perf.dataflow`). Each one's energy is a formula over the table's
entries and the engine config's widths (:func:`event_energies`), so a CIM
bit-plane operation is derived from the same measured figures as everything
else. :func:`energy` multiplies counts by those energies and sums them by
event class.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError

__all__ = ["EnergyTableError", "Table", "load_table", "DEFAULT_TABLE", "EVENTS", "CLASSES", "event_energies",
           "energy", "Sizes"]

DEFAULT_TABLE = Path(__file__).with_name("energy.toml")

# Entries a table must have (all of them) and may have (no others).
TABLE_EVENTS = ("add8", "add16", "add32", "mul8", "fadd32", "fmul32", "sram64_8k", "sram64_32k",
                "sram64_1m", "dram64", "lut_read", "fexp32")
TABLE_PARAMS = ("sram_bank_bytes", "sram_write_factor")
SECTIONS = ("reference", "scaling", "events", "params")


class EnergyTableError(InputError):
    """An energy table that cannot be used; the message names the file, the entry, the value and the rule."""


@dataclass(frozen=True)
class Table:
    """A validated energy table: ``pj[event]`` at ``node_nm`` and ``vdd``, and the model ``params``."""
    pj: dict
    params: dict
    sources: dict
    node_nm: float
    vdd: float
    ref_node_nm: float
    ref_vdd: float
    exponent: float
    path: str

    def scale(self, node_nm=None, vdd=None):
        """The factor applied to on-chip energies at ``node_nm`` and ``vdd`` (docs/energy.md, node scaling)."""
        node = self.ref_node_nm if node_nm is None else node_nm
        v = self.ref_vdd if vdd is None else vdd
        return (node / self.ref_node_nm) ** self.exponent * (v / self.ref_vdd) ** 2

    def at(self, node_nm=None, vdd=None):
        """This table scaled to another node (nm) and supply (V); DRAM is not scaled."""
        for name, val in (("node_nm", node_nm), ("vdd", vdd)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0):
                raise InputError(f"{name} must be a positive number, not {val!r}")
        s = self.scale(node_nm, vdd)
        pj = {k: (v if k == "dram64" else v * s) for k, v in self.pj.items()}
        return Table(pj=pj, params=self.params, sources=self.sources,
                     node_nm=self.ref_node_nm if node_nm is None else node_nm,
                     vdd=self.ref_vdd if vdd is None else vdd, ref_node_nm=self.ref_node_nm,
                     ref_vdd=self.ref_vdd, exponent=self.exponent, path=self.path)

    # Derived operations (docs/energy.md, "derived energies").
    def add(self, bits):
        """A ``bits``-wide integer add: linear in width through Horowitz's 8/16/32-bit points."""
        pts = [(8, self.pj["add8"]), (16, self.pj["add16"]), (32, self.pj["add32"])]
        return _piecewise(bits, pts)

    def mul(self, a, b):
        """An ``a`` x ``b``-bit integer multiply: proportional to a*b from the 8-bit figure."""
        return self.pj["mul8"] * a * b / 64

    def sram64(self, size_bytes):
        """A 64-bit access to an SRAM of ``size_bytes``, banked at ``sram_bank_bytes``: log-linear in size."""
        size = min(max(size_bytes, 1), self.params["sram_bank_bytes"])
        pts = [(math.log2(8 << 10), self.pj["sram64_8k"]), (math.log2(32 << 10), self.pj["sram64_32k"]),
               (math.log2(1 << 20), self.pj["sram64_1m"])]
        x = min(max(math.log2(size), pts[0][0]), pts[-1][0])
        return _piecewise(x, pts)


def _piecewise(x, pts):
    # Linear through the points, extended with the end segments' slopes.
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1 or (x1, y1) == pts[-1]:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise AssertionError("unreachable")


def _number(path, where, value, *, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EnergyTableError(f"{path}: {where} must be a number, not {value!r}")
    if value < 0 or (positive and value == 0):
        rule = "positive" if positive else "zero or more"
        raise EnergyTableError(f"{path}: {where} must be {rule}, not {value}")
    return float(value)


def _source(path, where, entry):
    src = entry.get("source")
    if not isinstance(src, str) or not src.strip():
        raise EnergyTableError(f"{path}: {where} has no source; every number needs one "
                               f"(a citation, or 'assumption: ...' with the reason)")
    return src


def _keys(path, where, entry, allowed):
    if not isinstance(entry, dict):
        raise EnergyTableError(f"{path}: {where} must be a table, not {entry!r}")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise EnergyTableError(f"{path}: unknown key {unknown[0]!r} in {where}; allowed: {', '.join(allowed)}")


def _entries(path, doc, section, names, field, what, sources, positive=False):
    # Every entry of [section.NAME] for NAME in names: {field, source}, nothing else.
    table = doc[section]
    _keys(path, f"[{section}]", table, names)
    out = {}
    for name in names:
        where = f"[{section}.{name}]"
        if name not in table:
            raise EnergyTableError(f"{path}: missing {what} {where}")
        _keys(path, where, table[name], (field, "source"))
        if field not in table[name]:
            raise EnergyTableError(f"{path}: {where} needs {field}")
        out[name] = _number(path, f"{where} {field}", table[name][field], positive=positive)
        sources[name] = _source(path, where, table[name])
    return out


def load_table(path=None) -> Table:
    """Read and validate an energy table (default: ``synth/energy.toml``)."""
    path = Path(path or DEFAULT_TABLE)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EnergyTableError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EnergyTableError(f"{path}: not valid TOML: {exc}") from None
    _keys(path, "the file", doc, SECTIONS)
    for sec in SECTIONS:
        if sec not in doc:
            raise EnergyTableError(f"{path}: missing section [{sec}]")
    ref, sc = doc["reference"], doc["scaling"]
    _keys(path, "[reference]", ref, ("node_nm", "vdd", "source"))
    _keys(path, "[scaling]", sc, ("capacitance_exponent", "source"))
    sources = {"reference": _source(path, "[reference]", ref), "scaling": _source(path, "[scaling]", sc)}
    for sec, key in (("reference", "node_nm"), ("reference", "vdd"), ("scaling", "capacitance_exponent")):
        if key not in doc[sec]:
            raise EnergyTableError(f"{path}: [{sec}] needs {key}")
    node = _number(path, "[reference] node_nm", ref["node_nm"], positive=True)
    vdd = _number(path, "[reference] vdd", ref["vdd"], positive=True)
    expo = _number(path, "[scaling] capacitance_exponent", sc["capacitance_exponent"])
    pj = _entries(path, doc, "events", TABLE_EVENTS, "pj", "event", sources)
    params = _entries(path, doc, "params", TABLE_PARAMS, "value", "parameter", sources, positive=True)
    return Table(pj=pj, params=params, sources=sources, node_nm=node, vdd=vdd, ref_node_nm=node, ref_vdd=vdd,
                 exponent=expo, path=str(path))


# -- counted events ------------------------------------------------------------

CLASSES = ("ip_cim", "op_cim", "softmax", "normalise", "kv_buffer", "sp_buffer", "qo_buffer", "cim_write", "dram")

# name: (class, what one event is). Memory events count bits.
EVENTS = {
    "ip_bitplane": ("ip_cim", "one stored Q word against one streamed key bit, adder-tree share included"),
    "ip_row_add": ("ip_cim", "a row accumulator's shift-add, once per IP-CIM cycle"),
    "op_bitplane": ("op_cim", "one O cell taking one p bit times its V word"),
    "op_acc_add": ("op_cim", "an O accumulator add, once per OP-CIM cycle"),
    "op_rescale": ("op_cim", "an O accumulator shifted by a rescale"),
    "sm_convert": ("softmax", "score x per-row constant into the log domain (score_bits x const_bits multiply)"),
    "sm_compare": ("softmax", "running-max compare and distance (two x_bits adds)"),
    "sm_lookup": ("softmax", "an exponent LUT read (fine or coarse)"),
    "sm_accumulate": ("softmax", "p shift and running-sum add"),
    "sm_rescale": ("softmax", "running sum l shifted by a rescale"),
    "fp_convert": ("softmax", "integer <-> float32 conversion"),
    "fp_add": ("softmax", "float32 add or compare"),
    "fp_mul": ("softmax", "float32 multiply"),
    "fp_exp": ("softmax", "float32 exp"),
    "norm_step": ("normalise", "one restoring-division step of one output element"),
    "kv_read_bits": ("kv_buffer", "bits read from the K/V buffer"),
    "kv_write_bits": ("kv_buffer", "bits written into the K/V buffer"),
    "sp_read_bits": ("sp_buffer", "bits read from an S or P buffer"),
    "sp_write_bits": ("sp_buffer", "bits written into an S or P buffer"),
    "qo_read_bits": ("qo_buffer", "bits read from the Q buffer or a partial-O/softmax-state buffer"),
    "qo_write_bits": ("qo_buffer", "bits written into the O buffer or a partial-O/softmax-state buffer"),
    "cim_write_bits": ("cim_write", "bits written into a CIM array (stationary operands)"),
    "dram_bits": ("dram", "bits moved to or from DRAM"),
}


@dataclass(frozen=True)
class Sizes:
    """Bytes of each memory, which sets its per-access energy."""
    kv_buffer: int
    sp_buffer: int
    qo_buffer: int
    cim_array: int


def event_energies(cfg, table: Table, sizes: Sizes):
    """pJ per event of :data:`EVENTS` for ``cfg`` (docs/energy.md gives each formula)."""
    t = table
    wf = t.params["sram_write_factor"]

    def mem(size, write=False):
        return t.sram64(size) / 64 * (wf if write else 1.0)
    bitplane = t.mul(8, 8) / 8
    return {
        "ip_bitplane": bitplane,
        "ip_row_add": t.add(cfg.score_bits),
        "op_bitplane": bitplane,
        "op_acc_add": t.add(cfg.acc_width),
        "op_rescale": t.add(cfg.acc_width),
        "sm_convert": t.mul(cfg.score_bits, cfg.const_bits),
        "sm_compare": 2 * t.add(cfg.x_bits),
        "sm_lookup": t.pj["lut_read"],
        "sm_accumulate": t.add(cfg.p_bits) + t.add(cfg.sum_width),
        "sm_rescale": t.add(cfg.sum_width),
        "fp_convert": t.add(32),
        "fp_add": t.pj["fadd32"],
        "fp_mul": t.pj["fmul32"],
        "fp_exp": t.pj["fexp32"],
        "norm_step": t.add(cfg.acc_width),
        "kv_read_bits": mem(sizes.kv_buffer),
        "kv_write_bits": mem(sizes.kv_buffer, True),
        "sp_read_bits": mem(sizes.sp_buffer),
        "sp_write_bits": mem(sizes.sp_buffer, True),
        "qo_read_bits": mem(sizes.qo_buffer),
        "qo_write_bits": mem(sizes.qo_buffer, True),
        "cim_write_bits": mem(sizes.cim_array, True),
        "dram_bits": t.pj["dram64"] / 64,
    }


def energy(counts, energies):
    """``{"total_pj", "by_class": {class: pJ}, "by_event": {event: pJ}}`` for ``counts`` (event -> count)."""
    unknown = sorted(set(counts) - set(EVENTS))
    if unknown:
        raise InputError(f"unknown event {unknown[0]!r}; events are {', '.join(EVENTS)}")
    by_event = {e: float(counts.get(e, 0)) * energies[e] for e in EVENTS}
    by_class = {c: 0.0 for c in CLASSES}
    for e, pj in by_event.items():
        by_class[EVENTS[e][0]] += pj
    return {"total_pj": sum(by_event.values()), "by_class": by_class, "by_event": by_event}
