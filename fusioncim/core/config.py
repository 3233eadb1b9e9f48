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

from .buildable import MAX_VALUE_BITS, VALUE_SLACK_BITS  # noqa: F401 (the limits, re-exported)
from .buildable import check_buildable as _check_buildable, widest_values as _widest_values
from .errors import InputError

__all__ = ["EngineConfig", "KEY_ORDERS", "PRESETS", "ConfigError", "DERIVED", "RATE_NEUTRAL", "kv_buffer_bits"]

KEY_ORDERS = ("sequential", "pattern")
# Widths of the AXI top's command fields (hw/regmap.py CMD_KEYS.n_keys, CMD.n_rows): a host writes a key
# count and a row count in them, so a config's max_seq_len and rows must fit them (one less than the power).
CMD_KEYS_BITS = 24
CMD_ROWS_BITS = 16
MAX_ROWS = 1024


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
        log2 of the entry counts of the fine and coarse exponent LUTs (default 7 and 5: the most error
        removed per area among widths whose softmax-alone median is at most 0.2%, ``bench/lut_widths.py``;
        5 and 4 before issue 33).
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
    k_exp_bits, k_mant_bits : int
        Per-key scale of K (docs/numerics.md §1 and §3): each key carries an exponent of
        ``k_exp_bits`` and a mantissa of ``k_mant_bits`` (factor ``(2^k_mant_bits + mant) x 2^exp``)
        that the softmax unit's log-domain step applies to the key's scores; 0 and 0: no per-key scale.
    v_exp_bits : int
        Per-key exponent of V: the OP-CIM adds ``p x v x 2^exp``; the accumulators and the output
        grow by ``2^v_exp_bits - 1`` bits. 0: no per-key exponent.
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
    fine_lut_bits: int = 7
    coarse_lut_bits: int = 5
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
    k_exp_bits: int = 0
    k_mant_bits: int = 0
    v_exp_bits: int = 0

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
        _check_int("k_exp_bits", self.k_exp_bits, 0, 4)
        _check_int("k_mant_bits", self.k_mant_bits, 0, 4)
        _check_int("v_exp_bits", self.v_exp_bits, 0, 3)

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
        from .lut import check_luts
        check_luts(self)
        if self.x_int_bits - 1 <= self.lazy_threshold + 1:
            raise InputError(f"x_int_bits {self.x_int_bits} leaves no range above lazy_threshold")
        if self.acc_bits is not None:
            _check_int("acc_bits", self.acc_bits, 2, 62)
            if self.acc_bits < self.acc_bits_min:
                raise InputError(
                    f"acc_bits {self.acc_bits} cannot hold {self.max_seq_len} keys of {self.p_bits}-bit p "
                    f"times {self.v_width}-bit v"
                    + (f" (data_bits {self.data_bits} + v_exp_max {self.v_exp_max})" if self.v_exp_max else "")
                    + f"; needs {self.acc_bits_min}")
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
        if self.c_shift_max + 1 > 62:
            raise InputError(
                f"score_bits {self.score_bits} + const_bits {self.const_bits} + the per-key K scale's "
                f"{self.k_mant_bits + 1 + self.k_exp_max} bits (k_mant_bits {self.k_mant_bits}, k_exp_bits "
                f"{self.k_exp_bits}) exceed 62 bits")

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
        """``[(bits, what)]``: the widest groups of bits one Amaranth netlist cell of ``block`` carries
        (:func:`fusioncim.core.buildable.widest_values`)."""
        return _widest_values(self, block)

    def check_buildable(self, block):
        """Raise ValueError if Amaranth cannot generate ``block`` from this config (:meth:`widest_values`)."""
        return _check_buildable(self, block)

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
        return ((self.max_seq_len * self.prob_max) << (self.lazy_threshold + self.v_width - 1)).bit_length() + 1

    @property
    def k_exp_max(self) -> int:
        """Largest per-key K exponent (0 without per-key K scales)."""
        return (1 << self.k_exp_bits) - 1

    @property
    def v_exp_max(self) -> int:
        """Largest per-key V exponent (0 without): the bits V, the accumulators and the output grow by."""
        return (1 << self.v_exp_bits) - 1

    @property
    def k_scale_bits(self) -> int:
        """Bits of one key's K scale (exponent and mantissa) in the KV stream and buffer."""
        return self.k_exp_bits + self.k_mant_bits

    @property
    def kv_scale_bits(self) -> int:
        """Scale bits beside each row in the KV buffer: one memory module serves K and V, so the wider of the two."""
        return max(self.k_scale_bits, self.v_exp_bits)

    @property
    def v_width(self) -> int:
        """Signed width of a V element after its key's exponent: ``data_bits + v_exp_max``."""
        return self.data_bits + self.v_exp_max

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
        """Signed width of a normalised output element: V's range after its exponent, plus the fraction."""
        return self.v_width + self.out_frac_bits

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
    def c_shift_max(self) -> int:
        """Largest per-row score-constant shift: ``score_bits + const_bits`` plus the per-key K scale's range."""
        return self.score_bits + self.const_bits + self.k_mant_bits + self.k_exp_max

    @property
    def c_shift_bits(self) -> int:
        """Width of the per-row score-constant shift (0 .. c_shift_max)."""
        return self.c_shift_max.bit_length()

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


def kv_buffer_bits(keys, head_dim, data_bits, scale_bits=0):
    """Bits of a KV buffer of ``keys`` keys: a K and a V word each, a row of ``head_dim`` elements of
    ``data_bits`` plus the key's ``scale_bits`` (``EngineConfig.kv_scale_bits``, hw/kv_sram.py)."""
    return 2 * keys * (head_dim * data_bits + scale_bits)


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
    # Small enough for cycle-by-cycle simulation of whole heads; the 5/4-bit exponent LUTs the default had
    # before issue 33 keep its Verilog small (the default's 7/5 are simulated by tests/test_softmax_rtl.py
    # and `make demo`).
    "test": EngineConfig(head_dim=16, rows=4, max_seq_len=256, sink_keys=2, diag_window=8, fine_lut_bits=5,
                         coarse_lut_bits=4),
    # LLaMA-3-8B attention: d = 128, 8192-token context.
    "llama3-8b": EngineConfig(head_dim=128, rows=16, max_seq_len=8192),
    # The default with per-key K and V scales and a fifth output fraction bit: the per-key mode, as
    # deployed (issue 33; docs/accuracy.md "Per-key scales").
    "per-key": EngineConfig(k_exp_bits=3, k_mant_bits=2, v_exp_bits=2, out_frac_bits=5),
}
