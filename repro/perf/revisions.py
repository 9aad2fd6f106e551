"""Another revision of repro, checked out beside the working tree for `repro bench train --against`.

A temporary `git worktree` (detached, removed afterwards) of the same repository: the
benchmark runs its code with the working tree's environment (the same Python and packages),
by putting the worktree first on PYTHONPATH.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro import paths
from repro.errors import ReproError


@dataclass(frozen=True)
class Revision:
    name: str  # as the user gave it
    commit: str  # full hash
    path: Path  # the tree's root


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def resolve(name: str, repo: Path = paths.ROOT) -> str:
    """The full commit hash of `name` in repo, or a one-line error."""
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise ReproError(f"--against needs a git checkout of repro; {repo} is not one")
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    if found.returncode != 0:
        raise ReproError(f"--against {name}: no such commit in {repo}")
    return found.stdout.strip()


def working(repo: Path = paths.ROOT) -> dict[str, object]:
    """The working tree's commit and whether tracked files differ from it."""
    head = _git(repo, "rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "modified": None}
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {"commit": head.stdout.strip(), "modified": bool(status.stdout.strip())}


@contextmanager
def checkout(name: str, repo: Path = paths.ROOT) -> Iterator[Revision]:
    """A detached worktree of `name`, removed on the way out (also on errors and Ctrl-C)."""
    commit = resolve(name, repo)
    parent = Path(tempfile.mkdtemp(prefix="repro-against-"))
    tree = parent / "tree"
    added = _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    if added.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        last = (added.stderr.strip().splitlines() or ["git worktree add failed"])[-1]
        raise ReproError(f"--against {name}: {last}")
    try:
        yield Revision(name, commit, tree)
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)
