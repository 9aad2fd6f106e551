"""SHA-256 of artifacts on disk: a file's bytes, a model folder's weights. One definition, so a
hash recorded by training, evaluation, data generation and a run's manifest means one thing.
Standard library only: env/locks.py reaches it (through repro.stack.lockfile) before any
virtual environment exists."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from repro.errors import ReproError

# The files that hold a model's weights (safetensors, or PyTorch's pickles).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Pickles beside the weights that are not weights: the Trainer's arguments (they hold the output
# path, so byte-identical weights saved to two folders would hash apart) and training state.
NOT_WEIGHTS = ("training_args.bin", "optimizer", "scheduler", "scaler", "rng_state")

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


def path_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (each one's path inside it and bytes, in
    path order): what a file or folder given as data holds, wherever it is."""
    target = Path(path)
    if not target.is_dir():
        return file_sha256(target)
    digest = hashlib.sha256()
    for file in sorted(p for p in target.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(target)).encode() + b"\0")
        _update(digest, file)
        digest.update(b"\0")
    return digest.hexdigest()


def weight_files(folder: Path) -> list[Path]:
    """The files of a model folder that hold its weights: the safetensors files when there are
    any (a model saved by transformers has one format), else the PyTorch pickles that are not
    training state (NOT_WEIGHTS)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or [p for p in files if not p.name.startswith(NOT_WEIGHTS)]


def weights_sha256(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the weight files of a model directory (names and bytes, in name order): the
    same weights give the same hash wherever they were saved."""
    folder = Path(model_dir)
    files = weight_files(folder)
    if not files:
        raise ReproError(f"{folder}: no weight files to hash for the reference model")
    return _digest(files)


# Files beside a model's weights that change what it computes or how its text is tokenized:
# its config, tokenizer, chat template and generation defaults (not a trainer's state).
MODEL_FILE_SUFFIXES = (".json", ".model", ".txt", ".jinja", ".tiktoken")
NOT_MODEL_FILES = ("trainer_state.json",)


def model_sha256(model_dir: str | os.PathLike) -> str | None:
    """SHA-256 of what a local model folder holds for training: its weights (weight_files) and
    its config, tokenizer and chat-template files (names and bytes); None when it holds no
    weights."""
    folder = Path(model_dir)
    weights = weight_files(folder)
    if not weights:
        return None
    others = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES and p.name not in NOT_MODEL_FILES
    ]
    return files_sha256(folder, sorted([*weights, *others]))


def files_sha256(folder: Path, files: list[Path]) -> str:
    """SHA-256 over `files` below `folder` (each one's path inside it and bytes, in the order
    given), hashed once per process while none of them changes (size and modification time):
    a sweep resolves the same local model or dataset once per grid point, and weights are
    gigabytes."""
    signature = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _files_digest(str(Path(folder).resolve()), signature)


@functools.lru_cache(maxsize=8)
def _files_digest(folder: str, signature: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in signature:
        digest.update(name.encode() + b"\0")
        _update(digest, Path(folder) / name)
        digest.update(b"\0")
    return digest.hexdigest()


def legacy_weights_sha256(model_dir: str | os.PathLike) -> str | None:
    """The hash repro recorded before issue 32 (every .safetensors/.bin/.pt/.pth file, the
    Trainer's training_args.bin too): a run recorded with it is still recognised as the same."""
    folder = Path(model_dir)
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    return _digest(files) if files else None


def _digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        _update(digest, path)
    return digest.hexdigest()
