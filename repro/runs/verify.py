"""`repro verify RUN_DIR`: re-hash a run's outputs against what its manifest recorded.

A finished run records the SHA-256 of every file it produced (weights, generations,
judgments, scores) in manifest.json; verify reports each file that changed, vanished or
appeared, one line per file, and re-checks the recorded config against its own hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from repro import io
from repro.config.runconfig import RunConfig
from repro.errors import ReproError

# What a run produced, relative to its directory, and what its training root holds.
PRODUCED = ("eval/**/*.json", "eval/**/*.jsonl", "curves.csv")
TRAINED = ("train/model/*", "train/metrics.json", "train/run.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(directory: Path, root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for base, patterns in ((directory, PRODUCED), (root, TRAINED)):
        for pattern in patterns:
            for path in sorted(base.glob(pattern)):
                if path.is_file():
                    found[str(path.relative_to(directory) if path.is_relative_to(directory) else
                              Path("..") / path.relative_to(root))] = sha256(path)  # fmt: skip
    return found


def verify(run_dir: Path) -> tuple[int, list[str]]:
    """(files checked, one line per difference)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReproError(f"{run_dir}: not a directory")
    manifest = io.read_json(run_dir / "manifest.json")
    if not isinstance(manifest, dict) or "files" not in manifest:
        raise ReproError(f"{run_dir}: no manifest.json with recorded file hashes (not a finished run)")
    problems = []
    try:
        config = RunConfig.from_json(manifest["config"], f"{run_dir}/manifest.json")
        if config.config_hash != manifest.get("config_hash"):
            problems.append("manifest.json: config_hash differs from its config")
    except ReproError as exc:
        problems.append(str(exc))
    recorded: dict[str, str] = manifest["files"]
    # the training root: the run directory itself, or the run that holds this evaluation
    # (backend-ENGINE/, partial-limitN/ live under it)
    root = next((d for d in (run_dir, *run_dir.parents) if (d / "train").is_dir()), run_dir)
    current = file_hashes(run_dir, root)
    for name, digest in sorted(recorded.items()):
        if name not in current:
            problems.append(f"{name}: missing")
        elif current[name] != digest:
            problems.append(f"{name}: changed (sha256 {current[name][:12]}, recorded {digest[:12]})")
    for name in sorted(set(current) - set(recorded)):
        problems.append(f"{name}: not recorded in the manifest")
    return len(recorded), problems
