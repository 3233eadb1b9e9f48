"""Area and energy efficiency beside published peers: TOPS, TOPS/mm² and TOPS/W (docs/energy.md "Efficiency").

Operations are counted as the report counts them: a multiply-accumulate is 2 operations, QKᵀ and PV each
``rows x head_dim`` MACs a key, so the engine's peak is ``4 x rows x head_dim / ip_cycles_per_key``
operations a cycle (1,024 at the default config). Peak TOPS is that at the estimated clock; achieved is
peak times a measured utilisation (operations done / (cycles x peak operations a cycle)).

Peers are compared at one node by the rule of constant-field scaling (Dennard et al., "Design of
ion-implanted MOSFET's with very small physical dimensions", IEEE JSSC 9(5), 1974): area goes as the
feature size squared, switched capacitance as the feature size, so dynamic energy per operation as
``node x vdd²``. The clock is held (only area and energy are scaled), and the rule is optimistic below
about 28 nm, where wires stopped shrinking with the node (the report's energy scaling, docs/energy.md,
uses the same rule).

>>> from fusioncim.core.config import PRESETS
>>> peak_ops_per_cycle(PRESETS["default"])
1024
>>> round(to_node_tops_mm2(5.93, 22, 45), 2)      # ITA's area efficiency at 45 nm, by area alone
1.42
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Peer", "PEERS", "REF_NODE_NM", "REF_VDD", "peak_ops_per_cycle", "to_node_tops_mm2", "to_node_tops_w",
           "figures", "lines", "from_report"]

REF_NODE_NM = 45.0      # the bundled cell library's and the energy table's node
REF_VDD = 0.9           # the energy table's supply (docs/energy.md)


@dataclass(frozen=True)
class Peer:
    name: str
    source: str
    node_nm: float | None      # None: not stated where the figure is quoted from; not scaled
    vdd: float | None          # None: not stated; energy scaled by node alone
    tops_mm2: float | None
    tops_w: float | None
    includes: str


PEERS = (
    Peer("ITA", "Islamoglu et al., ISLPED 2023, arXiv 2307.03493 (abstract)", 22, 0.8, 5.93, 16.9,
         "an 8-bit attention and softmax accelerator, 22 nm FD-SOI at 0.8 V, as its abstract states"),
    Peer("CIMple", "arXiv 2604.15944", 28, None, 2.31, 26.1,
         "standard-cell digital CIM attention with a LUT softmax, 28 nm; supply not stated here"),
    Peer("FusionCIM (paper)", "arXiv 2604.25317", None, None, None, 29.4,
         "the seed's claimed TOPS/W on LLaMA-3; node not stated here, so not scaled"),
)


def peak_ops_per_cycle(cfg, head_dim=None) -> int:
    """Operations a cycle at full rate: ``4 x rows x head_dim / ip_cycles_per_key`` (QKᵀ and PV, 2 a MAC)."""
    d = cfg.head_dim if head_dim is None else head_dim
    return 4 * cfg.rows * d // cfg.ip_cycles_per_key


def to_node_tops_mm2(tops_mm2, from_nm, to_nm):
    """Area efficiency moved from node ``from_nm`` to ``to_nm`` at the same clock: area ∝ node²."""
    return tops_mm2 * (from_nm / to_nm) ** 2


def to_node_tops_w(tops_w, from_nm, to_nm, from_vdd=None, to_vdd=None):
    """Energy efficiency moved between nodes: energy per operation ∝ node x vdd² (vdd unchanged when either
    is None)."""
    v = 1.0 if from_vdd is None or to_vdd is None else (from_vdd / to_vdd) ** 2
    return tops_w * (from_nm / to_nm) * v


def figures(cfg, area, *, utilisation=None, utilisation_source="", tops_w=None, tops_w_source=""):
    """Our efficiency at 45 nm from :func:`fusioncim.synth.area.estimate`'s result for the engine, and each
    peer as published and moved to 45 nm, with ours moved to the peer's node; a JSON-ready dict."""
    if area.get("clock_mhz") is None:
        return {"note": "no clock estimate (the liberty file gives no delays): no TOPS figures"}
    logic_mm2 = area["area_um2"] / 1e6
    total_mm2 = logic_mm2 + area.get("sram_um2", 0.0) / 1e6
    ops = peak_ops_per_cycle(cfg)
    peak = ops * area["clock_mhz"] * 1e6 / 1e12
    out = {"node_nm": REF_NODE_NM, "vdd": REF_VDD, "clock_mhz": area["clock_mhz"], "peak_ops_per_cycle": ops,
           "logic_mm2": logic_mm2, "logic_and_sram_mm2": total_mm2, "peak_tops": peak,
           "peak_tops_mm2_logic": peak / logic_mm2, "peak_tops_mm2_with_sram": peak / total_mm2}
    if utilisation is not None:
        out.update({"utilisation": utilisation, "utilisation_source": utilisation_source,
                    "achieved_tops": peak * utilisation, "achieved_tops_mm2_logic": peak * utilisation / logic_mm2,
                    "achieved_tops_mm2_with_sram": peak * utilisation / total_mm2})
    if tops_w is not None:
        out.update({"tops_w": tops_w, "tops_w_source": tops_w_source})
    mm2 = out.get("achieved_tops_mm2_logic", out["peak_tops_mm2_logic"])
    out["peers"] = []
    for p in PEERS:
        rec = {"name": p.name, "source": p.source, "includes": p.includes, "node_nm": p.node_nm, "vdd": p.vdd,
               "tops_mm2": p.tops_mm2, "tops_w": p.tops_w}
        if p.node_nm is not None:
            if p.tops_mm2 is not None:
                rec["tops_mm2_at_45nm"] = to_node_tops_mm2(p.tops_mm2, p.node_nm, REF_NODE_NM)
                rec["ours_tops_mm2_logic_at_node"] = to_node_tops_mm2(mm2, REF_NODE_NM, p.node_nm)
            if p.tops_w is not None:
                rec["tops_w_at_45nm"] = to_node_tops_w(p.tops_w, p.node_nm, REF_NODE_NM, p.vdd, REF_VDD)
                if tops_w is not None:
                    rec["ours_tops_w_at_node"] = to_node_tops_w(tops_w, REF_NODE_NM, p.node_nm, REF_VDD, p.vdd)
        out["peers"].append(rec)
    return out


