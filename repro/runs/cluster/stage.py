"""One stage of a SLURM pipeline (repro.runs.cluster.slurm), as its job runs it:

    python -m repro.runs.cluster.stage generate RESULTS/slurm/ID/plan.json INDEX   # one run's answers
    python -m repro.runs.cluster.stage judge RESULTS/slurm/ID/plan.json            # every run: judge, score

The job script passes SLURM's warning signal (USR1) on to this process: it stops where it is
(answers and judgments written so far stay in their logs and the cache) and exits with
repro.runs.cluster.sbatch.REQUEUE_EXIT, and the script requeues the job. Each run's `stage.json` says
what it is doing, for `repro status`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from repro import io
from repro.config.runconfig import RunConfig
from repro.errors import ReproError, unknown
from repro.evaluation import benchmarks
from repro.evaluation.eval_options import EvalOptions
from repro.evaluation.judge.spec import Judge
from repro.runs.analysis import grid
from repro.runs.pipeline import run

STAGE_FILE = "stage.json"  # in a run's evaluation folder: the pipeline stage working on it


class Preempted(BaseException):
    """The warning signal arrived: stop now, to be requeued (BaseException: no handler keeps going)."""


def _on_signal(signum, frame) -> None:
    raise Preempted


def mark(directory: Path, stage: str, **extra: Any) -> None:
    """Record which stage works on a run (and its SLURM job), for `repro status`."""
    job = os.environ.get("SLURM_JOB_ID")
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    io.write_json(
        directory / STAGE_FILE,
        {
            "stage": stage,
            "job": f"{array}_{task}" if array and task else job,
            "updated": time.time(),
            **extra,
        },
    )


def eval_options(plan: dict[str, Any], plan_file: Path) -> EvalOptions:
    """The evaluation options the pipeline was planned with, whole (a plan written before they
    were recorded holds only the backend and the limit)."""
    if "options" not in plan:
        return EvalOptions(backend=plan["backend"], limit=plan["limit"])
    options = EvalOptions.from_json(plan["options"], where=f"{plan_file} options")
    known = [o.name for o in benchmarks.data_options()]  # the plan's plugins are loaded by now
    for name in options.data_paths:
        if name not in known:
            raise unknown(f"data option in {plan_file}", name, tuple(known))
    return options


def load(plan_file: Path) -> tuple[dict[str, Any], list[RunConfig], Judge]:
    plan = io.read_json(plan_file)
    if not plan:
        raise ReproError(f"{plan_file}: no pipeline plan there")
    benchmarks.load_plugins(plan.get("plugins", {}), where=str(plan_file))
    configs = [
        RunConfig.from_json(p["config"], where=f"{plan_file} point {i}") for i, p in enumerate(plan["points"])
    ]
    fields = {f.name for f in dataclasses.fields(Judge)}  # describe() may say more than the fields
    judge = {k: v for k, v in plan["judge"].items() if k in fields}
    judge["cache"] = Path(judge["cache"])
    return plan, configs, Judge(**judge)


def generate(plan_file: Path, index: int) -> None:
    plan, configs, judge = load(plan_file)
    if not 0 <= index < len(configs):
        raise ReproError(f"{plan_file}: no point {index} (the plan has {len(configs)})")
    config, point = configs[index], plan["points"][index]
    directory = Path(point["directory"])
    results_root = Path(point["root"]).parents[2]
    mark(directory, "generating")
    run.generate(
        config,
        results_root=results_root,
        benches=plan["benches"],
        judge=judge,
        options=eval_options(plan, plan_file),
        progress=lambda label, done, total: mark(directory, "generating", done=done, total=total),
    )
    mark(directory, "generated")
    print(f"repro: answers of {directory} written", flush=True)


def judge(plan_file: Path) -> None:
    """Every run of the plan in one process: one judge client, one cache user."""
    plan, configs, the_judge = load(plan_file)
    judging = dataclasses.replace(eval_options(plan, plan_file), stage="judge")
    failures = []
    for point, config in zip(plan["points"], configs, strict=True):
        directory = Path(point["directory"])
        mark(directory, "judging")
        try:
            done = run.execute(
                config,
                results_root=Path(point["root"]).parents[2],
                benches=plan["benches"],
                judge=the_judge,
                options=judging,
            )
        except ReproError as exc:  # one run's failure does not stop the others
            mark(directory, "failed", reason=str(exc))
            failures.append(f"{directory.name}: {exc}")
            print(f"repro: error: {directory}: {exc}", flush=True)
            continue
        mark(directory, "done")
        print(f"repro: scored {done.run_dir}", flush=True)
    if len(configs) > 1:  # the sweep's grid: table and heat maps beside the plan
        folders = {Path(p["directory"]).resolve() for p in plan["points"]}
        for sweep in grid.sweeps(Path(plan["points"][0]["root"]).parents[2], only=folders):
            for path in grid.write(sweep, plan_file.parent):
                print(f"repro: wrote {path}", flush=True)
    if failures:
        raise ReproError(f"{len(failures)} of {len(configs)} runs failed: {'; '.join(failures)}")


def main(argv: list[str]) -> int:
    # deferred: repro.runs.cluster.sbatch imports torch (through repro.train.preemption)
    from repro.runs.cluster.sbatch import REQUEUE_EXIT

    signal.signal(signal.SIGUSR1, _on_signal)
    try:
        if len(argv) == 3 and argv[0] == "generate":
            generate(Path(argv[1]), int(argv[2]))
        elif len(argv) == 2 and argv[0] == "judge":
            judge(Path(argv[1]))
        else:
            raise ReproError("usage: python -m repro.runs.cluster.stage generate PLAN INDEX | judge PLAN")
    except Preempted:
        print("repro: warning signal: stopped; answers and judgments so far are kept", flush=True)
        return REQUEUE_EXIT
    except ReproError as exc:
        print(f"repro: error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main(sys.argv[1:]))
