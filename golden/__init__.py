"""Bit-exact NumPy models of every block and of the whole engine (the numeric contract is docs/numerics.md)."""
