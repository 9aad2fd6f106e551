"""Expensive things the suite builds once and tests copy: trained tiny runs (conftest's session
fixtures), the previous main's run (tests/test_previous_runs.py).

- `once_per_session`: built at the first request of a pytest session, in a folder the session's
  xdist workers share (the first worker builds, the other waits on a file lock and reads it).
- `once_per_key`: built once for a key (a commit, the lock file) and kept across sessions in
  `$REPRO_TEST_BUILDS` (default `~/.cache/repro-test-builds`): for what only an old commit's code
  can make, which no change here can alter.

A build is marked complete when it ends: a killed session's half-built folder is never taken,
and is built again. `digest` lets a fixture check at the end that no test wrote into what it
shares."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    done = folder / ".built"
    with _locked(folder.with_name(folder.name + ".lock")):
        if done.exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # a build that was cut short
        folder.mkdir(parents=True)
        build(folder)  # in place: what it writes may name its own paths
        done.touch()
    return folder


def once_per_session(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` run once per pytest session (all its xdist workers); the folder."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    return _build_once(root / "builds" / name, build)


def once_per_key(name: str, key: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` run once for `key`, kept across sessions; the folder."""
    root = Path(os.environ.get("REPRO_TEST_BUILDS") or Path.home() / ".cache" / "repro-test-builds")
    return _build_once(root / f"{name}-{key}", build)


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, by relative path (the lock files of a run excluded)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".built")
    }


def copy(source: Path, dest: Path) -> Path:
    """A copy of a shared build for a test to change; `dest`."""
    shutil.copytree(source, dest, symlinks=True)
    return dest
