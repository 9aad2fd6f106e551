"""The suite's warm command runner (tests/warm_cli.py) against the installed entry point run
fresh. Most tests run `repro` through `run_cli`, which forks each command from a warm server:
if a forked command said, wrote or exited otherwise than a fresh process, those tests would
prove nothing about the real command. Oracle: the same command as a fresh process, in the same
working directory, compared exactly (exit status, stdout, stderr, every file it wrote; the one
free port a launch plan draws is left out)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from repro import paths
from tests import warm_cli
from tests.conftest import run_cli

CASES = {
    "output": ("show", "tiny", "--method", "simpo", "--format", "json"),
    "a recipe in the working directory": ("show", "mytiny.yaml", "--method", "dpo"),
    "one-line error": ("show", "tiny", "--method", "simpoo"),
    "usage error": ("show", "tiny", "--no-such-option"),
    "bad --set": ("show", "tiny", "--set", "beta=0"),
    "written files": (
        "train",
        "tiny",
        "--method",
        "simpo",
        "--dry-run",
        "--output",
        "out",
        "--planned-files",
        "plan",
    ),
}


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def server():
    for _ in range(2):  # an environment's second command starts its server
        found = warm_cli.server_for(_env())
    if found is None:
        pytest.skip("commands run fresh here (REPRO_TEST_FRESH_CLI=1, or the server could not start)")
    return found


def _written(folder: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return {k: re.sub(rb"main_process_port: \d+", b"main_process_port: N", v) for k, v in files.items()}


@pytest.mark.parametrize("args", CASES.values(), ids=CASES.keys())
def test_a_forked_command_does_what_a_fresh_one_does(server, args, tmp_path, monkeypatch):
    work = tmp_path / "work"
    outcomes = []
    for side in ("fresh", "warm"):
        work.mkdir()
        shutil.copy(paths.SETTINGS / "tiny.yaml", work / "mytiny.yaml")
        monkeypatch.chdir(work)
        if side == "fresh":
            proc = run_cli(*args, fresh=True)
        else:
            assert server.matches(_env())
            proc = server.run(list(args), _env(), str(work), timeout=120)
        outcomes.append((proc.returncode, proc.stdout, proc.stderr, _written(work)))
        monkeypatch.chdir(tmp_path)
        work.rename(tmp_path / side)
    assert outcomes[1] == outcomes[0]


def test_a_runtime_variable_reaches_the_forked_command(server, tmp_path, monkeypatch):
    """COLUMNS is read when a command draws a table: a server started with 200 hands each
    command its own width."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))  # no model fetched in between
    said = {}
    for columns in ("200", "60"):
        monkeypatch.setenv("COLUMNS", columns)
        env = {**os.environ}
        assert server.matches(env)
        warm = server.run(["models", "list"], env, str(tmp_path), timeout=120)
        command = [str(warm_cli.REPRO), "models", "list"]
        fresh = subprocess.run(command, capture_output=True, text=True, env=env)
        assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
        said[columns] = warm.stdout
    assert said["60"] != said["200"]


def test_an_import_time_variable_gets_a_process_of_its_own(server):
    """huggingface_hub fixes its cache from HOME when it is imported: a command with another
    HOME is never forked from this server."""
    assert not server.matches({**_env(), "HOME": "/nonexistent"})


def test_a_timeout_kills_the_command_and_its_group(server, tmp_path):
    """As subprocess.run: TimeoutExpired, with the command gone; the server runs the next one."""
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(["status", str(tmp_path), "--watch", "1"], _env(), str(tmp_path), timeout=3)
    with pytest.raises(ProcessLookupError):
        os.kill(server.last_pid, 0)
    after = server.run(["show", "tiny", "--method", "simpo"], _env(), str(tmp_path), timeout=120)
    assert after.returncode == 0
