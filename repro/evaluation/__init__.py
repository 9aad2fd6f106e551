"""Evaluation: generation, judging and the benchmarks' scoring rules."""
