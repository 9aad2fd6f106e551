"""A model's weights hash (repro.hashing.weights_sha256): the same weights give the same hash
wherever they were saved (issue 32, 1.5: the same seed-7 run trained into two --results folders
had two `weights_sha256`, because the Trainer's training_args.bin, which holds the output path,
was hashed with the weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro import hashing
from repro.errors import ReproError


def save(folder: Path, seed: int = 0) -> Path:
    """A tiny model saved as the trainer leaves it: safetensors weights beside the Trainer's
    pickled arguments (output_dir inside)."""
    import torch
    from transformers import TrainingArguments

    from repro import tiny

    tiny.build_model(64, seed=seed).save_pretrained(folder)
    torch.save(TrainingArguments(output_dir=str(folder), report_to=[]), folder / "training_args.bin")
    return folder


def test_the_same_weights_hash_the_same_wherever_they_were_saved(tmp_path):
    a, b = save(tmp_path / "results-a" / "model"), save(tmp_path / "results-b" / "model")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "training_args.bin").read_bytes() != (b / "training_args.bin").read_bytes()
    assert hashing.weights_sha256(a) == hashing.weights_sha256(b)
    assert hashing.legacy_weights_sha256(a) != hashing.legacy_weights_sha256(b)  # the old hash differed
    assert hashing.weights_sha256(save(tmp_path / "other", seed=1)) != hashing.weights_sha256(a)


def test_pickled_weights_count_and_training_state_does_not(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"weights")
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state_0.pth"):
        (folder / name).write_bytes(name.encode())
    first = hashing.weights_sha256(folder)
    (folder / "optimizer.pt").write_bytes(b"another state")
    assert hashing.weights_sha256(folder) == first
    (folder / "pytorch_model.bin").write_bytes(b"other weights")
    assert hashing.weights_sha256(folder) != first
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "training_args.bin").write_bytes(b"x")
    with pytest.raises(ReproError, match="no weight files"):
        hashing.weights_sha256(empty)
