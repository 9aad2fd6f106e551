"""Libraries' warnings that say nothing a repro user can act on, filtered once for every process
repro starts (the CLI and each training rank). repro's own warnings are never filtered.

Before this, `train.log` of a 32-step tiny run held 54 KB of them: torch's deprecation of the
collectives DeepSpeed ZeRO-3 calls (two per step and rank), and the DataLoader's pin_memory
note on a machine without an accelerator."""

from __future__ import annotations

import logging
import warnings

# (category, regular expression matched at the start of the message, why it is not the user's)
KNOWN: tuple[tuple[type[Warning], str, str], ...] = (
    (UserWarning, "pkg_resources is deprecated", "alpaca-eval 0.6.2 imports it (setuptools < 81 is pinned)"),
    (FutureWarning, r"`torch\.distributed\.(reduce_scatter_tensor|all_gather_into_tensor)` is deprecated",
     "DeepSpeed 0.18's ZeRO-3 calls them, twice a step on every rank"),
    (UserWarning, "'pin_memory' argument is set as true but no accelerator is found",
     "the Trainer's DataLoader on a CPU-only machine"),
    (FutureWarning, r"`torch\.distributed\.reduce_op` is deprecated",
     "vLLM 0.32 touches it when its engine starts in the process (twice per evaluation)"),
)  # fmt: skip


# Loggers whose warnings are the same kind of note, logged instead of warned: (logger, why).
KNOWN_LOGGERS: tuple[tuple[str, str], ...] = (
    ("torch._library.triton", "'Triton not available': a CPU build of torch has no Triton, and vLLM's CPU "
     "engine asks for it as it starts (once per engine)"),
)  # fmt: skip


def silence() -> None:
    """Install the filters (idempotent: warnings.filterwarnings replaces an equal filter)."""
    for category, message, _why in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, _why in KNOWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
