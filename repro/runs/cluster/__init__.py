"""The SLURM pipeline, its job scripts and stage jobs, and `repro status`."""