def from_report(cfg, result):
    """``{utilisation, utilisation_source, tops_w, tops_w_source}`` from one :func:`fusioncim.perf.report.evaluate`
    result: FusionCIM's cycles against full rate at the workload's head_dim, and its on-chip TOPS/W at 45 nm
    0.9 V, where :func:`figures` puts the area (moved there by :func:`to_node_tops_w` from another node)."""
    wl = result["shape"]
    f = result["variants"]["fusioncim"]
    util = result["ops"] / (f["cycles"] * peak_ops_per_cycle(cfg, wl["head_dim"]))
    node, vdd = result["node_nm"], result["vdd"]
    moved = "" if (node, vdd) == (REF_NODE_NM, REF_VDD) else f" (moved from {node:g} nm {vdd:g} V)"
    return {"utilisation": util, "utilisation_source": f"{result['workload']}, the report's cycle model",
            "tops_w": to_node_tops_w(result["summary"]["tops_w"], node, REF_NODE_NM, vdd, REF_VDD),
            "tops_w_source": f"{result['workload']}, on-chip energy of the report's event model at "
                             f"{REF_NODE_NM:g} nm {REF_VDD:g} V{moved}"}


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)


def lines(fig):
    """The printed form of :func:`figures` (``fusioncim area engine``, ``fusioncim report``, the demo)."""
    if "note" in fig:
        return [fig["note"]]
    out = [f"efficiency at 45 nm, {fig['clock_mhz']:,.0f} MHz (the estimated clock); operations as the report "
           f"counts them (2 a MAC, QKᵀ and PV): {fig['peak_ops_per_cycle']:,} a cycle at full rate",
           f"  peak      {fig['peak_tops']:.2f} TOPS: {fig['peak_tops_mm2_logic']:.3f} TOPS/mm² of logic "
           f"({fig['logic_mm2']:.3f} mm²), {fig['peak_tops_mm2_with_sram']:.3f} with the KV SRAM "
           f"({fig['logic_and_sram_mm2']:.3f} mm²)"]
    if "utilisation" in fig:
        out.append(f"  achieved  {fig['achieved_tops']:.2f} TOPS: {fig['achieved_tops_mm2_logic']:.3f} TOPS/mm² of "
                   f"logic, {fig['achieved_tops_mm2_with_sram']:.3f} with the KV SRAM (utilisation "
                   f"{fig['utilisation']:.1%}: {fig['utilisation_source']})")
    if "tops_w" in fig:
        out.append(f"  TOPS/W    {fig['tops_w']:.2f} ({fig['tops_w_source']})")
    out.append("peers as published, moved to 45 nm (area ∝ node², energy ∝ node x vdd², clock held), and ours "
               "moved to theirs:")
    for p in fig["peers"]:
        where = "node not stated" if p["node_nm"] is None else (
            f"{p['node_nm']:g} nm" + (f" {p['vdd']:g} V" if p["vdd"] is not None else ""))
        text = (f"  {p['name']} ({where}; {p['source']}): {_f(p['tops_mm2'])} TOPS/mm², "
                f"{_f(p['tops_w'], '{:.1f}')} TOPS/W")
        if p["node_nm"] is not None:
            text += (f"; at 45 nm {_f(p.get('tops_mm2_at_45nm'))} TOPS/mm², {_f(p.get('tops_w_at_45nm'), '{:.1f}')} "
                     f"TOPS/W; ours at {p['node_nm']:g} nm {_f(p.get('ours_tops_mm2_logic_at_node'))} TOPS/mm² of "
                     f"logic, {_f(p.get('ours_tops_w_at_node'), '{:.1f}')} TOPS/W")
        out.append(text)
    return out
