"""Runs: their record (results/), reading them (analysis/), making them (pipeline/), and on a
cluster (cluster/)."""
