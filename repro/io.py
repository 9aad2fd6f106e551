"""Files as every stage writes and reads them: atomic JSON, and JSON lines that survive a kill.

A reader never sees a torn JSON file (write to a temporary name, then rename). JSON-lines
files grow one complete line at a time, flushed to disk, so a killed writer leaves at most
one torn last line, which `read_jsonl(..., bad="stop")` drops before the writer resumes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.errors import ReproError


class BadLine:
    """A line that is not JSON, kept in place (bad="keep") so the caller can count and skip it."""

    def __init__(self, number: int):
        self.number = number


def _finite(data: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers and other tools reject them."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def dumps(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(_finite(data), indent=indent, ensure_ascii=False, default=str, allow_nan=False)


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    """Write atomically: the file is either the old one or the new one, never half of either."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(dumps(data, indent=indent), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is missing or not JSON (a stage that has not finished)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_jsonl(path: Path, *, bad: str = "raise") -> list[Any]:
    """Rows of a JSON-lines file. A line that is not JSON: `raise` one error naming the line,
    `keep` a BadLine in its place, or `stop` there (a torn tail left by a killed writer)."""
    path = Path(path)
    if path.is_dir():
        raise ReproError(f"{path}: is a directory, expected a JSON-lines file")
    rows: list[Any] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    if bad == "raise":
                        raise ReproError(f"{path}:{number}: not valid JSON") from None
                    if bad == "stop":
                        break
                    rows.append(BadLine(number))
    except FileNotFoundError:
        if bad == "stop":  # nothing written yet
            return []
        raise ReproError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ReproError(f"{path}: not UTF-8 text") from None
    return rows


def append_jsonl(path: Path, items: Iterable[Any]) -> None:
    """Append complete lines and flush them to disk before returning."""
    with open(path, "a", encoding="utf-8") as fh:
        for item in items:
            fh.write(dumps(item, indent=None) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_jsonl(path: Path, items: Iterable[Any]) -> None:
    """Replace the file atomically with `items` (drops a torn tail before appending resumes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(dumps(i, indent=None) + "\n" for i in items), encoding="utf-8")
    os.replace(tmp, path)
