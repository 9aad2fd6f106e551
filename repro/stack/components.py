"""The software stack at a glance: torch, the CUDA runtime, vLLM, flash-attn, DeepSpeed,
transformers and TRL as a lock pins them, as this environment has them, and as the paper's
environment.yml pinned them (`repro env show`). The components are data: env/stack.yaml."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError
from repro.stack import lockfile

STACK_FILE = paths.ENV / "stack.yaml"


@dataclass(frozen=True)
class Component:
    component: str
    lock: str  # "name version", with a note for optional packages; "" when the lock has none
    installed: str
    paper: str


def _components(path: Path) -> list[tuple[str, list[str]]]:
    data = read_yaml(path)
    if not isinstance(data, list) or not all(isinstance(d, dict) and "packages" in d for d in data):
        raise ReproError(f"{path}: expected a list of {{component, packages}}")
    return [(str(d["component"]), [lockfile.normalize(p) for p in d["packages"]]) for d in data]


def _first(packages: list[str], versions: dict[str, str], python: str | None = None) -> str:
    for name in packages:
        if name == "python" and python:
            return python
        if name in versions:
            return f"{versions[name]}" if len(packages) == 1 else f"{name} {versions[name]}"
    return ""


def show(lock: str | Path | None, installed: dict[str, str], paper: dict[str, object]) -> list[Component]:
    """One row per component of env/stack.yaml."""
    pinned = lockfile.read(lock)
    lock_versions = pinned.versions()
    optional = {name: f"{version} (optional)" for name, (version, _) in pinned.optional.items()}
    paper_versions = {lockfile.normalize(k): str(v) for k, v in dict(paper.get("pins", {})).items()}
    rows = []
    for component, packages in _components(STACK_FILE):
        in_lock = _first(packages, lock_versions, lockfile.PYTHON) or _first(packages, optional)
        rows.append(
            Component(
                component,
                in_lock,
                _first(packages, installed, platform.python_version()),
                _first(packages, paper_versions, str(paper.get("python", ""))),
            )
        )
    return rows
