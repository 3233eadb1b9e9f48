"""Yosys area and event-count energy models (issue 7)."""
