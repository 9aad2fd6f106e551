"""Strict JSON for the typed records stages hand each other (evaluation, run result, training
outcome): a record reads back only with exactly its own keys, or fails in one line naming
the file and the key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from repro.errors import ReproError


def exact_keys(data: Any, cls: type, where: str, *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """`data` as a mapping with exactly the fields of dataclass `cls` (`optional` ones may be absent)."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ReproError(f"{where}: unknown key '{key}'")
    for key in names:
        if key not in data and key not in optional:
            raise ReproError(f"{where}: missing key '{key}'")
    return data


def read(path: Path) -> Any:
    """A JSON file's content; unreadable or not JSON is one line naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReproError(f"{path}: {exc.strerror or 'unreadable'}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReproError(f"{path}: corrupt JSON") from None
