"""IP packaging: Verilog generation (hierarchical, cached), the port table, the register map's exports, the FuseSoC core (docs/integration.md)."""
