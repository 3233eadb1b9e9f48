"""Performance and energy models: the dataflow traffic model, the FusionCIM-vs-baseline report, design-space sweeps (docs/energy.md)."""
