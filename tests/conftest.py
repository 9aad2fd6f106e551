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


def run_cli(*args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed `repro` entry point, as a user would. On a timeout its whole process
    group goes (the accelerate launcher and training workers too), not only `repro`."""
    import signal

    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(
        [str(REPRO), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    ) as child:  # fmt: skip
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if check and proc.returncode != 0:
        raise AssertionError(f"repro {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def cli():
    return run_cli
