"""manifest.json: how a run was made, written here and read here.

A run's manifest records what produced its result: the resolved config and its hash, the
frozen environment, the training data's and reference's identity, the engine, the trackers,
the trained weights' SHA-256, both BOS checks, the judge and its calls, one history entry per
session that did work, and the SHA-256 of every file the result rests on (`files`, which
`repro verify` re-hashes). One writer (repro.runs.pipeline.run) and one reader (`Manifest.read`) for
run, verify, compare, grid, status, report and diagnosis.

Manifests of older repros lack some keys: they read with those keys None, and keys this
reader does not know are kept (`extra`) so that a manifest reads and writes back unchanged.
"""

from __future__ import annotations

import dataclasses
import getpass
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repro import io, records
from repro.config.runconfig import RunConfig
from repro.data.bosguard import Stages
from repro.errors import ReproError
from repro.evaluation.judge.judged_by import JudgedBy

FILE = "manifest.json"


@dataclass
class Manifest:
    config: dict[str, Any] | None = None  # RunConfig.to_json(); `run_config` parses it
    config_hash: str | None = None
    environment: dict[str, Any] | None = None  # repro.stack.environment.freeze()
    data: dict[str, Any] | None = None  # the training data's identity (TrainOutcome.data)
    reference: dict[str, Any] | None = None  # the reference model's, for methods that have one
    engine: dict[str, Any] | None = None
    trackers: Any = None
    weights_sha256: str | None = None
    tokenizer_checks: Stages | None = None  # the BOS checks of training and evaluation
    history: list[dict[str, Any]] = field(default_factory=list)
    judge: JudgedBy | None = None
    judge_calls: dict[str, Any] | None = None
    files: dict[str, str] | None = None  # relative path -> SHA-256 (None: not a finished run)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of another repro, kept as read

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_json(cls, data: Any, where: str) -> Manifest:
        if not isinstance(data, dict):
            raise ReproError(f"{where}: not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        manifest = cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known},
        )
        for name, kind in (("config", dict), ("files", dict), ("history", list)):
            value = getattr(manifest, name)
            if value is not None and not isinstance(value, kind):
                raise ReproError(f"{where}: '{name}' is not a {'mapping' if kind is dict else 'list'}")
        if manifest.files and not all(isinstance(v, str) for v in manifest.files.values()):
            bad = next(k for k, v in manifest.files.items() if not isinstance(v, str))
            raise ReproError(f"{where}: files['{bad}'] is not a SHA-256 string")
        manifest.history = manifest.history or []
        manifest.tokenizer_checks = Stages.recorded(manifest.tokenizer_checks, f"{where}: tokenizer_checks")
        manifest.judge = JudgedBy.from_json(data.get("judge"), where, lenient=True)
        return manifest

    @classmethod
    def read(cls, run_dir: Path) -> Manifest:
        """RUN_DIR/manifest.json; missing, corrupt or not a manifest is one line."""
        path = Path(run_dir) / FILE
        return cls.from_json(records.read(path), str(path))

    @classmethod
    def read_or_none(cls, run_dir: Path) -> Manifest | None:
        """The manifest, or None where there is none or it cannot be read."""
        try:
            return cls.read(run_dir)
        except ReproError:
            return None

    def run_config(self, where: str) -> RunConfig:
        """The config it records, parsed (one line when it records none or a malformed one)."""
        if self.config is None:
            raise ReproError(f"{where}: no config")
        return RunConfig.from_json(self.config, where)

    # ------------------------------------------------------------------ writing

    @classmethod
    def new(cls, config: RunConfig, *, outcome: Any, environment: dict[str, Any], weights_sha256: str,
            tokenizer_checks: Stages) -> Manifest:  # fmt: skip
        """A run's first manifest (`outcome`: its repro.train.outcome.TrainOutcome)."""
        return cls(
            config=config.to_json(),
            config_hash=config.config_hash,
            environment=environment,
            data=outcome.data,
            reference=outcome.reference,
            engine=outcome.engine,
            trackers=outcome.trackers,
            weights_sha256=weights_sha256,
            tokenizer_checks=tokenizer_checks,
        )

    def add_session(
        self,
        stages: list[dict[str, Any]],
        *,
        code_version: str,
        git: dict[str, Any],
        environment: dict[str, Any] | None = None,
    ) -> None:
        """One history entry for the work this session did (or a bare re-record). `environment`:
        this session's (repro.stack.environment.freeze()), recorded in the entry where it is not
        the one the manifest was first written in, so a later evaluation's packages are known."""
        entry = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "user": getpass.getuser(),
            "stages": stages or [{"stage": "record", "seconds": 0}],
            "code_version": code_version,
            "git": git,
        }
        if environment is not None and environment != self.environment:
            entry["environment"] = environment
        self.history.append(entry)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["tokenizer_checks"] = self.tokenizer_checks.to_json() if self.tokenizer_checks else None
        data["judge"] = self.judge.to_json() if self.judge else None
        return {**data, **self.extra}

    def write(self, run_dir: Path) -> None:
        io.write_json(Path(run_dir) / FILE, self.to_json())
