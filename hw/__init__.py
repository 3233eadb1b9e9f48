"""Amaranth generators for the engine's blocks (issues 3 to 6)."""
