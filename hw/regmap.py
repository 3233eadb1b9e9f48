"""The AXI top's register map, defined once: the hardware, SystemRDL, the C header and the docs read it.

:func:`registers` lists every 32-bit register of ``hw/axi.py``'s AXI4-Lite
slave for a config: its byte offset, its fields (bit position, width, software
access, reset value) and what it means. The RTL register block is built from
this list (``hw/axi.py`` loops over it: decode, read mux, write effects), and
:func:`rdl` writes the same list as SystemRDL, from which PeakRDL makes the C
header and the HTML docs (``fusioncim regmap``). ``tests/test_regmap.py``
compiles the RDL with ``systemrdl-compiler`` and checks every address, field
and access type against this list, so the three cannot drift.

Access kinds (``Field.access``):

``const``  read-only, a constant of the generated configuration (ID registers)
``ro``     read-only, driven by the hardware
``rw``     read/write, stored
``w1c``    read-only state set by the hardware, each bit cleared by writing 1
``w1p``    write 1 to act (a one-cycle pulse to the hardware); reads 0

Every access is to a whole 32-bit register: address bits [1:0] are ignored, so a byte access at any
address of a register reaches that register. Writes honour ``wstrb`` byte by byte: a stored field
(``rw``) takes the written bytes and keeps the others; ``w1c`` and ``w1p`` bits act only in written
bytes; a write with no strobes changes nothing and starts nothing (and answers OKAY). A write to
``CMD`` with any strobe starts a command with CMD's fields after the write. Any access to an unmapped
address, and a write to a register with no writable field, answers SLVERR and changes nothing; a
read of a ``w1p`` field returns 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import __version__
from ..core.config import CMD_KEYS_BITS, CMD_ROWS_BITS, EngineConfig
from ..core.counters import COUNTER_BITS, ENGINE_COUNTERS, Counters
from .controller import q_layout
from .engine import ERRORS as ENGINE_ERRORS, kv_wr_layout
from .op_cim import o_out_layout

__all__ = ["RegField", "Register", "registers", "by_name", "rdl", "map_digest", "MAGIC", "REGMAP_VERSION", "COUNTER_BASE", "ERROR_BITS",
           "IRQ_BITS", "ACCESS", "version_word", "stream_layouts", "stream_bytes", "cmd_word"]

MAGIC = 0x4643494D                 # "FCIM"
ACCESS_RULES = ("FusionCIM attention engine, AXI4-Lite registers, each a whole 32-bit word: address bits [1:0] "
                "are ignored. Writes honour wstrb byte by byte: a stored field takes its written bytes and keeps "
                "the others; w1c and w1p bits act only in written bytes; a write with no strobes changes nothing, "
                "starts nothing and answers OKAY; a CMD write with any strobe starts a command. Unmapped "
                "addresses and writes to registers with no writable field answer SLVERR and change nothing; "
                "w1p fields read 0.")
"""The map's access rules, said in the SystemRDL (and so in the C header's and the HTML's description)."""
# The register map's and the stream payloads' version: raised, with an entry in CHANGELOG.md, whenever a
# register, a field, an access rule or a payload layout changes (tests/test_regmap.py holds the two together).
REGMAP_VERSION = 3
COUNTER_BASE = 0x100               # counter i: LO at COUNTER_BASE + 8 i, HI at + 4
ACCESS = ("const", "ro", "rw", "w1c", "w1p")

# Bits of ERROR (sticky, write 1 to clear): the engine's own error bits (hw/engine.py ERRORS) at the
# engine's positions, then the AXI top's own. The texts say what the bit means at the bus.
_ERROR_TEXT = {
    "n_keys": "a command's n_keys was 0 or beyond the KV buffer; the tile was dropped",
    "n_rows": "a command's n_rows was 0 or beyond rows; the tile was dropped",
    "kv_busy": "a KV beat arrived while a tile was in progress; it was dropped",
    "kv_addr": "a KV beat's address was beyond the buffer; it was dropped (only when KV_DEPTH.keys is not a "
               "power of two: the address field is just wide enough for the buffer)",
    "q_beats": "a tile's Q stream had too few or too many beats before tlast; the tile's output was dropped",
    "cmd_overrun": "CMD was written while a command was still pending; the write was dropped",
    "watchdog": "WATCHDOG.cycles cycles passed with work in progress and nothing moving (no stream beat, no key, "
                "no normaliser step); write ABORT.tile to drop the stuck tiles",
}
_AXI_ERRORS = ("q_beats", "cmd_overrun", "watchdog")
ERROR_BITS = {name: (bit, _ERROR_TEXT[name]) for bit, (name, _) in sorted(ENGINE_ERRORS.items())}
ERROR_BITS.update({name: (len(ENGINE_ERRORS) + i, _ERROR_TEXT[name]) for i, name in enumerate(_AXI_ERRORS)})
IRQ_BITS = {"done": (0, "a tile's last output row left on m_axis (or its output was dropped)"),
            "error": (1, "an ERROR bit was set")}


@dataclass(frozen=True)
class RegField:
    name: str
    lsb: int
    width: int
    access: str
    desc: str
    reset: int = 0

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    desc: str
    fields: tuple = field(default_factory=tuple)

    @property
    def writable(self):
        return any(f.access in ("rw", "w1c", "w1p") for f in self.fields)

    @property
    def reset(self):
        return sum(f.reset << f.lsb for f in self.fields)

    def field(self, name):
        return next(f for f in self.fields if f.name == name)


def version_word(version=__version__):
    major, minor, patch = (int(x) for x in version.split(".")[:3])
    return (major << 16) | (minor << 8) | patch


def stream_layouts(cfg: EngineConfig):
    """The engine payload each AXI4-Stream carries in ``tdata``: ``kv`` (``s_axis_kv``), ``q``
    (``s_axis_q``), ``o`` (``m_axis_o``)."""
    return {"kv": kv_wr_layout(cfg), "q": q_layout(cfg), "o": o_out_layout(cfg)}


