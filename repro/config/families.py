"""Model families (recipes/families/NAME.yaml), read and checked into repro.data.family.Family.

A setting names its family (`family: llama3`); the declaration says how the tokenizer and chat
template start, turn and end a sequence (repro.data.family explains each key). A setting that
names none (a user's recipe, an alignment-handbook config) gets one inferred from its tokenizer
when the tokenizer loads (repro.data.family.infer), recorded in the run like a declared one.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import check_choice, check_keys, coerce, read_yaml
from repro.data.family import ANSWER_TEXTS, APPEND_EOS, SYSTEM_TURNS, Family
from repro.errors import ReproError, unknown

FAMILIES = paths.RECIPES / "families"
_FIELDS = {f.name: f for f in dataclasses.fields(Family)}
_CHOICES = {"system_turn": SYSTEM_TURNS, "answer_text": ANSWER_TEXTS, "append_eos": APPEND_EOS}


def list_families() -> list[str]:
    return sorted(p.stem for p in FAMILIES.glob("*.yaml"))


def parse(data: Any, where: str) -> Family:
    """A family mapping: known keys, types and choices; `name` defaults to the file's stem."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping of family keys")
    check_keys(data, _FIELDS, where)
    hints = typing.get_type_hints(Family)
    values: dict[str, Any] = {}
    for name, fld in _FIELDS.items():
        if name not in data:
            if fld.default is dataclasses.MISSING:
                raise ReproError(f"{where}: missing required key '{name}'")
            continue
        value = data[name]
        if name == "stop":
            if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
                raise ReproError(f"{where}: stop: expected a non-empty list of tokens")
            values[name] = tuple(value)
            continue
        values[name] = coerce(value, hints[name], f"{where}: {name}")
        check_choice(values[name], _CHOICES.get(name), f"{where}: {name}")
    if values.get("bos") is None and (values.get("tokenizer_adds_bos") or values.get("template_writes_bos")):
        raise ReproError(f"{where}: a family without a BOS token cannot add or write one")
    return Family(**values)


def load(name_or_path: str) -> Family:
    """A family by name (recipes/families/NAME.yaml) or from a YAML file."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")):
        data = read_yaml(path)
        if isinstance(data, dict):
            data.setdefault("name", path.stem)
        return parse(data, str(path))
    if name_or_path not in list_families():
        raise unknown("model family", name_or_path, list_families())
    data = read_yaml(FAMILIES / f"{name_or_path}.yaml")
    if isinstance(data, dict):
        data.setdefault("name", name_or_path)
    return parse(data, str(FAMILIES / f"{name_or_path}.yaml"))
