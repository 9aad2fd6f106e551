"""The software environment: compare it with the lock, freeze it into a manifest, diff it with
the paper's. Every run embeds `freeze()` so a score can be traced to the exact stack."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repro import __version__, paths
from repro.config.validate import read_yaml
from repro.errors import ReproError
from repro.hashing import file_sha256_or_none
from repro.stack import lockfile
from repro.stack.installed_files import Verifier
from repro.stack.lockfile import normalize

# Packages that belong to the venv machinery or to this project, not to the lock.
_NOT_LOCKED = {"repro"}


def public_version(version: str) -> str:
    """Drop the local label: 2.13.0+cpu and 2.13.0+cu128 are both torch 2.13.0."""
    return version.split("+", 1)[0]


def read_lock(path: Path | str | None = None) -> dict[str, str]:
    """The lock's pins, name -> version; `path` may be `cpu`, `gpu` or a path."""
    return lockfile.read(path).versions()


def _distributions() -> dict[str, tuple[str, importlib.metadata.Distribution]]:
    """name -> (version, distribution); the first on sys.path wins, as at import time."""
    found: dict[str, tuple[str, importlib.metadata.Distribution]] = {}
    for dist in importlib.metadata.distributions():
        # Copies vendored inside a package (setuptools/_vendor, on sys.path once pkg_resources is
        # imported) belong to that package and its RECORD, not to the lock.
        if "_vendor" in Path(str(getattr(dist, "_path", ""))).parts:
            continue
        metadata = dist.metadata  # parsed once: METADATA files are large
        if metadata["Name"]:
            found.setdefault(normalize(metadata["Name"]), (metadata["Version"], dist))
    return found


def installed() -> dict[str, str]:
    return {name: version for name, (version, _) in _distributions().items()}


@dataclass(frozen=True)
class Drift:
    package: str
    expected: str | None
    installed: str | None
    status: str  # ok | differs | missing | extra | modified (files differ from the installer's RECORD)
    files: tuple[str, ...] = ()


def compare(expected: dict[str, str], actual: dict[str, str], *, extras: bool = True) -> list[Drift]:
    """One row per package: ok, differs (version), missing (locked, not installed), extra."""
    rows = []
    for name in sorted(set(expected) | set(actual)):
        want, have = expected.get(name), actual.get(name)
        if name in _NOT_LOCKED:
            continue
        if want is None:
            if extras:
                rows.append(Drift(name, None, have, "extra"))
        elif have is None:
            rows.append(Drift(name, want, None, "missing"))
        elif _same_version(want, have):
            rows.append(Drift(name, want, have, "ok"))
        else:
            rows.append(Drift(name, want, have, "differs"))
    return rows


def _same_version(locked: str, have: str) -> bool:
    """A lock that names a local label (2.13.0+cpu) wants that build; one without accepts any."""
    return locked == have if "+" in locked else public_version(locked) == public_version(have)


def check(lock: Path | str | None = None, *, files: bool = True, rehash: bool = False) -> list[Drift]:
    """Drift against a lock; with `files`, packages at the locked version whose installed files
    differ from their RECORD are reported as `modified`."""
    dists = _distributions()
    rows = compare(read_lock(lock), {name: version for name, (version, _) in dists.items()})
    if not files:
        return rows
    verifier = Verifier(rehash=rehash)
    for i, row in enumerate(rows):
        if row.status == "ok" and (bad := verifier.check(dists[row.package][1])):
            rows[i] = Drift(row.package, row.expected, row.installed, "modified", tuple(bad))
    verifier.save()
    return rows


def closest_lock() -> Path | None:
    """The project's lock this environment is closest to (fewest version differences): a run's
    manifest records the GPU lock on a GPU install, the CPU lock here."""
    have = installed()
    names = [name for name in lockfile.NAMES if lockfile.resolve(name).exists()]

    def distance(name: str) -> int:
        return sum(r.status != "ok" for r in compare(read_lock(name), have))

    return lockfile.resolve(min(names, key=distance)) if names else None


def paper_pins(path: Path | None = None) -> dict[str, Any]:
    data = read_yaml(path or paths.PAPER_ENV)
    if not isinstance(data, dict) or not isinstance(data.get("pins"), dict):
        raise ReproError(f"{path or paths.PAPER_ENV}: expected a 'pins' mapping")
    return data


def diff_paper(path: Path | None = None) -> tuple[list[Drift], dict[str, Any]]:
    """The paper's pins against what is installed (packages the paper did not pin are left out)."""
    data = paper_pins(path)
    pins = {normalize(k): str(v) for k, v in data["pins"].items()}
    rows = compare(pins, installed(), extras=False)
    python_row = Drift("python", str(data.get("python")), platform.python_version(), "")
    ok = public_version(python_row.expected or "") == python_row.installed
    rows.insert(0, Drift("python", python_row.expected, python_row.installed, "ok" if ok else "differs"))
    return rows, data


# ---------------------------------------------------------------------------- freeze


def _git(*args: str) -> str | None:
    if not shutil.which("git"):
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(paths.ROOT), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def accelerators() -> dict[str, Any]:
    """GPU names, CUDA and driver versions, as torch sees them (empty on a CPU machine)."""
    info: dict[str, Any] = {"gpus": [], "cuda": None, "cudnn": None, "torch": None}
    try:  # deferred: torch takes about 2 s to import, and an install may lack it
        import torch
    except ImportError:
        return info
    info["torch"] = torch.__version__
    info["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _shown(path: Path) -> str:
    return str(path.relative_to(paths.ROOT)) if path.is_relative_to(paths.ROOT) else str(path)


def freeze(lock: Path | str | None = None) -> dict[str, Any]:
    """The environment manifest every run embeds (against the closest lock unless one is named)."""
    lock = lockfile.resolve(lock) if lock else closest_lock()
    drift = check(lock) if lock else []
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "repro_version": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib(),
        **accelerators(),
        "git": git_state(),
        "lock": lockfile.read(lock).name if lock else None,
        "lockfile": _shown(lock) if lock else None,
        "lockfile_sha256": file_sha256_or_none(lock) if lock else None,
        "lock_drift": [d.__dict__ for d in drift if d.status != "ok"],
        "packages": dict(sorted(installed().items())),
    }
