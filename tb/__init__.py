"""cocotb testbench modules (issues 3 to 6); not collected by pytest."""
