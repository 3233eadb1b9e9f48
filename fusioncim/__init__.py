"""fusioncim: an open RTL generator and bit-exact models for FusionCIM-style CIM attention."""

__version__ = "0.1.0"
