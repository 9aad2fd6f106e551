"""A run killed while it writes a checkpoint resumes from the last complete one, and its
training processes die with it (issue 32, 2.1 and 2.2).

Before: `kill -9` right after `checkpoint-8/` appeared left a folder without trainer_state.json
that every rerun took as the latest checkpoint and failed on (`FileNotFoundError`) for good; the
two ranks, each in a session of its own, outlived `kill -9 -- -PGID` of `repro run` and kept
writing into the run folder while a rerun took its lock.

The kills are real SIGKILLs of the launcher's whole process group, fired from inside the
checkpoint write (repro.pauses.kill_at, set by REPRO_TEST_KILL_AT for tests only)
at four points: weights written; optimizer written; everything written but not published;
published but older checkpoints not yet rotated. A checkpoint left half-written by an older
repro (no trainer_state.json) is planted too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import pauses
from repro.train import checkpoints, lifetime
from tests.conftest import REPRO, run_cli

ARGS = ("train", "tiny", "--method", "simpo", "--max-steps", "24")  # checkpoints at 8, 16 and 24


def alive(run_file: Path) -> list[int]:
    """Processes whose command line names this run's run.json (the launcher and its ranks)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(run_file) in cmdline:
            found.append(int(proc.name))
    return found


def killed_at(out: Path, point: str) -> str:
    """`repro train` killed with SIGKILL at `point` (PHASE:STEP); the checkpoint it resumed from."""
    env = {**os.environ, pauses.KILL_ENV: point}
    proc = subprocess.Popen([str(REPRO), *ARGS, "--output", str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.wait(timeout=900) == -9, f"not killed at {point}"
    deadline = time.time() + 20
    while alive(out / "run.json") and time.time() < deadline:
        time.sleep(0.2)
    assert alive(out / "run.json") == [], f"training processes outlived the kill at {point}"
    assert not (out / "metrics.json").exists()
    resumed = [line for line in (out / "train.log").read_text().splitlines() if "REPRO_RESUMED_FROM" in line]
    return resumed[-1].split()[-1]


@pytest.mark.e2e
def test_a_run_killed_inside_a_checkpoint_write_resumes_from_the_last_complete_one(tmp_path):
    out = tmp_path / "train"
    trainer = out / "trainer"
    assert killed_at(out, "model:16") == "none"
    assert checkpoints.last_complete(trainer).name == "checkpoint-8"
    assert not (trainer / "checkpoint-16").exists()  # only the staging folder holds its part
    assert killed_at(out, "optimizer:16") == "checkpoint-8"
    assert killed_at(out, "state:16") == "checkpoint-8"
    assert not (trainer / "checkpoint-16").exists()
    assert killed_at(out, "published:16") == "checkpoint-8"
    assert checkpoints.last_complete(trainer).name == "checkpoint-16"
    # what an older repro left when killed mid-write: a checkpoint without its trainer state
    shutil.copytree(trainer / "checkpoint-16", trainer / "checkpoint-20")
    (trainer / "checkpoint-20" / "trainer_state.json").unlink()
    done = run_cli(*ARGS, "--output", str(out), check=True)
    assert "done: 24 steps (8 after resuming at 16) in " in " ".join(done.stderr.split())  # this launch
    metrics = json.loads((out / "metrics.json").read_text())
    assert Path(metrics["resumed_from"]).name == "checkpoint-16"
    log = (out / "train.log").read_text()
    assert "REPRO_RESUMED_FROM checkpoint-16" in log and "removed checkpoint-20" in log
    steps = [h["step"] for h in metrics["log_history"] if "loss" in h and "eval_loss" not in h
             and "train_loss" not in h]  # fmt: skip
    assert steps == sorted(set(steps)) == [5, 10, 15, 20]  # no step lost or logged twice
    assert [p.name for p in checkpoints.leftovers(trainer)] == []
    assert (out / "model" / "model.safetensors").exists()
    # each killed attempt's log is kept beside the last one's (a resume used to write over it)
    earlier = sorted(out.glob("train.log.*"), key=lambda p: int(p.suffix[1:]))
    assert [p.name for p in earlier] == [f"train.log.{n}" for n in range(1, 5)]
    assert (
        "REPRO_RESUMED_FROM none" in earlier[0].read_text() and "REPRO_RESUMED_FROM" in earlier[3].read_text()
    )


def test_last_complete_skips_what_a_kill_left(tmp_path):
    for step, state in ((4, True), (8, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state:
            (folder / checkpoints.STATE).write_text("{}")
    (tmp_path / checkpoints.STAGING / "checkpoint-16").mkdir(parents=True)
    assert checkpoints.last_complete(tmp_path).name == "checkpoint-8"
    assert sorted(p.name for p in checkpoints.remove_leftovers(tmp_path)) == [".staging", "checkpoint-12"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-8"]


def test_a_rank_dies_with_its_parent(tmp_path):
    """The parent-death signal: a child that asked for it is killed when its parent is."""
    pid_file = tmp_path / "child.pid"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'from repro.train import lifetime; "
        "lifetime.die_with_parent(); import time; time.sleep(120)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    time.sleep(1.0)  # the child has asked for the signal by now
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while Path(f"/proc/{child}").exists() and time.time() < deadline:
        time.sleep(0.1)
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "zombie" in status.read_text(), "the child outlived its parent"


def test_a_launch_waits_for_ranks_of_an_earlier_one(tmp_path):
    """The workers' lock: a rank of a killed launch that still runs holds it; the next launch
    waits for it, then says so in one line."""
    hold = f"from repro.train import lifetime; lifetime.hold_workers_lock({str(tmp_path)!r})"
    holder = subprocess.Popen([sys.executable, "-c", f"{hold}; import time; time.sleep(60)"])
    try:
        time.sleep(1.5)
        with pytest.raises(Exception, match="training processes of an earlier launch are still running"):
            lifetime.wait_for_workers(tmp_path, timeout=1.0)
    finally:
        holder.kill()
        holder.wait()
    lifetime.wait_for_workers(tmp_path, timeout=5.0)  # gone: the launch goes ahead
