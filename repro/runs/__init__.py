"""Runs: the run pipeline, its results and manifests, and comparisons with published records."""
