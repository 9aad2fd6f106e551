"""`repro verify RUN_DIR`: re-hash a run's outputs against what its manifest recorded.

A finished run records the SHA-256 of every file it produced (weights, generations,
judgments, the evaluation's scores, curves.csv and the run's own result.json, which is what
`repro compare` reads) in manifest.json; verify reports each file that changed, vanished or
appeared, one line per file, re-checks the recorded config against its own hash, and prints
the manifest's own SHA-256, which an author can quote so that readers check a published run.
A manifest written before result.json was covered says so in a note; its scores are unverified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import io
from repro.errors import ReproError
from repro.hashing import file_sha256
from repro.runs.results.manifest import FILE, Manifest
from repro.runs.results.result import RunResult

RERUN = "rerun-"  # eval/rerun-KEY/: a later evaluation's folder (repro.runs.pipeline.evaluations)
# What a run produced, relative to its directory, and what its training root holds: every
# file `repro compare` and `repro report` show (the curves' image too).
PRODUCED = ("eval/**/*.json", "eval/**/*.jsonl", "curves.csv", "curves.png")
# Covered since a later repro: a manifest without them says so in a note, not as a problem.
NEWLY_COVERED = ("curves.png",)
TRAINED = ("train/model/*", "train/metrics.json", "train/run.json")
RECORD = "result.json"  # the run's scores; hashed before it is written (see record_sha256)
# What carries a score that `repro compare` reads: checked on every compare (small files only).
# the files scores are read from: the run's result and its evaluation's record (an older
# repro's run folder holds the latter as eval/result.json)
SCORES = (RECORD, "eval/evaluation.json", "eval/result.json")


@dataclass
class Verification:
    checked: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def record_sha256(data: Any) -> str:
    """The SHA-256 of result.json as io.write_json writes `data` (so the manifest can record it
    before the file exists: result.json stays the last file a run writes)."""
    return hashlib.sha256(io.dumps(data).encode("utf-8")).hexdigest()


def file_hashes(directory: Path, root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for base, patterns in ((directory, PRODUCED), (root, TRAINED)):
        for pattern in patterns:
            for path in sorted(base.glob(pattern)):
                if path.is_file():
                    found[str(path.relative_to(directory) if path.is_relative_to(directory) else
                              Path("..") / path.relative_to(root))] = file_sha256(path)  # fmt: skip
    return found


def verify(run_dir: Path, *, scores_only: bool = False) -> Verification:
    """Every recorded file against the manifest (`scores_only`: the files that carry scores)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReproError(f"{run_dir}: not a directory")
    manifest_path = run_dir / FILE
    # a manifest that is there but cannot be read says why; only a missing one is "not finished"
    manifest = Manifest.read(run_dir) if manifest_path.exists() else None
    if manifest is None and _of_checkpoint(run_dir):
        raise ReproError(
            f"{run_dir}: a `repro eval` of a checkpoint: it records no file hashes (manifest.json) to verify"
        )
    if manifest is None or manifest.files is None:
        raise ReproError(f"{run_dir}: no manifest.json with recorded file hashes (not a finished run)")
    result = Verification(checked=0, manifest_sha256=file_sha256(manifest_path))
    try:
        config = manifest.run_config(f"{run_dir}/manifest.json")
        if config.config_hash != manifest.config_hash:
            result.problems.append("manifest.json: config_hash differs from its config")
    except ReproError as exc:
        result.problems.append(str(exc))
    recorded: dict[str, str] = manifest.files
    if RECORD not in recorded:
        result.notes.append(
            f"{RECORD}: not covered by this manifest (written by an older repro): its scores are unverified"
        )
    # the training root: the run directory itself, or the run that holds this evaluation
    # (backend-ENGINE/, partial-limitN/ live under it)
    root = next((d for d in (run_dir, *run_dir.parents) if (d / "train").is_dir()), run_dir)
    if scores_only:
        recorded = {k: v for k, v in recorded.items() if k in SCORES}
        current = {k: file_sha256(run_dir / k) for k in SCORES if (run_dir / k).is_file()}
    else:
        current = file_hashes(run_dir, root)
        if (run_dir / RECORD).is_file():
            current[RECORD] = file_sha256(run_dir / RECORD)
        if RECORD not in manifest.files:
            current.pop(RECORD, None)  # said in a note above
        for name in NEWLY_COVERED:
            if name not in recorded and current.pop(name, None) is not None:
                result.notes.append(f"{name}: not covered by this manifest (written by an older repro)")
    result.checked = len(recorded)
    for name, digest in sorted(recorded.items()):
        if name not in current:
            result.problems.append(f"{name}: missing")
        elif current[name] != digest:
            result.problems.append(f"{name}: changed (sha256 {current[name][:12]}, recorded {digest[:12]})")
    if not scores_only:
        attempts: set[str] = set()
        for name in sorted(set(current) - set(recorded)):
            parts = Path(name).parts
            if len(parts) > 2 and parts[0] == "eval" and parts[1].startswith(RERUN):
                attempts.add(f"eval/{parts[1]}")  # an evaluation that did not become the result
                continue
            result.problems.append(f"{name}: not recorded in the manifest")
        result.notes += [
            f"{a}/: an evaluation attempt that is not part of the result" for a in sorted(attempts)
        ]
    return result


def _of_checkpoint(folder: Path) -> bool:
    """Whether the folder holds a `repro eval` result (no method: nothing trained here)."""
    try:
        return RunResult.read(folder / RECORD).of_checkpoint
    except (ReproError, OSError):
        return False
