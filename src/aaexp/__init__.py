"""aaexp: config-driven experiments for neural audio research."""

__version__ = "0.1.0"
