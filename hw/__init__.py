"""Amaranth generators for the engine's blocks: one module per block (docs/architecture.md)."""
