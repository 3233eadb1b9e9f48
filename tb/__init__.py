"""cocotb testbench modules, one per block; run through fusioncim.sim.rtlsim, not collected by pytest."""
