"""`repro diagnose`: why a reproduction's number differs from the published one.

The maintainers' chain of checks (one module each, registered with `base.in_chain`: a new check
is one new file), each with a verdict (`ok`, `differs`, `unknown` with the
reason) and its evidence in numbers: recipe, environment, tokenization, training,
generation, judging. Every difference is a likely cause with a weight; the causes are listed
most likely first. A run whose files no longer match its manifest (`repro verify`) says so
before anything else: the tampered files become the first causes. A manifest that is there
but cannot be read (not JSON, or not a manifest's shape) fails verify the same way: said
first, the first cause, exit 1; a run without one is partial (its checks say `unknown`).

`run(RUN_DIR)` diagnoses a repro run (finished or partial); `outputs(FILE, ...)` diagnoses
alpaca_eval-format files made elsewhere, with the checks those files allow.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from repro.config.methods import load_methods
from repro.config.settings import list_settings
from repro.errors import ReproError, unknown
from repro.runs.analysis.diagnosis import base, inputs
from repro.runs.analysis.diagnosis.base import Cause, Check, Diagnosis
from repro.runs.results import verify
from repro.runs.results.manifest import FILE as MANIFEST

__all__ = ["Check", "Diagnosis", "outputs", "run"]


def _chain(found: inputs.Inputs, subject: str) -> Diagnosis:
    for module in sorted(Path(__file__).parent.glob("*.py")):  # each check module registers its check
        if module.stem != "__init__":
            importlib.import_module(f"{__name__}.{module.stem}")
    return Diagnosis([check(found) for check in base.chain()], subject)


def _owner(name: str) -> str:
    """The check a tampered file speaks for."""
    if "judgments" in name or "annotations" in name:
        return "judging"
    if name.startswith("eval/"):
        return "generation"
    if name.startswith("manifest.json"):
        return "recipe"
    return "training"


def run(run_dir: Path, *, curves: Path | None = None) -> Diagnosis:
    run_dir = Path(run_dir)
    found = inputs.from_run(run_dir, curves)
    diagnosis = _chain(found, str(run_dir))
    # no manifest (a partial run), or one without file hashes: nothing to verify; a manifest
    # that is there but cannot be read (not JSON, or not a manifest) fails verify
    if not (run_dir / MANIFEST).exists() or (found.manifest is not None and found.manifest.files is None):
        return diagnosis
    try:
        problems = verify.verify(run_dir).problems
    except ReproError as exc:
        problems = [str(exc).removeprefix(f"{run_dir}/")]
    if not problems:
        return diagnosis
    if found.manifest is None:
        diagnosis.notes.append(
            f"repro verify fails: the manifest cannot be read ({problems[0]}); "
            "nothing the run recorded can be checked against it"
        )
    else:
        diagnosis.notes.append(
            f"repro verify fails: {len(problems)} file(s) differ from the manifest; "
            "the evidence below may not be what the run produced"
        )
    by_check = {c.check: c for c in diagnosis.checks}
    for problem in problems:
        owner = by_check[_owner(problem)]
        owner.status = "differs"
        owner.evidence.setdefault("verify", []).append(problem)
        owner.causes.append(Cause(owner.check, f"tampered run (repro verify fails): {problem}", 1000))
    return diagnosis


def outputs(
    path: Path,
    *,
    setting: str,
    method: str,
    annotations: Path | None = None,
    leaderboard: Path | None = None,
) -> Diagnosis:
    _known_pair(setting, method)
    found = inputs.from_files(
        path, setting=setting, method=method, annotations=annotations, leaderboard=leaderboard
    )
    return _chain(found, str(path))


def _known_pair(setting: str, method: str) -> None:
    if setting not in list_settings() and not Path(setting).is_file():
        raise unknown("setting", setting, list_settings())
    methods = load_methods()
    if method not in methods:
        raise unknown("method", method, methods)
