"""Paths the user hands us: check them early and read them with one-line errors.

Every command that takes a file, a folder, a model or an output location checks it here
while its command line is parsed (repro.cli.common.path_option), so a directory given for a
file, a file given for a folder, an unwritable output, an empty file or binary garbage all
end as the same kind of one-line `ReproError` instead of a Python traceback, and before any
expensive work starts. (repro.io reads and writes the files the stages themselves produce.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from repro.errors import ReproError

# Suffixes matplotlib can write; a plot path must end in one of them.
IMAGE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp", ".eps", ".ps", ".tif", ".tiff")


def existing_file(path: Path | str, what: str = "file") -> Path:
    """`path`, which must be a readable regular file (not a folder)."""
    path = Path(path)
    if not path.exists():
        raise ReproError(f"{path}: no such file ({what})")
    if path.is_dir():
        raise ReproError(f"{path}: is a directory, expected a file ({what})")
    if not os.access(path, os.R_OK):
        raise ReproError(f"{path}: not readable ({what})")
    return path


def existing_dir(path: Path | str, what: str = "folder") -> Path:
    """`path`, which must be an existing folder."""
    path = Path(path)
    if not path.exists():
        raise ReproError(f"{path}: no such directory ({what})")
    if not path.is_dir():
        raise ReproError(f"{path}: not a directory ({what})")
    return path


def existing_path(path: Path | str, what: str = "file or folder") -> Path:
    """`path`, which must exist (a file or a folder)."""
    path = Path(path)
    if not path.exists():
        raise ReproError(f"{path}: no such file or directory ({what})")
    return path


def local_or_hub(
    value: str, what: str = "folder or hub id", *, file_suffixes: tuple[str, ...] = (), split: bool = False
) -> str:
    """A model, tokenizer or dataset named by a local folder or a Hugging Face hub id.

    An existing folder is local; an existing file only when its suffix is in `file_suffixes`.
    A value that can only be a path (starts with /, ., ~ or ends in one of `file_suffixes`;
    hub ids never do) must exist. Anything else is left to the hub. With `split`, a trailing
    ':SPLIT' (DATASET:train_prefs) is not part of the path."""
    name = value
    if split and ":" in value and not Path(value).exists():
        name = value.rsplit(":", 1)[0]
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() or (path.is_file() and path.suffix in file_suffixes):
            return value
        kinds = "a folder" + "".join(f" or a {s} file" for s in file_suffixes)
        gguf = f"; a GGUF file is imported first: repro models import {value} -o DIR" * (
            path.suffix == ".gguf"
        )
        raise ReproError(f"{value}: is a file, expected {kinds} or a hub id ({what}){gguf}")
    if name.startswith(("/", ".", "~")) or (file_suffixes and path.suffix in file_suffixes):
        raise ReproError(f"{value}: no such file or directory ({what})")
    return value


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(folder: Path, target: Path, what: str) -> None:
    if not folder.is_dir():
        raise ReproError(f"{target}: cannot be created, {folder} is not a directory ({what})")
    # os.access, not a probe file: a check must not write anything (dry runs stay dry); root
    # passes os.access everywhere, so kernel filesystems and read-only mounts are asked for too
    from repro import filesystems

    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReproError(f"{target}: not writable ({what})")
    if reason := filesystems.unwritable_reason(folder):
        raise ReproError(f"{target}: cannot be written, {reason} ({what})")


def output_dir(path: Path | str, what: str = "output folder") -> Path:
    """`path` as a folder we may create or write into. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ReproError(f"{path}: is a file, expected a directory ({what})")
    _writable_dir(_nearest_existing(path), path, what)
    return path


def output_file(
    path: Path | str,
    what: str = "output file",
    *,
    suffixes: tuple[str, ...] | None = None,
    name_in_dir: str | None = None,
) -> Path:
    """`path` as a file we may write. A folder becomes `folder/name_in_dir` when a name is
    given; the folder the file goes into must exist (a typo should not create a tree)."""
    path = Path(path)
    if path.is_dir():
        if name_in_dir is None:
            raise ReproError(f"{path}: is a directory, expected a file name ({what})")
        path = path / name_in_dir
    if suffixes is not None and path.suffix.lower() not in suffixes:
        shown = path.suffix or "no suffix"
        raise ReproError(f"{path}: {shown} is not one of {', '.join(suffixes)} ({what})")
    if path.is_dir():
        raise ReproError(f"{path}: is a directory, expected a file name ({what})")
    parent = path.absolute().parent
    if not parent.exists():
        raise ReproError(f"{path}: folder {parent} does not exist ({what})")
    _writable_dir(parent, path, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise ReproError(f"{path}: not writable ({what})")
    return path


def read_text(path: Path | str, what: str = "file") -> str:
    """The UTF-8 text of a user-given file."""
    path = existing_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReproError(f"{path}: not UTF-8 text ({what})") from None
    except OSError as exc:
        raise ReproError(f"{path}: cannot read ({exc.strerror or type(exc).__name__}; {what})") from None


def read_json(path: Path | str, what: str = "JSON file") -> Any:
    """A JSON document; an empty file or invalid JSON is an error naming the line."""
    text = read_text(path, what)
    if not text.strip():
        raise ReproError(f"{path}: empty file ({what})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReproError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}; {what})") from None
