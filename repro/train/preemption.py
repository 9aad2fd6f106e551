"""Stop training cleanly when the cluster asks: a checkpoint now, then exit for a requeue.

SLURM sends its warning signal (`#SBATCH --signal=B:USR1@SECONDS`) to the batch shell only;
the shell answers by creating the run's stop file (repro.runs.cluster.slurm writes that trap). Every
rank looks for the file after each optimizer step and the ranks agree through one all-reduce,
so they all stop after the same step: the Trainer saves a full checkpoint (weights, optimizer,
RNG and data position) and returns. The worker then writes `preempted.json` instead of a
model, and the requeued job resumes from that checkpoint through the ordinary resume path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import TrainerCallback

STOP_FILE_ENV = "REPRO_STOP_FILE"  # set by the SLURM job script; absent in local runs
MARKER = "preempted.json"  # in the training directory: stopped early, resumable


def stop_file() -> Path | None:
    value = os.environ.get(STOP_FILE_ENV)
    return Path(value) if value else None


class StopOnRequest(TrainerCallback):
    """Checkpoint and stop after the step at which any rank sees the stop file."""

    def __init__(self, path: Path):
        self.path = path
        self.stopped_at: int | None = None
        self.max_steps: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        requested = self.path.exists()
        if dist.is_initialized() and dist.get_world_size() > 1:  # every rank stops at the same step
            flag = torch.tensor([int(requested)], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            requested = bool(flag.item())
        if requested and self.stopped_at is None:
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at, self.max_steps = state.global_step, state.max_steps
        return control

    @property
    def preempted(self) -> bool:
        """Stopped before the last step (a request at the last step changes nothing)."""
        return self.stopped_at is not None and self.stopped_at < (self.max_steps or 0)
