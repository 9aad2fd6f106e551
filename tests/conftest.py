"""Shared fixtures: the shared/ folder (skip cleanly when absent) and the installed CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from repro import paths  # noqa: E402

REPRO = Path(sys.executable).parent / "repro"


@pytest.fixture(scope="session")
def shared() -> Path:
    found = paths.shared_dir()
    if found is None:
        pytest.skip("shared/ is absent (set REPRO_SHARED or place it beside the checkout)")
    return found


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """Run the installed `repro` entry point, as a user would."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([str(REPRO), *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"repro {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli
