"""The engine configuration: one frozen dataclass that drives hw, golden, tb and synth.

Every width of the design is either a field here or a property derived from
the fields; nothing is typed twice. Variants are made with
:func:`dataclasses.replace`, which re-runs validation.

The number formats these fields control are specified in ``docs/numerics.md``;
reading and writing configs as text (presets, TOML, ``--set``) is ``configfile.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import InputError

__all__ = ["EngineConfig", "KEY_ORDERS", "PRESETS", "ConfigError", "DERIVED", "RATE_NEUTRAL", "kv_buffer_bits"]

KEY_ORDERS = ("sequential", "pattern")
# Widths of the AXI top's command fields (hw/regmap.py CMD_KEYS.n_keys, CMD.n_rows): a host writes a key
# count and a row count in them, so a config's max_seq_len and rows must fit them (one less than the power).
CMD_KEYS_BITS = 24
CMD_ROWS_BITS = 16
MAX_ROWS = 1024
# Amaranth 0.5 numbers the bits of one netlist cell's output in 16 bits (EngineConfig.widest_values); the
# control signals and counters beside the head_dim- and rows-sized groups measured under this many bits.
MAX_VALUE_BITS = 1 << 16
VALUE_SLACK_BITS = 1024


class ConfigError(InputError):
    """A configuration file or mapping that cannot be turned into an :class:`EngineConfig`."""


def _check_int(name, value, lo, hi=None):
    # bool is an int subclass; a flag where a width belongs is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rule = f"at least {lo}" if hi is None else f"from {lo} to {hi}"
        raise InputError(f"{name} must be {rule}, not {value}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, not {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """Parameters of a FusionCIM attention engine.

    Parameters
    ----------
    head_dim : int
        Vector length d of Q, K and V (columns of both CIM arrays).
    rows : int
        Q rows held in the IP-CIM at once (one Q tile); also the O rows of the OP-CIM.
    data_bits : int
        Width of the signed Q, K and V integers.
    ip_bits_per_cycle : int
        Key bit-planes the IP-CIM consumes per cycle; must divide ``data_bits``.
    op_bits_per_cycle : int
        Probability bit-planes the OP-CIM consumes per cycle; must divide ``p_bits``.
    log_frac_bits : int
        Fraction bits F of the base-2 log-domain score x.
    x_int_bits : int
        Integer bits (sign included) of x; x saturates to that range.
    const_bits : int
        Mantissa bits of the per-row score constant (see ``docs/numerics.md`` §3).
    prob_bits : int
        Width of a probability p at or below the running max (p = 1 is ``2**prob_bits - 1``).
    fine_lut_bits, coarse_lut_bits : int
        log2 of the entry counts of the fine and coarse exponent LUTs.
    tiers : bool
        Pattern-aware precision tiers: coarse LUT beyond ``fine_window``. Off: fine LUT everywhere.
    fine_window : int
        Distance below the running max (log2 units) served by the fine LUT.
    skip_threshold : int or None
        Distance below the running max at or beyond which p is forced to 0; None: never forced.
    key_skip : bool
        Skip the V read and OP-CIM update of a key whose p is 0 in every row.
    key_order : {"sequential", "pattern"}
        Order keys stream past a Q tile; "pattern" visits the sink keys and the
        diagonal window first (docs/numerics.md §6).
    sink_keys, diag_window : int
        Sizes of the two groups "pattern" order visits first.
    lazy_threshold : int
        Rescale only when a score exceeds the running max by more than this many
        log2 units; 0 rescales on every growth. Each unit widens p by one bit.
    rescale_on_growth_only : bool
        Off models a naive online softmax that applies alpha on every key (counters only).
    softmax_lanes : int or None
        Exponent lanes of the softmax unit (rows served per cycle); None: one per row.
        Fewer lanes take ``ceil(rows / lanes)`` cycles per key, which must not exceed
        the IP-CIM's cycles per key.
    causal : bool
        Default masking for runs that do not say otherwise.
    max_seq_len : int
        Longest key sequence the accumulators must hold without overflow.
    acc_bits, sum_bits : int or None
        Widths of the O accumulators and of the running sum l; None derives the minimum.
    out_frac_bits : int
        Fraction bits of the normalised output, in V's integer units.
    kv_depth : int or None
        Keys the engine's on-chip KV buffer holds (``hw/engine.py``); None: ``max_seq_len``.
    double_buffer : bool
        The OP-CIM copies a finished tile's O into a second register bank, so the
        division of one tile overlaps the keys of the next.
    q_double_buffer : bool
        A second (shadow) bank for the Q rows in the IP-CIM and the row set-up in
        the softmax unit: the next tile's command and Q rows load while the
        current tile runs, and the tile starts with a one-cycle swap.
    norm_lanes : int
        Rows the OP-CIM's normaliser divides at once (1 to ``rows``): a tile of
        ``n`` rows takes ``ceil(n / norm_lanes) x (out_bits + 3) + n`` cycles
        (``schedule.norm_cycles``), at ``norm_lanes`` times the dividers.

    Raises
    ------
    TypeError
        A field of the wrong type.
    ValueError
        A value out of range or a combination the hardware cannot build; the
        message names the parameter, the value and the rule.
    """

    head_dim: int = 64
    rows: int = 16
    data_bits: int = 8
    ip_bits_per_cycle: int = 2
    op_bits_per_cycle: int = 4
    log_frac_bits: int = 8
    x_int_bits: int = 12
    const_bits: int = 16
    prob_bits: int = 12
    fine_lut_bits: int = 5
    coarse_lut_bits: int = 4
    tiers: bool = True
    fine_window: int = 4
    skip_threshold: int | None = 14
    key_skip: bool = True
    key_order: str = "pattern"
    sink_keys: int = 4
    diag_window: int = 32
    lazy_threshold: int = 0
    rescale_on_growth_only: bool = True
    softmax_lanes: int | None = None
    causal: bool = True
    max_seq_len: int = 4096
    acc_bits: int | None = None
    sum_bits: int | None = None
    out_frac_bits: int = 4
    kv_depth: int | None = None
    double_buffer: bool = True
    q_double_buffer: bool = False
    norm_lanes: int = 1

    def __post_init__(self):
        self._check_fields()
        self._check_combinations()

    def _check_fields(self):
        # Each field on its own: its type and its range.
        _check_int("head_dim", self.head_dim, 1, 4096)
        _check_int("rows", self.rows, 1, MAX_ROWS)
        _check_int("data_bits", self.data_bits, 2, 16)
        _check_int("ip_bits_per_cycle", self.ip_bits_per_cycle, 1)
        _check_int("op_bits_per_cycle", self.op_bits_per_cycle, 1)
        _check_int("log_frac_bits", self.log_frac_bits, 0, 16)
        _check_int("x_int_bits", self.x_int_bits, 2, 24)
        _check_int("const_bits", self.const_bits, 2, 24)
        _check_int("prob_bits", self.prob_bits, 2, 16)
        _check_int("fine_lut_bits", self.fine_lut_bits, 0, 12)
        _check_int("coarse_lut_bits", self.coarse_lut_bits, 0, 12)
        _check_bool("tiers", self.tiers)
        _check_int("fine_window", self.fine_window, 1)
        if self.skip_threshold is not None:
            _check_int("skip_threshold", self.skip_threshold, 1)
        _check_bool("key_skip", self.key_skip)
        if self.key_order not in KEY_ORDERS:
            raise InputError(f"key_order must be one of {', '.join(KEY_ORDERS)}, not {self.key_order!r}")
        _check_int("sink_keys", self.sink_keys, 0)
        _check_int("diag_window", self.diag_window, 0)
        _check_int("lazy_threshold", self.lazy_threshold, 0, 8)
        _check_bool("rescale_on_growth_only", self.rescale_on_growth_only)
        if self.softmax_lanes is not None:
            _check_int("softmax_lanes", self.softmax_lanes, 1, self.rows)
        _check_bool("causal", self.causal)
        _check_int("max_seq_len", self.max_seq_len, 1, (1 << CMD_KEYS_BITS) - 1)
        _check_int("out_frac_bits", self.out_frac_bits, 0, 16)
        if self.kv_depth is not None:
            _check_int("kv_depth", self.kv_depth, 1, self.max_seq_len)
        _check_bool("double_buffer", self.double_buffer)
        _check_bool("q_double_buffer", self.q_double_buffer)
        _check_int("norm_lanes", self.norm_lanes, 1, self.rows)

    def _check_combinations(self):
        # Rules between fields, with the numbers that break them.
        if self.data_bits % self.ip_bits_per_cycle:
            raise InputError(
                f"ip_bits_per_cycle {self.ip_bits_per_cycle} must divide data_bits {self.data_bits}")
        if self.p_bits % self.op_bits_per_cycle:
            raise InputError(
                f"op_bits_per_cycle {self.op_bits_per_cycle} must divide the probability width "
                f"p_bits {self.p_bits} (prob_bits {self.prob_bits} + lazy_threshold {self.lazy_threshold})")
        if self.softmax_groups > self.ip_cycles_per_key:
            need = -(-self.rows // self.ip_cycles_per_key)
            raise InputError(
                f"softmax_lanes {self.lanes} need {self.softmax_groups} cycles per key for {self.rows} rows, but the "
                f"IP-CIM delivers a key every {self.ip_cycles_per_key} cycles (data_bits {self.data_bits} / "
                f"ip_bits_per_cycle {self.ip_bits_per_cycle}); needs at least {need} lanes")
        if self.fine_lut_bits > self.log_frac_bits:
            raise InputError(
                f"fine_lut_bits {self.fine_lut_bits} cannot exceed log_frac_bits {self.log_frac_bits}: "
                f"the LUT is indexed by the top bits of the fraction")
        if self.coarse_lut_bits > self.fine_lut_bits:
            raise InputError(
                f"coarse_lut_bits {self.coarse_lut_bits} cannot exceed fine_lut_bits {self.fine_lut_bits}")
        if self.skip_threshold is not None and self.tiers and self.skip_threshold <= self.fine_window:
            raise InputError(
                f"skip_threshold {self.skip_threshold} must be above fine_window {self.fine_window}")
        limit = 1 << (self.x_int_bits - 1)
        for name in ("fine_window", "skip_threshold"):
            value = getattr(self, name)
            if value is not None and value >= limit:
                raise InputError(
                    f"{name} {value} is outside the log-domain range: distances below the max reach at most "
                    f"{limit - 1} units with x_int_bits {self.x_int_bits}")
        self._check_luts()
        if self.x_int_bits - 1 <= self.lazy_threshold + 1:
            raise InputError(f"x_int_bits {self.x_int_bits} leaves no range above lazy_threshold")
        if self.acc_bits is not None:
            _check_int("acc_bits", self.acc_bits, 2, 62)
            if self.acc_bits < self.acc_bits_min:
                raise InputError(
                    f"acc_bits {self.acc_bits} cannot hold {self.max_seq_len} keys of {self.p_bits}-bit p "
                    f"times {self.data_bits}-bit v; needs {self.acc_bits_min}")
        if self.sum_bits is not None:
            _check_int("sum_bits", self.sum_bits, 1, 62)
            if self.sum_bits < self.sum_bits_min:
                raise InputError(
                    f"sum_bits {self.sum_bits} cannot hold the sum of {self.max_seq_len} keys of "
                    f"{self.p_bits}-bit p; needs {self.sum_bits_min}")
        if self.acc_width + self.out_frac_bits > 60:
            raise InputError(
                f"acc_bits {self.acc_width} plus out_frac_bits {self.out_frac_bits} exceed the 60 bits "
                f"the models support (max_seq_len {self.max_seq_len})")
        if self.score_bits + self.const_bits > 62:
            raise InputError(
                f"score_bits {self.score_bits} (head_dim {self.head_dim}, data_bits {self.data_bits}) plus "
                f"const_bits {self.const_bits} exceed 62 bits")

    def check_engine(self):
        """Raise ValueError unless the whole engine (``hw/engine.py``) can be built from this config.

        The IP-CIM sets the pace: the OP-CIM must finish a key, rescale cycle
        included, within the IP-CIM's cycles per key, so the pipeline never
        backs up and the cycle count follows docs/numerics.md section 7 exactly.
        """
        if self.op_cycles_per_key + 1 > self.ip_cycles_per_key:
            need = next((b for b in range(self.op_bits_per_cycle, self.p_bits + 1)
                         if self.p_bits % b == 0 and self.p_bits // b + 1 <= self.ip_cycles_per_key), None)
            fix = (f"op_bits_per_cycle {need} would" if need else
                   "no op_bits_per_cycle can; lower ip_bits_per_cycle")
            raise InputError(
                f"op_bits_per_cycle {self.op_bits_per_cycle} gives the OP-CIM {self.op_cycles_per_key} + 1 "
                f"(rescale) cycles per key, more than the IP-CIM's {self.ip_cycles_per_key} (data_bits "
                f"{self.data_bits} / ip_bits_per_cycle {self.ip_bits_per_cycle}): the engine needs the OP-CIM "
                f"to keep up; {fix}")
        return self

    def widest_values(self, block):
        """``[(bits, what)]``: the widest groups of bits one Amaranth netlist cell of ``block`` carries.

        Amaranth 0.5 numbers the bits of one cell's output in 16 bits: a module's input ports together,
        an instance's outputs, one register each form such a group, and one over 65,536 bits stops the
        generator with an assertion. These are that design's head_dim- and rows-sized groups, from
        above; the control signals and counters beside them stay under :data:`VALUE_SLACK_BITS`
        (``tests/test_generate.py`` measures every module of generated designs against this).
        """
        d, R = self.head_dim, self.rows
        banks = 2 if self.double_buffer else 1
        ip = [(2 * d * self.data_bits, f"an IP-CIM row's Q and K ports (2 x head_dim {d} x data_bits {self.data_bits})"),
              (R * self.score_bits, f"the IP-CIM's scores (rows {R} x score_bits {self.score_bits})")]
        op = [(d * (self.acc_width + self.out_bits), f"the OP-CIM's outputs (head_dim {d} x (acc_width "
               f"{self.acc_width} + out_bits {self.out_bits}))"),
              (d * self.acc_width + R * self.sum_width, f"the normaliser's inputs (head_dim {d} x acc_width "
               f"{self.acc_width} + rows {R} x sum_width {self.sum_width})"),
              (banks * R * self.acc_width, f"an OP-CIM column ({banks} bank(s) x rows {R} x acc_width "
               f"{self.acc_width})")]
        sm = [(R * (self.sum_width + self.p_bits + self.x_bits), f"the softmax unit's outputs (rows {R} x "
               f"(sum_width {self.sum_width} + p_bits {self.p_bits} + x_bits {self.x_bits}))")]
        engine = [(3 * d * self.data_bits, f"the engine's Q, K and V ports (3 x head_dim {d} x data_bits "
                   f"{self.data_bits})")]
        return {"ip_cim": ip, "op_cim": op, "softmax": sm}.get(block, ip + op + sm + engine)

    def check_buildable(self, block):
        """Raise ValueError if Amaranth cannot generate ``block`` from this config (:meth:`widest_values`)."""
        bits, what = max(self.widest_values(block))
        if bits + VALUE_SLACK_BITS > MAX_VALUE_BITS:
            raise InputError(
                f"{block} cannot be generated: {what} is {bits:,} bits; Amaranth holds at most "
                f"{MAX_VALUE_BITS:,} bits in one netlist value, and the generator needs it to be at most "
                f"{MAX_VALUE_BITS - VALUE_SLACK_BITS:,} (room for {VALUE_SLACK_BITS:,} bits of control and "
                f"counters); lower head_dim, rows or max_seq_len (which sets acc_width and sum_width)")
        return self

    def _check_luts(self):
        from .lut import distinct_entries_need
        for name, bits in (("fine", self.fine_lut_bits), ("coarse", self.coarse_lut_bits)):
            need = distinct_entries_need(self.prob_bits, self.log_frac_bits, bits)
            if need is not None:
                raise InputError(
                    f"prob_bits {self.prob_bits} cannot represent the {1 << bits}-entry {name} LUT "
                    f"(neighbouring entries are equal); needs prob_bits >= {need}")

    # -- derived widths (docs/numerics.md) ---------------------------------
    @property
    def score_bits(self) -> int:
        """Signed width that holds any Q.K dot product exactly."""
        return (self.head_dim << (2 * self.data_bits - 2)).bit_length() + 1

    @property
    def x_bits(self) -> int:
        """Signed width of the log-domain score x (integer plus fraction bits)."""
        return self.x_int_bits + self.log_frac_bits

    @property
    def x_min(self) -> int:
        return -(1 << (self.x_bits - 1))

    @property
    def x_max(self) -> int:
        return (1 << (self.x_bits - 1)) - 1

    @property
    def prob_max(self) -> int:
        """Integer value of p = 1 (the scale of p cancels in O / l)."""
        return (1 << self.prob_bits) - 1

    @property
    def p_bits(self) -> int:
        """Unsigned width of p, lazy-threshold headroom included."""
        return self.prob_bits + self.lazy_threshold

    @property
    def acc_bits_min(self) -> int:
        return ((self.max_seq_len * self.prob_max) << (self.lazy_threshold + self.data_bits - 1)).bit_length() + 1

    @property
    def sum_bits_min(self) -> int:
        return ((self.max_seq_len * self.prob_max) << self.lazy_threshold).bit_length()

    @property
    def acc_width(self) -> int:
        return self.acc_bits_min if self.acc_bits is None else self.acc_bits

    @property
    def sum_width(self) -> int:
        return self.sum_bits_min if self.sum_bits is None else self.sum_bits

    @property
    def out_bits(self) -> int:
        """Signed width of a normalised output element."""
        return self.data_bits + self.out_frac_bits

    @property
    def ip_cycles_per_key(self) -> int:
        return self.data_bits // self.ip_bits_per_cycle

    @property
    def op_cycles_per_key(self) -> int:
        return self.p_bits // self.op_bits_per_cycle

    @property
    def pos_bits(self) -> int:
        """Width of a token position (query or key) in the blocks' ports."""
        return max(1, (self.max_seq_len - 1).bit_length())

    @property
    def c_shift_bits(self) -> int:
        """Width of the per-row score-constant shift (0 .. score_bits + const_bits)."""
        return (self.score_bits + self.const_bits).bit_length()

    @property
    def shift_bits(self) -> int:
        """Width of a rescale shift (saturated at acc_width)."""
        return self.acc_width.bit_length()

    @property
    def row_bits(self) -> int:
        """Width of a row address in the blocks' ports (at least 1: no zero-width Verilog)."""
        return max(1, (self.rows - 1).bit_length())

    @property
    def n_rows_bits(self) -> int:
        """Width of a row count 0 .. rows (a tile's ``n_rows``)."""
        return self.rows.bit_length()

    @property
    def lanes(self) -> int:
        """Exponent lanes of the softmax unit."""
        return self.rows if self.softmax_lanes is None else self.softmax_lanes

    @property
    def softmax_groups(self) -> int:
        """Cycles the softmax unit's exponent stage spends on one key."""
        return -(-self.rows // self.lanes)

    @property
    def kv_keys(self) -> int:
        """Depth of the engine's KV buffer."""
        return self.max_seq_len if self.kv_depth is None else self.kv_depth

    @property
    def kv_addr_bits(self) -> int:
        """Width of a KV-buffer address (at least 1: no zero-width Verilog)."""
        return max(1, (self.kv_keys - 1).bit_length())

    @property
    def n_keys_bits(self) -> int:
        """Width of a command's key count: up to twice the buffer, so an oversized request is representable."""
        return (2 * self.kv_keys).bit_length()

    @property
    def data_min(self) -> int:
        return -(1 << (self.data_bits - 1))

    @property
    def data_max(self) -> int:
        return (1 << (self.data_bits - 1)) - 1

    def fit(self, head_dim: int, keys: int) -> "EngineConfig":
        """This config for data of ``head_dim`` and sequences of ``keys`` keys: the data's head_dim, and
        ``max_seq_len`` and the KV buffer raised to hold the keys where they are smaller (never lowered).

        The one rule every tool uses to fit a config to a workload (simulate, accuracy, the report).
        """
        changes = {"head_dim": head_dim}
        if keys > self.max_seq_len:
            changes["max_seq_len"] = keys
        if self.kv_depth is not None and keys > self.kv_depth:
            changes["kv_depth"] = keys
        return dataclasses.replace(self, **changes)

    def replace(self, **changes) -> "EngineConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def kv_buffer_bits(keys, head_dim, data_bits):
    """Bits of a KV buffer of ``keys`` keys: a K and a V row of ``head_dim`` elements of ``data_bits`` each."""
    return 2 * keys * head_dim * data_bits


# Fields that do not change the softmax's data-dependent rates (keys skipped, LUT tiers, rescales): a
# rates file measured with one value of these serves every other (perf/report.py).
RATE_NEUTRAL = ("head_dim", "max_seq_len", "kv_depth", "acc_bits", "sum_bits", "causal", "double_buffer",
                "q_double_buffer", "norm_lanes", "ip_bits_per_cycle", "op_bits_per_cycle", "softmax_lanes",
                "out_frac_bits")

assert MAX_ROWS < 1 << CMD_ROWS_BITS, "a tile's n_rows must fit CMD.n_rows"
_FIELDS = {f.name: f for f in dataclasses.fields(EngineConfig)}
assert set(RATE_NEUTRAL) <= set(_FIELDS), "RATE_NEUTRAL names a field that does not exist"
DERIVED = tuple(name for name, value in vars(EngineConfig).items() if isinstance(value, property))
"""Every value derived from the fields (widths, limits, rates), in definition order: ``fusioncim config`` prints them."""
PRESETS: dict[str, EngineConfig] = {
    "default": EngineConfig(),
    # Small enough for cycle-by-cycle simulation of whole heads.
    "test": EngineConfig(head_dim=16, rows=4, max_seq_len=256, sink_keys=2, diag_window=8),
    # LLaMA-3-8B attention: d = 128, 8192-token context.
    "llama3-8b": EngineConfig(head_dim=128, rows=16, max_seq_len=8192),
}
