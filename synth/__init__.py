"""Yosys area and event-count energy models (docs/energy.md)."""
