"""repro: a reproducibility and benchmark harness for preference optimization (SimPO, DPO, ...)."""

__version__ = "0.1.0"
