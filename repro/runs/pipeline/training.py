"""The train stage, as `repro train` and `repro run` both run it: refuse a folder of another
config, skip a finished training of this one, write the run directory, stop on a failed BOS
check, launch the processes and read back what they report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repro import hub
from repro.config.runconfig import NOT_IN_IDENTITY, RunConfig, RunFile
from repro.errors import ReproError
from repro.progress import Progress
from repro.train import launch
from repro.train.outcome import TrainingOutcome


@dataclass(frozen=True)
class Trained:
    """A finished training: its outcome, and where this call's time went (None: it was already
    finished, nothing was launched)."""

    directory: Path
    outcome: TrainingOutcome
    seconds: dict[str, float | None] | None

    @property
    def launched(self) -> bool:
        return self.seconds is not None


def starting_model(directory: Path) -> str:
    """The checkpoint a training run started from (its run.json's model): the baseline of a
    setting judged against its starting model (the tiny model built in the run, a built-in
    model's imported folder, a local or hub checkpoint). A hub model is its folder at the commit
    the run trained from (the identity's pin): the baseline is the model the run started from,
    not whatever `main` is now."""
    run = RunFile.read(directory / "run.json")
    if hub.is_hub_id(run.paths.model):
        return str(hub.snapshot(run.paths.model, run.config.model_hub_revision))
    return run.paths.model


# What a training folder holds before its run.json is written (a start killed early leaves these).
TRAINING_NAMES = {
    "run.json", "train.log", "accelerate.yaml", "deepspeed.json", "bos_check.json", "data", "model",
    "init-model", "trainer", "metrics.json", ".workers.lock", "tensorboard", "preempted.json",
}  # fmt: skip


def finished(config: RunConfig, directory: Path) -> TrainingOutcome | None:
    """The outcome of a finished training of exactly `config` in `directory`, or None.

    Raises when the directory holds the model or metrics of another config: a run is never
    overwritten by a different one (choose another output)."""
    from repro.io import read_json

    directory = Path(directory)
    if not directory.is_dir():
        return None
    if not (directory / "run.json").exists() and (
        foreign := sorted(
            p.name
            for p in directory.iterdir()
            if p.name not in TRAINING_NAMES and not p.name.startswith("train.log.")
        )
    ):
        # not a training folder, nor one a killed start left: training would write over its files
        raise ReproError(
            f"{directory} holds files that are not a repro training ({', '.join(foreign[:3])}); "
            "choose another output directory"
        )
    outcome = TrainingOutcome.read(directory)
    previous = read_json(directory / "run.json") or {}
    same = (previous.get("config") or {}).get("config_hash") == config.config_hash
    if not same and ((directory / "model").exists() or outcome is not None):
        raise ReproError(f"{directory} holds a finished run of {_other(previous.get('config'), config)}; "
                         "choose another output directory")  # fmt: skip
    if same and outcome and (directory / "model" / "config.json").exists():
        return outcome
    return None


def _other(recorded: object, config: RunConfig) -> str:
    """How the recorded config differs from `config`, where only the code that trains differs."""
    ours = config.to_json()
    if isinstance(recorded, dict) and recorded.get("code_version") != ours.get("code_version"):
        rest = {k for k in ours.keys() | recorded.keys() if recorded.get(k) != ours.get(k)}
        if rest - set(NOT_IN_IDENTITY) <= {"code_version", "config_hash"}:  # descriptions aside
            return f"the same config trained by other code (code_version {recorded.get('code_version')})"
    return "another config"


def train(
    config: RunConfig,
    directory: Path,
    *,
    tokenizer: str | None = None,
    reference_cache: str | None = None,
    device: str | None = None,
    allow_double_bos: bool = False,
    on_launch: Callable[[launch.Run], None] | None = None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> Trained:
    """Train (or resume training) `config` into `directory`; a finished one is returned as it is
    (finished means finished: nothing is resumed, rewritten or relaunched). `on_launch` hears of
    the prepared run just before its processes start (the CLI prints the batch layout)."""
    done = finished(config, directory)
    if done is not None:
        return Trained(Path(directory).resolve(), done, None)
    start = time.time()
    run = launch.prepare(
        config, directory, tokenizer=tokenizer, reference_cache=reference_cache, device=device,
        allow_double_bos=allow_double_bos,
    )  # fmt: skip
    if on_launch:
        on_launch(run)
    launched = time.time()
    errors: list[str] = []
    code = launch.launch(run, progress=progress, echo=echo, verbose=verbose, errors=errors)
    if code != 0:
        why = errors[0].removeprefix("repro: error: ") if errors else f"exit {code}"
        raise ReproError(f"training failed: {why}; see {run.directory / 'train.log'}")
    outcome = TrainingOutcome.read(run.directory)
    if outcome is None:
        raise ReproError(f"training exited without writing {run.directory / 'metrics.json'}")
    # writing the run directory (model, data, BOS check), the training processes (start-up,
    # DeepSpeed, evaluation, saving), and their optimizer steps
    seconds = {
        "prepare": round(launched - start, 1),
        "processes": round(time.time() - launched, 1),
        "optimizer_steps": outcome.train_seconds,
    }
    return Trained(run.directory, outcome, seconds)
