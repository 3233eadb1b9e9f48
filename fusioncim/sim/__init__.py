"""Running the generated engine: workloads, the host program, cocotb and native Verilator runs, checks against golden, netlist equivalence (docs/engine.md)."""
