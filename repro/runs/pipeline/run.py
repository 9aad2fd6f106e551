"""`repro run`: train -> generate -> judge -> score, each stage skipped when its outputs exist
for the same inputs, with a result and a manifest that trace every number to its inputs.

Layout: results/<setting>/<method>/<run-id>/ with train/ (the training run directory),
eval/ (generations, judgments), result.json (scores with CIs), manifest.json (resolved
config and hash, lockfile hash, environment, git commit, BOS checks, data fingerprints,
judge, timings), curves.csv and curves.png. The run id is derived from the resolved
config hash, so the same command finds and resumes the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import hashing, io
from repro.config.runconfig import RunConfig
from repro.data.bosguard import Report, Stages
from repro.errors import ReproError
from repro.evaluation import judgecost, runner
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from repro.progress import Progress
from repro.runs.analysis import plots
from repro.runs.pipeline import evaluations, preflight, training
from repro.runs.results import replicates, verify
from repro.runs.results.manifest import Manifest
from repro.runs.results.result import RunResult
from repro.stack import environment
from repro.train import launch


def safe_child(root: Path, *parts: str) -> Path:
    """A path under `root` that cannot escape it (names come from recipes and flags)."""
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ReproError(f"run path {target} escapes the results directory {root}")
    return target


def run_directory(
    config: RunConfig, results_root: Path, limit: int | None = None, backend: str = "transformers"
) -> Path:
    """results/<setting>/<method>/<run-id>. Another generation engine's evaluation (backend-vllm/)
    and a partial one (--limit N: partial-limitN/) live apart under it, with the same trained model."""
    directory = safe_child(results_root, config.setting, config.method, config.run_id)
    if backend != "transformers":
        directory = directory / f"backend-{backend}"
    return directory / f"partial-limit{limit}" if limit else directory


@dataclass(frozen=True)
class Steps:
    """Optimizer steps of a run: the recipe's whole training and the --max-steps cap on it."""

    full_epoch: int | None  # num_train_epochs over the recorded rows (None: rows unknown)
    cap: int | None  # --max-steps

    @classmethod
    def of(cls, config: RunConfig) -> Steps:
        return cls(replicates.epoch_steps(config, config.train_rows), config.max_steps)

    @property
    def planned(self) -> int | None:
        """The steps that will run (None: unknown until the dataset is loaded)."""
        if self.full_epoch and self.cap:
            return min(self.full_epoch, self.cap)
        return self.cap or self.full_epoch

    def text(self) -> str:
        """The steps in words, with --max-steps applied and the full run beside it."""
        full, cap = self.full_epoch, self.cap
        if cap is None:
            return str(full) if full else UNKNOWN_STEPS
        if full is None:
            return f"at most {cap} (--max-steps; a full epoch is unknown until the data is loaded)"
        if cap < full:
            return f"{cap} (--max-steps {cap}; a full epoch is {full})"
        return f"{full} (a full epoch; --max-steps {cap} does not cut it)"


UNKNOWN_STEPS = "unknown until the dataset is loaded (train_rows not recorded)"


