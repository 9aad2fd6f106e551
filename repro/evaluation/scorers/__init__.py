"""Scoring rules of the published benchmarks, each a small pure module with its formula."""
