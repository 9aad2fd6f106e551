"""Training: losses, objectives, log-probs, the trainer, its launch and its trackers."""