@dataclass(frozen=True)
class Plan:
    """What `repro run` would do, as `--dry-run` shows it; nothing is written to make it."""

    run_dir: Path
    config: RunConfig
    steps: Steps
    train_command: str
    judge: runner.Judge
    judge_estimate: dict[str, Any]  # judgecost.for_judge: calls and dollars (zero for the rule judge)
    partial: bool
    preflight: tuple[preflight.Check, ...] = ()

    @property
    def device(self) -> str:
        """Where training would run from this machine."""
        return "GPU (CUDA)" if launch.cuda_available() else "CPU processes (DS_ACCELERATOR=cpu)"

    @property
    def judge_text(self) -> str:
        models = {b: v["judge_model"] for b, v in self.judge_estimate["benchmarks"].items()}
        return judgecost.describe_judge(self.judge.kind, self.judge.url, self.judge.key_env, models)

    @property
    def judge_cost_text(self) -> str:
        if self.judge.kind == "rule":
            return "local, no calls, no cost"
        return judgecost.describe_cost(self.judge_estimate)

    def to_json(self) -> dict[str, Any]:
        """`repro run --dry-run --format json`: the keys it has always printed."""
        batch, rule = self.config.batch, self.judge.kind == "rule"
        return {
            "run_dir": str(self.run_dir),
            "setting": self.config.setting,
            "method": self.config.method,
            "config_hash": self.config.config_hash,
            "processes_per_node": batch.num_processes,
            "nodes": batch.num_nodes,
            "batch": batch.describe(),
            "optimizer_steps": self.steps.planned,
            "optimizer_steps_note": None if self.steps.planned else UNKNOWN_STEPS,
            "train_command": self.train_command,
            "judge": {"kind": "rule", "note": "local rule judge, no cost"} if rule else self.judge.describe(),
            "judge_calls": {"total_calls": "local", "estimated_cost_usd": 0} if rule else self.judge_estimate,
            "partial": self.partial,
            "device (this machine)": self.device,
            **({"preflight": {c.name: _check_text(c) for c in self.preflight}} if self.preflight else {}),
            "judge_text": self.judge_text,
            "judge_cost_text": self.judge_cost_text,
            "optimizer_steps_text": self.steps.text(),
            "optimizer_steps_full_epoch": self.steps.full_epoch,
        }


def _check_text(check: preflight.Check) -> str:
    return ("ok: " if check.ok else "FAILS: ") + check.message


def plan(
    config: RunConfig,
    *,
    results_root: Path,
    benches: list[str],
    judge: Judge,
    limit: int | None = None,
    backend: str | None = None,
) -> Plan:
    """The plan of one run; with `backend`, the preflight checks of running it here too."""
    train_dir = safe_child(results_root, config.setting, config.method, config.run_id) / "train"
    prepared = launch.prepare(config, train_dir, dry_run=True)  # writes nothing, anywhere
    command = " ".join(f"{k}={v}" for k, v in prepared.env.items() if k != "PYTHONPATH")
    checks = (
        preflight.checks(config, judge=judge, results_root=results_root, backend=backend) if backend else []
    )
    return Plan(
        run_dir=run_directory(config, results_root, limit, backend or "transformers"),
        config=config,
        steps=Steps.of(config),
        train_command=command + " " + " ".join(prepared.command),
        judge=judge,
        judge_estimate=judgecost.for_judge(judge.kind, benches, limit=limit, judge_model=judge.model),
        partial=bool(limit),
        preflight=tuple(checks),
    )


