"""Whole runs and sweeps as SLURM jobs: train -> generate -> judge and score, chained.

One pipeline per `repro run/sweep --launcher slurm`, in RESULTS/slurm/<pipeline-id>/:

- `train.sbatch`: a job array, one element per grid point (multi-node as `repro train
  --launcher slurm`), throttled with `%N` (--max-parallel);
- `generate.sbatch`: a job array on GPU nodes, after the training array (afterok): each
  element writes its run's answers, resumable;
- `judge.sbatch`: one CPU job for every run of the pipeline (afterok on generation), so the
  judge's rate limits and the judgment cache have one user; it scores each run and writes
  `result.json` (or the same command on the login node with --judge-on login);
- `plan.json` (what each stage job reads), `submitted.json` (the job ids), `logs/`.

The scripts' text comes from repro.runs.cluster.sbatch.

Preemption: every job asks for a warning signal (`--signal=B:USR1@SECONDS`) and is
requeueable. On the signal, training checkpoints and stops (repro.train.preemption), the
generation and judging processes stop (their answer logs and the judgment cache keep what
is done), and the job script requeues itself. A job that fails for any other reason exits
non-zero and is never requeued: its dependants are cancelled (--kill-on-invalid-dep) and
`repro status` shows the reason from its log.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import filesystems, io
from repro.config.runconfig import RunConfig
from repro.errors import ReproError, UsageError, unknown
from repro.evaluation import benchmarks, judgecost
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from repro.runs.cluster import sbatch
from repro.runs.pipeline import preflight, run, sweep, training
from repro.train import launch

DEVICES = ("cuda", "cpu")
JUDGE_ON = ("node", "login")
_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")


@dataclass
class Site:
    """What the cluster needs on every job: passed through as #SBATCH lines."""

    partition: str | None = None
    account: str | None = None
    time: str = "24:00:00"
    qos: str | None = None
    constraint: str | None = None
    extra: list[str] = field(default_factory=list)  # whole `#SBATCH ...` lines from --sbatch-extra

    @classmethod
    def read_extra(cls, path: Path | None) -> list[str]:
        """The extra #SBATCH lines of a file (blank lines and comments skipped; anything else refused)."""
        if path is None:
            return []
        lines = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line or (line.startswith("#") and not line.startswith("#SBATCH")):
                continue
            if not line.startswith("#SBATCH "):
                raise UsageError(f"{path}:{number}: expected an '#SBATCH --option' line, got '{line}'")
            lines.append(line)
        return lines

    def lines(self) -> list[str]:
        if not _TIME.match(self.time):
            raise UsageError(f"--time '{self.time}': expected SLURM's [DAYS-]HH:MM:SS, e.g. 24:00:00")
        if any(int(field) > 59 for field in self.time.rpartition("-")[2].split(":")[1:]):
            raise UsageError(f"--time '{self.time}': minutes and seconds run to 59")
        options = {
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
        }
        return (
            [f"#SBATCH --time={self.time}"]
            + [f"#SBATCH --{k}={v}" for k, v in options.items() if v]
            + list(self.extra)
        )

    def hours(self) -> float:
        """The time limit in hours."""
        days, _, clock = self.time.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        # SLURM: M, M:S, H:M:S; with days: D-H, D-H:M, D-H:M:S
        if days:
            h, m, s = (parts + [0, 0])[:3]
        else:
            h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
        return int(days or 0) * 24 + h + m / 60 + s / 3600


@dataclass
class Point:
    """One run of the pipeline: its config, its grid values and where it lives."""

    config: RunConfig
    values: dict[str, float]
    root: Path  # results/<setting>/<method>/<run-id>: train/ lives here
    directory: Path  # the evaluation's folder (root, or root/partial-limitN)


@dataclass
class Job:
    name: str  # train | generate | judge
    script: str
    array: int | None  # elements, for an array job
    after: str | None  # the job it waits for (afterok)
    where: str  # in words: what it runs on


@dataclass
class Pipeline:
    folder: Path
    points: list[Point]
    jobs: list[Job]
    plan: dict[str, Any]
    estimate: dict[str, Any]
    judge_on: str

    def order(self) -> list[str]:
        """The submission order, in words."""
        lines = []
        for job in self.jobs:
            what = f"array of {job.array}" if job.array is not None else "one job"
            after = f", after {job.after} succeeds (--dependency=afterok)" if job.after else ""
            lines.append(
                f"sbatch {self.folder / (job.name + '.sbatch')}: {job.name}, {what} on {job.where}{after}"
            )
        if self.judge_on == "login":
            lines.append(f"then on the login node, after generation: {judge_command(self.folder)}")
        return lines


def judge_command(folder: Path) -> str:
    plan = shlex.quote(str(folder / "plan.json"))
    return f"{shlex.quote(sys.executable)} -m repro.runs.cluster.stage judge {plan}"


