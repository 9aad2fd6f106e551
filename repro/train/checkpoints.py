"""Resumable checkpoints that a kill cannot leave half-written.

The Trainer writes a checkpoint in several steps (weights, optimizer and scheduler, RNG state,
trainer_state.json last), each rank its own ZeRO-3 shards. A process killed in the middle left
a `checkpoint-N/` that looked like the latest one and could never be resumed from
(`FileNotFoundError: checkpoint-N/trainer_state.json`, on every rerun). Here a checkpoint is
written into `trainer/.staging/checkpoint-N/` and, once every rank has written its part, moved
to `trainer/checkpoint-N/` in one rename (`publish`): a `checkpoint-N/` is complete or absent.
Resuming takes the last complete checkpoint; what a kill left (the staging folder, or a
checkpoint without its trainer state, written by an older repro) is removed first.

Tests kill a run at one point of a checkpoint write through `$REPRO_TEST_KILL_AT`
(`repro.pauses.kill_at`, the library's one place for test switches).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

STAGING = ".staging"
STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint without it is incomplete
_NAME = re.compile(r"^checkpoint-(\d+)$")


def complete(folder: Path) -> bool:
    return (folder / STATE).is_file()


def numbered(trainer_dir: Path) -> list[tuple[int, Path]]:
    """The checkpoint-N folders of `trainer_dir`, by step."""
    if not trainer_dir.is_dir():
        return []
    found = [(int(m[1]), p) for p in trainer_dir.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted(found)


def last_complete(trainer_dir: Path) -> Path | None:
    """The checkpoint to resume from: the last one with its trainer state."""
    done = [p for _, p in numbered(trainer_dir) if complete(p)]
    return done[-1] if done else None


def leftovers(trainer_dir: Path) -> list[Path]:
    """What an interrupted write left: the staging folder, and checkpoints without their state."""
    found = [p for _, p in numbered(trainer_dir) if not complete(p)]
    if (trainer_dir / STAGING).exists():
        found.append(trainer_dir / STAGING)
    return found


def remove_leftovers(trainer_dir: Path) -> list[Path]:
    """Remove what an interrupted write left (rank 0, before training); the removed paths."""
    gone = leftovers(trainer_dir)
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


def publish(staged: Path, final: Path) -> None:
    """Move a fully written checkpoint to its place in one rename (same filesystem)."""
    if final.exists():  # an incomplete one of the same step, left by an older repro
        shutil.rmtree(final)
    os.replace(staged, final)
