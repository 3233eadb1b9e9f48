"""Which configs Amaranth can generate: the widest netlist values of each block (``EngineConfig.check_buildable``).

Amaranth 0.5 numbers the bits of one netlist cell's output in 16 bits, so a module's inputs together, an
instance's outputs and one register must each stay within :data:`MAX_VALUE_BITS`.
"""

from __future__ import annotations

from .errors import InputError

__all__ = ["widest_values", "check_buildable", "MAX_VALUE_BITS", "VALUE_SLACK_BITS"]

MAX_VALUE_BITS = 1 << 16
# The control signals and counters beside the head_dim- and rows-sized groups measured under this many bits.
VALUE_SLACK_BITS = 1024


def widest_values(cfg, block):
    """``[(bits, what)]``: the widest groups of bits one Amaranth netlist cell of ``block`` carries.

    Amaranth 0.5 numbers the bits of one cell's output in 16 bits: a module's input ports together,
    an instance's outputs, one register each form such a group, and one over 65,536 bits stops the
    generator with an assertion. These are that design's head_dim- and rows-sized groups, from
    above; the control signals and counters beside them stay under :data:`VALUE_SLACK_BITS`
    (``tests/test_generate.py`` measures every module of generated designs against this).
    """
    d, R = cfg.head_dim, cfg.rows
    banks = 2 if cfg.double_buffer else 1
    ip = [(2 * d * cfg.data_bits, f"an IP-CIM row's Q and K ports (2 x head_dim {d} x data_bits {cfg.data_bits})"),
          (R * cfg.score_bits, f"the IP-CIM's scores (rows {R} x score_bits {cfg.score_bits})")]
    op = [(d * (cfg.acc_width + cfg.out_bits), f"the OP-CIM's outputs (head_dim {d} x (acc_width "
           f"{cfg.acc_width} + out_bits {cfg.out_bits}))"),
          (d * cfg.acc_width + R * cfg.sum_width, f"the normaliser's inputs (head_dim {d} x acc_width "
           f"{cfg.acc_width} + rows {R} x sum_width {cfg.sum_width})"),
          (banks * R * cfg.acc_width, f"an OP-CIM column ({banks} bank(s) x rows {R} x acc_width "
           f"{cfg.acc_width})")]
    sm = [(R * (cfg.sum_width + cfg.p_bits + cfg.x_bits), f"the softmax unit's outputs (rows {R} x "
           f"(sum_width {cfg.sum_width} + p_bits {cfg.p_bits} + x_bits {cfg.x_bits}))")]
    engine = [(3 * d * cfg.data_bits, f"the engine's Q, K and V ports (3 x head_dim {d} x data_bits "
               f"{cfg.data_bits})")]
    return {"ip_cim": ip, "op_cim": op, "softmax": sm}.get(block, ip + op + sm + engine)


def check_buildable(cfg, block):
    """Raise ValueError if Amaranth cannot generate ``block`` from this config (:meth:`widest_values`)."""
    bits, what = max(cfg.widest_values(block))
    if bits + VALUE_SLACK_BITS > MAX_VALUE_BITS:
        raise InputError(
            f"{block} cannot be generated: {what} is {bits:,} bits; Amaranth holds at most "
            f"{MAX_VALUE_BITS:,} bits in one netlist value, and the generator needs it to be at most "
            f"{MAX_VALUE_BITS - VALUE_SLACK_BITS:,} (room for {VALUE_SLACK_BITS:,} bits of control and "
            f"counters); lower head_dim, rows or max_seq_len (which sets acc_width and sum_width)")
    return cfg
