"""SHA-256 of artifacts on disk: a file's bytes, a model folder's weights. One definition, so a
hash recorded by training, evaluation, data generation and a run's manifest means one thing.
Standard library only: env/locks.py reaches it (through repro.stack.lockfile) before any
virtual environment exists."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from repro.errors import ReproError

# The files that hold a model's weights (safetensors, or PyTorch's pickles).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

_BLOCK = 1 << 20  # read in 1 MiB blocks: weight files are gigabytes


def _update(digest: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    _update(digest, Path(path))
    return digest.hexdigest()


def file_sha256_or_none(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes; None when there is no such file."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def weights_sha256(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the weight files of a model directory (names and bytes, in name order)."""
    folder = Path(model_dir)
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise ReproError(f"{folder}: no weight files to hash for the reference model")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        _update(digest, path)
    return digest.hexdigest()