def pipeline_id(points: list[Point], benches: list[str], judge: Judge, options: EvalOptions) -> str:
    """<setting>-<method>-<hash> of everything that changes the pipeline's result: its runs, the
    benchmarks, the judge and the evaluation options, whole as `plan.json` records them (another
    --zeroeval-data or --backend is another pipeline, never an overwritten plan). Options left at
    their defaults but the limit hash as the limit alone did before, so such pipelines keep their folder."""
    first = points[0].config
    identity: dict[str, Any] = {
        "runs": [str(p.directory) for p in points],
        "benches": sorted(benches),
        "judge": judge.describe(),
        "limit": options.limit,
    }
    if options.to_json() != EvalOptions(limit=options.limit).to_json():
        # every built-in data option named (null: not given), as plans recorded them before
        # benchmarks declared their own: the same options keep their pipeline's folder
        built_in = [benchmarks.get(n) for n in benchmarks.names() if not benchmarks.is_plugin(n)]
        names = {o.name: None for bench in built_in for o in bench.data_options}
        identity["options"] = {**names, **options.to_json()}
    body = json.dumps(identity, sort_keys=True)
    return f"{first.setting}-{first.method}-{hashlib.sha256(body.encode()).hexdigest()[:10]}"


def check_results_shared(results_root: Path) -> None:
    """Compute nodes must see the results folder: refuse folders known to be node-local."""
    reason = filesystems.node_local_reason(results_root)
    if reason:
        raise ReproError(
            f"{results_root}: {reason}, so the compute nodes cannot see it; "
            "put --results on a filesystem the nodes share"
        )


def points_for(
    configs: list[tuple[RunConfig, dict[str, float]]],
    *,
    results_root: Path,
    limit: int | None,
    backend: str,
) -> list[Point]:
    """The pipeline's runs; two points that would share a run folder are refused."""
    sweep.check_distinct(configs)
    points: list[Point] = []
    for config, values in configs:
        root = run.safe_child(results_root, config.setting, config.method, config.run_id)
        directory = run.run_directory(config, results_root, limit, backend)
        points.append(Point(config, values, root, directory))
    if not points:
        raise UsageError("the sweep has no grid points")
    return points


def build(
    configs: list[tuple[RunConfig, dict[str, float]]],
    *,
    results_root: Path,
    benches: list[str],
    judge: Judge,
    options: EvalOptions | None = None,
    site: Site | None = None,
    max_parallel: int | None = None,
    judge_on: str = "node",
    device: str = "cuda",
    signal_seconds: int = 300,
) -> Pipeline:
    """Every job script of the pipeline, in memory: nothing is written. `options`: how the
    evaluation jobs run, whole (their backend and limit also name the runs' folders)."""
    site = site or Site()
    options = (options or EvalOptions()).absolute()
    limit = options.limit
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel must be at least 1, got {max_parallel}")
    if judge_on not in JUDGE_ON:
        raise unknown("--judge-on", judge_on, JUDGE_ON)
    if device not in DEVICES:
        raise unknown("--device", device, DEVICES)
    if signal_seconds < 1:
        raise UsageError(f"--signal-seconds must be at least 1, got {signal_seconds}")
    site_lines = site.lines()
    if 0 < site.hours() * 3600 <= signal_seconds:  # the warning would come at the start: requeue at once
        raise UsageError(f"--signal-seconds {signal_seconds} is not shorter than --time {site.time}")
    if any(ch.isspace() for ch in str(Path(results_root).absolute())):
        # the #SBATCH --output lines and the printed commands cannot carry it
        raise UsageError(
            f"--results '{results_root}': a folder whose path holds spaces cannot go into SLURM's scripts"
        )
    points = points_for(configs, results_root=results_root, limit=limit, backend=options.backend)
    folder = run.safe_child(results_root, "slurm", pipeline_id(points, benches, judge, options))
    batch = points[0].config.batch
    nodes, per_node = batch.num_nodes, batch.num_processes
    gpu = device == "cuda"
    throttle = f"%{max_parallel}" if max_parallel else ""
    n = len(points)
    common = dict(site_lines=site_lines, signal_seconds=signal_seconds, folder=folder)
    train_dirs = [p.root / "train" for p in points]
    jobs = [
        Job(
            "train",
            sbatch.script(
                "train",
                resources=sbatch.resources(gpu, nodes, per_node),
                array=f"0-{n - 1}{throttle}",
                body=sbatch.train_body(train_dirs, nodes, per_node, gpu),
                **common,
            ),
            n,
            None,
            f"{nodes} node(s) x {per_node} {'GPU' if gpu else 'CPU process'}(s) each",
        ),
        Job(
            "generate",
            sbatch.script(
                "generate",
                resources=sbatch.resources(gpu, 1, 1),
                array=f"0-{n - 1}{throttle}",
                body=sbatch.stage_body("generate", folder, '"$SLURM_ARRAY_TASK_ID"'),
                **common,
            ),
            n,
            "train",
            "1 GPU" if gpu else "1 CPU",
        ),
    ]
    if judge_on == "node":
        jobs.append(
            Job(
                "judge",
                sbatch.script(
                    "judge",
                    resources=["#SBATCH --cpus-per-task=1"],
                    array=None,
                    body=sbatch.stage_body("judge", folder, ""),
                    **common,
                ),  # fmt: skip
                None,
                "generate",
                "1 CPU, no GPU: judges and scores every run in one process",
            )
        )
    plan = {
        "points": [
            {
                "config": p.config.to_json(),
                "values": p.values,
                "root": str(p.root),
                "directory": str(p.directory),
            }
            for p in points
        ],
        "benches": benches,
        "plugins": benchmarks.plugins(benches),  # --bench-path files: the jobs load them from here
        "judge": {
            **judge.describe(),
            "concurrency": judge.concurrency,
            "cache": str(judge.cache),
            "refresh": judge.refresh,
        },
        "options": options.to_json(),  # the evaluation jobs' EvalOptions, whole
        "device": device,
    }
    per_run = judgecost.for_judge(judge.kind, benches, limit=limit, judge_model=judge.model)
    usd = per_run["estimated_cost_usd"] * n
    hours = site.hours()
    estimate = {
        "runs": n,
        # --time 0 is SLURM's "no limit": no bound to give (None), not zero GPU-hours
        "gpu_hours_reserved": (round(n * hours * nodes * per_node, 1) if hours else None) if gpu else 0.0,
        "gpu_hours_note": "upper bound: runs x nodes x GPUs per node x --time (training only)",
        "judge_calls": per_run["total_calls"] * n,
        "judge_cost_usd": round(usd, 2),
    }
    return Pipeline(folder, points, jobs, plan, estimate, judge_on)