def curves(log_history: list[dict[str, Any]], directory: Path) -> None:
    """Training curves as CSV and PNG. The CSV's columns are the original trainer's W&B names
    (train/loss, train/rewards/..., train/logps/...), so `repro compare --curves` and a W&B
    export line up column for column."""
    import csv

    from repro.runs.analysis import curves as curve_names

    keys = ["step", "epoch", *curve_names.TRAINER_KEYS, "train/learning_rate", "train/grad_norm"]
    with open(directory / "curves.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for row in curve_names.history_rows(log_history):
            writer.writerow([row.get(k, "") for k in keys])
    plots.curves(log_history, directory / "curves.png", title=plots.run_title(directory))


def evaluation_plan(
    config: RunConfig,
    directory: Path,
    train_dir: Path,
    benches: list[str],
    judge: Judge,
    options: EvalOptions,
    weights: str,
) -> evaluations.Plan:
    """Which benchmarks the evaluation stage evaluates now, and where (repro.runs.pipeline.evaluations).
    `weights`: the trained model's hashing.weights_sha256 (hashed once by the caller: gigabytes)."""
    base = {
        "weights_sha256": weights,
        "limit": options.limit,
        "generation_config_sha256": config.evaluation.generation_file.sha256,
        "code_version": config.code_version,
        "backend": options.backend,
    }
    return evaluations.plan(
        directory,
        benches,
        base=base,
        judge=judge.describe(),
        legacy_weights=hashing.legacy_weights_sha256(train_dir / "model"),
        refresh=judge.refresh,
        data=evaluations.data_identity(options.data_paths),
    )


@contextlib.contextmanager
def run_lock(directory: Path):
    """One writer per run directory: a second `repro run` of the same run stops with one line."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReproError(
                f"{directory} is being written by another repro process; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Executed:
    """What `execute` did: the run's result, the folder it is in, and this call's work (one
    entry per stage it ran, with seconds; empty when every stage was already done)."""

    result: RunResult
    run_dir: Path
    work_done: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """result.json's content with where it is and what this call did (`repro run --format json`)."""
        return {**self.result.to_json(), "run_dir": str(self.run_dir), "work_done": self.work_done}


def execute(
    config: RunConfig,
    *,
    results_root: Path,
    benches: list[str],
    judge: Judge,
    options: EvalOptions | None = None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> Executed:
    """Run (or resume) every stage; returns its result, where it is and what this call did.
    Library logs go to repro.log; `verbose` also hands the training metrics (the Trainer's
    logged dicts) to `echo`.
    `options`: how the evaluation runs (its backend and limit also name the run's folder)."""
    options = options or EvalOptions()
    directory = run_directory(config, results_root, options.limit, options.backend)
    root = safe_child(results_root, config.setting, config.method, config.run_id)
    preflight.require(config, judge=judge, results_root=results_root, backend=options.backend)
    with run_lock(root), _log_to(directory / "repro.log"):
        return _execute(
            config,
            root,
            directory,
            benches=benches,
            judge=judge,
            options=options,
            progress=progress,
            echo=echo,
            verbose=verbose,
        )


@contextlib.contextmanager
def _log_to(path: Path):
    """The run's own log file gets every library log record (INFO and up) while it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def generate(
    config: RunConfig,
    *,
    results_root: Path,
    benches: list[str],
    judge: Judge,
    options: EvalOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Only the answers of a trained run (a generation job on a GPU node): written as they
    complete, resumed when interrupted, taken as they are by the judging job that follows.
    `options`: the evaluation's backend and limit (the rest is the run's own)."""
    options = options or EvalOptions()
    root = safe_child(results_root, config.setting, config.method, config.run_id)
    directory = run_directory(config, results_root, options.limit, options.backend)
    if training.finished(config, root / "train") is None:
        raise ReproError(f"{root / 'train'}: training has not finished; generate after the training job")
    reference = (
        training.starting_model(root / "train") if config.evaluation.baseline == "init-model" else None
    )
    options = dataclasses.replace(options, reference_model=reference, stage="generate")
    with run_lock(root), _log_to(directory / "repro.log"):
        weights = hashing.weights_sha256(root / "train" / "model")
        stage = evaluation_plan(config, directory, root / "train", benches, judge, options, weights)
        # its output folder is where the judging job that follows looks for the answers
        return _evaluation(config, root / "train", stage, judge, options).run(progress=progress).outputs()


def _evaluation(
    config: RunConfig, train_dir: Path, stage: evaluations.Plan, judge: Judge, options: EvalOptions
) -> runner.Evaluation:
    """The evaluation of a run's trained model: the benchmarks `stage` has still to do, beside
    the earlier evaluations it keeps."""
    return runner.Evaluation(
        str(train_dir / "model"),
        runner.Target.of_run(config),
        output=stage.output,
        judge=judge,
        benches=stage.todo,
        options=options,
        earlier=stage.earlier_folders(),
    )


def _train_bos(train_dir: Path) -> Report | None:
    """The training's BOS report (bos_check.json; None: a training folder made without one)."""
    data = io.read_json(train_dir / "bos_check.json")
    return None if data is None else Report.from_json(data, str(train_dir / "bos_check.json"))


def _unrecord(recorded: Path) -> None:
    """An earlier result.json goes before a file it rests on changes (the evaluation's record, the
    manifest): a run killed before its new one is written then has none, and the next rerun
    writes it from the records, rather than finding every stage done and showing the old one."""
    recorded.unlink(missing_ok=True)


def _execute(
    config: RunConfig,
    root: Path,
    directory: Path,
    *,
    benches: list[str],
    judge: Judge,
    options: EvalOptions,
    progress: Progress | None,
    echo: Callable[[str], None] | None,
    verbose: bool = False,
) -> Executed:
    done_work: list[dict[str, Any]] = []
    train_dir = root / "train"
    recorded = directory / verify.RECORD

    # -- train (skipped when a finished run of this exact config is there)
    if options.stage == "judge" and training.finished(config, train_dir) is None:
        # a judging job never trains on its CPU node
        raise ReproError(f"{train_dir}: training has not finished; judge after the training job")
    start = time.time()
    trained = training.train(config, train_dir, progress=progress, echo=echo, verbose=verbose)
    outcome = trained.outcome
    if trained.launched:
        _unrecord(recorded)
        done_work.append(
            {"stage": "train", "seconds": round(time.time() - start, 1), "breakdown": trained.seconds}
        )
    if not (root / "curves.csv").exists() or done_work:
        curves(outcome.log_history, root)

    # -- generate + judge + score: the benchmarks whose inputs changed, added to the earlier ones
    weights = hashing.weights_sha256(train_dir / "model")  # the evaluation's key and the manifest
    stage = evaluation_plan(config, directory, train_dir, benches, judge, options, weights)
    evaluation = stage.record
    if stage.todo:
        start = time.time()
        if config.evaluation.baseline == "init-model":
            options = dataclasses.replace(options, reference_model=training.starting_model(train_dir))
        ev = _evaluation(config, train_dir, stage, judge, options)
        loaded = time.time()
        attempt = ev.run(progress=progress)
        if refused := evaluations.not_kept(stage, attempt):
            attempt.with_key({"benchmarks": {b: stage.wanted[b] for b in stage.todo}}).write(stage.output)
            raise ReproError(f"{directory}: {refused}")
        evaluation = evaluations.merge(stage, attempt)
        _unrecord(recorded)
        evaluation.write(directory / "eval")
        # model and tokenizer loads with the BOS check, then each stage over every benchmark
        breakdown = {
            "load": round(loaded - start, 1),
            **{k: round(v, 1) for k, v in ev.stage_seconds.items()},
        }
        done_work.append(
            {"stage": "evaluate", "seconds": round(time.time() - start, 1), "breakdown": breakdown,
             "benchmarks": stage.todo}
        )  # fmt: skip

    if not done_work and recorded.exists():
        # nothing ran: the run is what it recorded (newer code re-derives nothing from it, and
        # never shows a number or a label the record does not hold)
        return Executed(RunResult.read(recorded), directory, done_work)
    judged_by = evaluation.judge or judge.judged_by()  # with what the judge said of itself
    evaluated = (evaluation.key or {}).get("benchmarks")  # what each benchmark was evaluated on
    kind = replicates.describe(
        config, judge=judged_by, backend=options.backend, outcome=outcome, evaluated=evaluated
    )
    bos = Stages(train=_train_bos(train_dir), eval=evaluation.bos_check)
    record = RunResult.of(
        evaluation,
        model=str(train_dir / "model"),
        method=config.method,
        run_id=config.run_id,
        seed=config.seed,
        judge=judged_by,
        training=dataclasses.replace(
            kind.training,
            held_out_reward_accuracy=outcome.held_out_accuracy,
            held_out_loss=outcome.held_out_loss,
        ),
        replicate_key=kind.replicate_key,
        variant=kind.variant,
        bos_check=bos,
        sources=evaluations.sources(evaluation),
    )
    frozen = environment.freeze()
    manifest = Manifest.read_or_none(directory) or Manifest.new(
        config,
        outcome=outcome,
        environment=frozen,
        weights_sha256=weights,
        tokenizer_checks=bos,
    )
    manifest.tokenizer_checks = bos  # this evaluation's checks, as result.json records them
    manifest.judge = record.judge
    manifest.judge_calls = evaluation.judge_calls
    manifest.add_session(
        done_work, code_version=config.code_version, git=environment.git_state(), environment=frozen
    )
    manifest.files = verify.file_hashes(directory, root)
    manifest.files[verify.RECORD] = verify.record_sha256(record.to_json())  # the scores compare reads
    manifest.write(directory)
    record.write(recorded)  # written last: its presence means the run is complete
    return Executed(record, directory, done_work)