def stream_bytes(cfg: EngineConfig):
    """``tdata`` bytes of the three streams: the engine's payloads rounded up to whole bytes."""
    return {name: -(-layout.size // 8) for name, layout in stream_layouts(cfg).items()}


def cmd_word(cfg: EngineConfig, n_rows, causal, pattern):
    """The value written to ``CMD``, its fields placed by the map."""
    cmd = by_name(cfg)["CMD"]
    return ((int(n_rows) << cmd.field("n_rows").lsb) | (int(causal) << cmd.field("causal").lsb)
            | (int(pattern) << cmd.field("pattern").lsb))


def _const(name, lsb, width, value, desc):
    if not 0 <= value < (1 << width):
        raise ValueError(f"{name} = {value} does not fit {width} bits")
    return RegField(name, lsb, width, "const", desc, value)


def registers(cfg: EngineConfig) -> list:
    """Every register of the AXI top for ``cfg``, in address order."""
    sb = stream_bytes(cfg)
    major_minor_patch = version_word()
    regs = [
        Register("ID", 0x00, "identifies a fusioncim engine", (
            _const("magic", 0, 32, MAGIC, 'the ASCII "FCIM"'),)),
        Register("VERSION", 0x04, "the generator version that wrote this design", (
            _const("patch", 0, 8, major_minor_patch & 0xFF, "patch"),
            _const("minor", 8, 8, (major_minor_patch >> 8) & 0xFF, "minor"),
            _const("major", 16, 8, major_minor_patch >> 16, "major"))),
        Register("ROWS", 0x08, "array geometry", (
            _const("rows", 0, 16, cfg.rows, "query rows per tile (the arrays' rows)"),
            _const("lanes", 16, 16, cfg.lanes, "exponent lanes of the softmax unit"))),
        Register("DIMS", 0x0C, "vector sizes", (
            _const("head_dim", 0, 16, cfg.head_dim, "elements per Q, K, V and O row"),
            _const("data_bits", 16, 8, cfg.data_bits, "bits per Q, K, V element (signed)"),
            _const("out_bits", 24, 8, cfg.out_bits, "bits per O element (signed)"))),
        Register("KV_DEPTH", 0x10, "KV buffer", (
            _const("keys", 0, 32, cfg.kv_keys, "keys the buffer holds"),)),
        Register("WIDTHS", 0x14, "widths of the Q beat's fields", (
            _const("pos_bits", 0, 8, cfg.pos_bits, "bits of a token position"),
            _const("const_bits", 8, 8, cfg.const_bits, "bits of c_mant"),
            _const("c_shift_bits", 16, 8, cfg.c_shift_bits, "bits of c_shift"),
            _const("out_frac_bits", 24, 8, cfg.out_frac_bits, "fraction bits of an O element"))),
        Register("FEATURES", 0x18, "switches of the generated design", (
            _const("double_buffer", 0, 1, int(cfg.double_buffer), "a second bank of O registers"),
            _const("key_skip", 1, 1, int(cfg.key_skip), "keys below the threshold in every row skip V"),
            _const("tiers", 2, 1, int(cfg.tiers), "fine and coarse exponent LUTs"),
            _const("pattern_order", 3, 1, int(cfg.key_order == "pattern"), "pattern-aware key order "
                   "available (CMD.pattern)"))),
        Register("STREAM_BYTES", 0x1C, "tdata bytes of each stream", (
            _const("kv", 0, 16, sb["kv"], "s_axis_kv"),
            _const("q", 16, 16, sb["q"], "s_axis_q"))),
        Register("STREAM_BYTES_O", 0x20, "tdata bytes of the output stream", (
            _const("o", 0, 16, sb["o"], "m_axis_o"),)),
        Register("REGMAP_VERSION", 0x24, "the version of this register map and of the stream payloads", (
            _const("version", 0, 16, REGMAP_VERSION, "raised whenever a register, a field, an access rule or "
                   "a payload layout changes (CHANGELOG.md)"),)),
        Register("KEY_SCALES", 0x28, "widths of the per-key scale codes each s_axis_kv beat carries after its V row "
                 "(0: the field is absent)", (
            _const("k_exp_bits", 0, 8, cfg.k_exp_bits, "bits of a key's K exponent"),
            _const("k_mant_bits", 8, 8, cfg.k_mant_bits, "bits of a key's K mantissa"),
            _const("v_exp_bits", 16, 8, cfg.v_exp_bits, "bits of a key's V exponent"))),
        Register("CMD_KEYS", 0x40, "the next command's key count", (
            RegField("n_keys", 0, CMD_KEYS_BITS, "rw", "keys [0, n_keys) of the buffer, 1 to KV_DEPTH.keys"),)),
        Register("CMD", 0x44, "the next command; a write starts it (STATUS.cmd_ready must be 1)", (
            RegField("n_rows", 0, CMD_ROWS_BITS, "rw", "Q rows of the tile, 1 to ROWS.rows; s_axis_q carries them, "
                     "tlast on the last"),
            RegField("causal", CMD_ROWS_BITS, 1, "rw", "mask keys after each row's position"),
            RegField("pattern", CMD_ROWS_BITS + 1, 1, "rw", "pattern-aware key order (else keys in order); "
                     "golden's results are for the config's key_order: 1 for pattern, 0 for sequential"))),
        Register("STATUS", 0x48, "state", (
            RegField("idle", 0, 1, "ro", "nothing in progress, no command pending, no output waiting", 1),
            RegField("cmd_ready", 1, 1, "ro", "CMD may be written (no command pending)", 1))),
        Register("ERROR", 0x4C, "sticky error bits; write 1 to clear", tuple(
            RegField(name, bit, 1, "w1c", desc) for name, (bit, desc) in ERROR_BITS.items())),
        Register("IRQ_ENABLE", 0x50, "irq is high while a bit is set in both IRQ_ENABLE and IRQ_STATUS", tuple(
            RegField(name, bit, 1, "rw", f"enable: {desc}") for name, (bit, desc) in IRQ_BITS.items())),
        Register("IRQ_STATUS", 0x54, "interrupt causes; write 1 to clear", tuple(
            RegField(name, bit, 1, "w1c", desc) for name, (bit, desc) in IRQ_BITS.items())),
        Register("SNAPSHOT", 0x58, "counter snapshot", (
            RegField("take", 0, 1, "w1p", "copy every counter into the COUNTER registers at once"),)),
        Register("ABORT", 0x5C, "drop every tile not yet being normalised", (
            RegField("tile", 0, 1, "w1p", "drop the pending command, the tile taking Q beats (no more of its "
                     "beats are taken) and every tile whose keys have not finished; a tile being normalised "
                     "finishes and its rows are sent. STATUS.idle is 1 once done"),)),
        Register("WATCHDOG", 0x60, "stall detector", (
            RegField("cycles", 0, 32, "rw", "set ERROR.watchdog after this many cycles with work in progress "
                     "and nothing moving; 0 turns it off"),)),
    ]
    docs = {f: Counters.__dataclass_fields__[f].metadata["doc"] for f in ENGINE_COUNTERS}
    for i, name in enumerate(ENGINE_COUNTERS):
        for half, lsb, width in (("LO", 0, 32), ("HI", 32, COUNTER_BITS - 32)):
            regs.append(Register(f"{name.upper()}_{half}", COUNTER_BASE + 8 * i + (4 if half == "HI" else 0),
                                 f"counter {name}, bits [{lsb + width - 1}:{lsb}] at the last SNAPSHOT", (
                                     RegField("value", 0, width, "ro", docs[name]),)))
    return regs


def map_digest(cfg: EngineConfig) -> str:
    """A short hash of the map's layout for ``cfg`` (registers, offsets, fields, access kinds; the stream
    payloads' fields and offsets): CHANGELOG.md records it with each REGMAP_VERSION, so a change to the
    map without a new version fails ``tests/test_regmap.py``."""
    import hashlib
    regs = [(r.name, r.offset, [(f.name, f.lsb, f.width, f.access) for f in r.fields]) for r in registers(cfg)]
    streams = {name: [(str(n), f.offset, str(f.shape)) for n, f in layout]
               for name, layout in stream_layouts(cfg).items()}
    return hashlib.sha256(repr((regs, streams)).encode()).hexdigest()[:12]


def by_name(cfg: EngineConfig) -> dict:
    return {r.name: r for r in registers(cfg)}


_RDL_ACCESS = {
    "const": "sw = r; hw = na;",
    "ro": "sw = r; hw = w;",
    "rw": "sw = rw; hw = r;",
    "w1c": "sw = rw; hw = w; onwrite = woclr; hwset;",
    "w1p": "sw = w; hw = r; singlepulse;",
}


def _rdl_text(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')


def rdl(cfg: EngineConfig, name="fusioncim_engine") -> str:
    """The register map as a SystemRDL 2.0 ``addrmap``."""
    lines = [f"// Register map of the fusioncim AXI top (fusioncim {__version__}; hw/regmap.py).",
             f"// Config: rows {cfg.rows}, head_dim {cfg.head_dim}, KV depth {cfg.kv_keys}.",
             f"addrmap {name} {{",
             '    name = "fusioncim engine";',
             f'    desc = "{_rdl_text(ACCESS_RULES)}";',
             "    default regwidth = 32;", "    default accesswidth = 32;", ""]
    for r in registers(cfg):
        lines += ["    reg {", f'        name = "{r.name}";', f'        desc = "{_rdl_text(r.desc)}";']
        if r.name == "CMD":
            lines.append("        // a write starts the command: every field is swmod")
        for f in r.fields:
            props = _RDL_ACCESS[f.access] + (" swmod;" if r.name == "CMD" else "")
            lines.append(f'        field {{ desc = "{_rdl_text(f.desc)}"; {props} }} '
                         f"{f.name}[{f.lsb + f.width - 1}:{f.lsb}] = 0x{f.reset:x};")
        lines += [f"    }} {r.name} @ 0x{r.offset:03x};", ""]
    lines.append("};")
    return "\n".join(lines) + "\n"


def compile_rdl(path):
    """Compile a SystemRDL file with ``systemrdl-compiler``; returns the elaborated root node (which
    refers back to the file: keep it while the node is used)."""
    from systemrdl import RDLCompiler
    rc = RDLCompiler()
    rc.compile_file(str(path))
    return rc.elaborate()


def write_outputs(cfg: EngineConfig, *, rdl_path=None, c_path=None, html_dir=None, prefix=""):
    """Write the RDL, and from it, compiled, the C header (peakrdl-cheader) and the HTML docs (peakrdl-html).
    The address map is named ``PREFIXfusioncim_engine`` (the C struct and macros follow it), and the
    header's include guard follows its file name, so two configs' headers can be included together.

    Every output is made in a temporary folder first and moved into place at the end, so a failure
    leaves nothing half-written; returns the paths written."""
    import shutil
    import tempfile
    from pathlib import Path
    text = rdl(cfg, name=f"{prefix}fusioncim_engine")
    with tempfile.TemporaryDirectory(prefix="fusioncim-rdl-") as tmp:
        tmp = Path(tmp)
        src = tmp / "regmap.rdl"
        src.write_text(text)
        root = compile_rdl(src)
        made = []
        if rdl_path is not None:
            made.append((src, Path(rdl_path)))
        if c_path is not None:
            from peakrdl_cheader.exporter import CHeaderExporter
            (tmp / "c").mkdir()
            header = tmp / "c" / Path(c_path).name              # the include guard is made from this name
            CHeaderExporter().export(root.top, str(header))
            made.append((header, Path(c_path)))
        if html_dir is not None:
            from peakrdl_html import HTMLExporter
            HTMLExporter().export(root.top, str(tmp / "html"))
            made.append((tmp / "html", Path(html_dir)))
        for made_path, dest in made:
            if made_path.is_dir():
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(made_path, dest)
            else:
                shutil.copyfile(made_path, dest)
    return [dest for _, dest in made]


_ACCESS_TEXT = {"const": "RO (constant)", "ro": "RO", "rw": "RW", "w1c": "RW1C", "w1p": "WO (write 1)"}


def markdown(cfg: EngineConfig) -> str:
    """The register map as markdown tables: registers, then each register's fields."""
    regs = registers(cfg)
    lines = ["| offset | register | access | reset | description |", "|---|---|---|---|---|"]
    counters = [r for r in regs if r.offset >= COUNTER_BASE]
    for r in regs:
        if r.offset >= COUNTER_BASE:
            continue
        access = "/".join(sorted({_ACCESS_TEXT[f.access] for f in r.fields}))
        lines.append(f"| 0x{r.offset:03X} | {r.name} | {access} | 0x{r.reset:08X} | {r.desc} |")
    lines.append(f"| 0x{COUNTER_BASE:03X} + 8 i | counter i `_LO` (+4: `_HI`) | RO | 0 | bits [31:0] and "
                 f"[{COUNTER_BITS - 1}:32] of counter i at the last SNAPSHOT; i in the order below |")
    lines += ["", "| register | field | bits | access | reset | description |", "|---|---|---|---|---|---|"]
    for r in regs:
        if r.offset >= COUNTER_BASE:
            continue
        for f in r.fields:
            lines.append(f"| {r.name} | {f.name} | [{f.lsb + f.width - 1}:{f.lsb}] | {_ACCESS_TEXT[f.access]} | "
                         f"0x{f.reset:X} | {f.desc} |")
    lines += ["", "| i | counter | LO | HI | counts |", "|---:|---|---|---|---|"]
    for i in range(0, len(counters), 2):
        lo, hi = counters[i], counters[i + 1]
        lines.append(f"| {i // 2} | {lo.name[:-3].lower()} | 0x{lo.offset:03X} | 0x{hi.offset:03X} | "
                     f"{lo.fields[0].desc} |")
    return "\n".join(lines) + "\n"
