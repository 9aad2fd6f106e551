"""Checking user-supplied values: types, ranges, choices, unknown keys, and YAML files.

Every failure is a ReproError (or UsageError) naming the place and, for keys, the closest
valid one, so a typo in a recipe costs one line, not an hour.
"""

from __future__ import annotations

import copy
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from repro.errors import ReproError, UsageError, closest, unknown


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against a simple type annotation; accept YAML's '1e-6' strings as floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        return coerce(value, inner[0], where)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ReproError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ReproError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return list(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ReproError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        if isinstance(value, str):  # PyYAML reads 1e-6 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif tp is str:
        if isinstance(value, str) and value:
            return value
    else:  # pragma: no cover - only the annotations above are used
        return value
    raise ReproError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def check_range(value: Any, lo: float | None, hi: float | None, where: str) -> None:
    if lo is not None and value < lo:
        raise ReproError(f"{where}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ReproError(f"{where}: {value} is above the maximum {hi}")


def check_choice(value: Any, choices: tuple[str, ...] | None, where: str) -> None:
    if choices and value is not None and value not in choices:
        raise unknown(f"value for {where}", str(value), choices)


def check_keys(data: dict, allowed: typing.Iterable[str], where: str) -> None:
    """Unknown keys are an error naming the closest valid key (a typo must not pass silently)."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            hint = closest(str(key), allowed)
            suffix = f" (did you mean '{hint}'?)" if hint else f"; valid: {', '.join(sorted(allowed))}"
            raise UsageError(f"{where}: unknown key '{key}'{suffix}")


# libyaml when PyYAML was built with it (same documents, parsed several times faster)
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LOADER(_BASE_LOADER):  # noqa: N801 - named as the loader it was
    """The safe loader, refusing a key given twice in one mapping: YAML keeps the last one, so
    `seed: 42` then `seed: 7` in a recipe would silently train seed 7."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201 - PyYAML's signature
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key is PyYAML's own error to raise
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_PARSED: dict[tuple[str, int, int], Any] = {}


def parse_yaml(text: str, where: Path | str) -> Any:
    """YAML text read from `where`; invalid YAML is one line naming the file and the line."""
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ReproError(_invalid(where, exc)) from None


def _invalid(where: Path | str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or "invalid YAML"
    return f"{where}: invalid YAML{at}: {problem}"


def read_yaml(path: Path) -> Any:
    """The parsed file; a file read before and unchanged since (same mtime and size) is not
    parsed again (a sweep resolves every grid point from the same recipes). Callers get a copy."""
    try:
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
        if key not in _PARSED:
            with open(path, encoding="utf-8") as fh:
                _PARSED[key] = yaml.load(fh, Loader=_LOADER)  # noqa: S506 (a safe loader)
        return copy.deepcopy(_PARSED[key])
    except FileNotFoundError:
        raise ReproError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReproError(f"{path}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise ReproError(f"{path}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        raise ReproError(_invalid(path, exc)) from None
