"""cocotb testbench modules, one per block; run through fusioncim.rtlsim, not collected by pytest."""
