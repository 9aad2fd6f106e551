"""Training processes live no longer than the command that started them.

torch's elastic agent starts each rank in a session of its own, so `kill -9 -- -PGID` of
`repro run` left the ranks running, writing into the run folder while a rerun took the run's
lock. Now:
- every rank asks the kernel for SIGKILL when its parent (the agent) dies (`die_with_parent`),
  and the launcher is started the same way under repro (`python -m repro.train.lifetime CMD`),
  so killing repro, its group, or the launcher ends every rank;
- every rank holds a shared lock on the training folder's `.workers.lock` for its whole life;
  a launcher takes it exclusively before starting ranks (`wait_for_workers`), so a rerun
  waits for ranks of a killed run to be gone, and says so in one line if they never go.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

from repro.errors import ReproError

LOCK = ".workers.lock"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_held: list[IO] = []  # the open lock file of this process (closed when it exits)


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def hold_workers_lock(folder: Path) -> None:
    """Hold a shared lock on FOLDER/.workers.lock until this process exits."""
    try:
        handle = open(Path(folder) / LOCK, "a+")  # noqa: SIM115 - held open for the process's life
        fcntl.flock(handle, fcntl.LOCK_SH)
    except OSError:
        return  # a filesystem without flock: the parent-death signal still applies
    _held.append(handle)


def wait_for_workers(folder: Path, timeout: float = 30.0) -> None:
    """Before starting ranks in FOLDER: wait until no rank of an earlier launch holds its lock."""
    path = Path(folder) / LOCK
    try:
        handle = open(path, "a+")  # noqa: SIM115 - closed below
    except OSError:
        return
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ReproError(
                        f"{folder}: training processes of an earlier launch are still running "
                        f"(they hold {path}; `fuser {path}` names them)"
                    ) from None
                time.sleep(0.2)
                continue
            except OSError:
                return  # no flock here
            fcntl.flock(handle, fcntl.LOCK_UN)
            return


def main(argv: list[str]) -> None:
    """`python -m repro.train.lifetime CMD...`: run CMD, killed when its parent (repro) dies."""
    die_with_parent()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
