"""The run pipeline: plan, train, evaluate and record a run (and a local sweep of them)."""
