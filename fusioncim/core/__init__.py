"""The facts every layer reads: the config and its rules, the cycle schedule and tiling, the counters, the exponent LUT, user errors, files and the cache (docs/architecture.md)."""