# -- writing and submitting -------------------------------------------------------------------


def write(pipeline: Pipeline, *, device: str | None = None) -> list[Path]:
    """Prepare every run's training folder and write the scripts and plan; the script paths."""
    judge = pipeline.plan["judge"]
    if judge["kind"] == "endpoint" and not judge["url"]:  # found now, not hours later in the judging job
        raise UsageError("no judge: pass --judge-url URL (an OpenAI-compatible endpoint) or --judge rule")
    todo = [p for p in pipeline.points if training.finished(p.config, p.root / "train") is None]
    for point in todo:  # what the login node can check (trackers, folders), before anything is written
        preflight.require(point.config, results_root=point.root, here=False)
    for point in todo:
        launch.prepare(point.config, point.root / "train", device=device or pipeline.plan["device"])
    pipeline.folder.mkdir(parents=True, exist_ok=True)
    (pipeline.folder / "logs").mkdir(exist_ok=True)
    io.write_json(pipeline.folder / "plan.json", pipeline.plan)
    written = []
    for job in pipeline.jobs:
        path = pipeline.folder / f"{job.name}.sbatch"
        path.write_text(job.script)
        written.append(path)
    return written


def require_sbatch() -> str:
    found = shutil.which("sbatch")
    if found is None:
        raise ReproError("--submit: no 'sbatch' on the PATH; run this on the cluster's login node")
    return found


def submit(pipeline: Pipeline) -> dict[str, str]:
    """sbatch every job in order with its dependency; the job ids (also in submitted.json).
    When sbatch refuses a job, the ones already submitted are cancelled: all or nothing."""
    program = require_sbatch()
    ids: dict[str, str] = {}
    for job in pipeline.jobs:
        args = [program, "--parsable", "--kill-on-invalid-dep=yes"]
        if job.after:
            args.append(f"--dependency=afterok:{ids[job.after]}")
        args.append(str(pipeline.folder / f"{job.name}.sbatch"))
        proc = subprocess.run(args, capture_output=True, text=True, cwd=pipeline.folder)
        if proc.returncode != 0:
            _cancel(list(ids.values()))
            message = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
            undone = f"; cancelled {', '.join(ids.values())}" if ids else "; nothing was submitted"
            raise ReproError(f"sbatch refused the {job.name} job: {message}{undone}")
        ids[job.name] = proc.stdout.strip().split(";")[0]
    record = {
        "jobs": ids,
        "runs": [
            {"root": str(p.root), "directory": str(p.directory), "index": i, "values": p.values}
            for i, p in enumerate(pipeline.points)
        ],
        "judge_on": pipeline.judge_on,
    }
    io.write_json(pipeline.folder / "submitted.json", record)
    return ids


def _cancel(ids: list[str]) -> None:
    if ids and (scancel := shutil.which("scancel")):
        subprocess.run([scancel, *ids], capture_output=True)


def estimate_text(estimate: dict[str, Any]) -> str:
    judge = (
        f"{estimate['judge_calls']} judge calls, about ${estimate['judge_cost_usd']:,.2f}"
        if estimate["judge_calls"]
        else "local rule judge, no cost"
    )
    hours = estimate["gpu_hours_reserved"]
    if hours is None:
        gpu = "GPU nodes without a time limit (--time 0): no bound on the GPU-hours"
    elif hours:
        gpu = f"at most {hours:,.0f} GPU-hours of training reserved ({estimate['gpu_hours_note']})"
    else:
        gpu = "CPU nodes"
    return f"{estimate['runs']} runs; {gpu}; {judge}"
