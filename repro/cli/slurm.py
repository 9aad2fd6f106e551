"""`repro run/sweep --launcher slurm` (the pipeline as SLURM jobs) and `repro status`."""

from __future__ import annotations

import dataclasses
import inspect
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from repro.cli import render
from repro.cli.common import app, format_option, in_place_of, path_argument, path_option
from repro.errors import UsageError, unknown
from repro.evaluation.eval_options import EvalOptions
from repro.runs.cluster import status

LAUNCHERS = ("local", "slurm")

LauncherOpt = Annotated[
    str,
    typer.Option(
        "--launcher",
        metavar="local|slurm",
        help="local: on this machine; slurm: as SLURM jobs (sbatch scripts).",
    ),
]
SubmitOpt = Annotated[bool, typer.Option("--submit", help="With --launcher slurm: sbatch the jobs.")]
MaxParallelOpt = Annotated[
    int | None, typer.Option("--max-parallel", metavar="N", help="SLURM: at most N array elements at once.")
]
PartitionOpt = Annotated[str | None, typer.Option("--partition", metavar="NAME", help="SLURM partition.")]
AccountOpt = Annotated[str | None, typer.Option("--account", metavar="NAME", help="SLURM account.")]
TimeOpt = Annotated[str, typer.Option("--time", metavar="D-HH:MM:SS", help="SLURM time limit of each job.")]
QosOpt = Annotated[str | None, typer.Option("--qos", metavar="NAME", help="SLURM quality of service.")]
ConstraintOpt = Annotated[
    str | None, typer.Option("--constraint", metavar="FEATURES", help="SLURM node features.")
]
SbatchExtraOpt = Annotated[
    Path | None,
    path_option("--sbatch-extra", role="file", help="A file of extra '#SBATCH ...' lines for every job."),
]
JudgeOnOpt = Annotated[
    str,
    typer.Option("--judge-on", metavar="node|login", help="SLURM: judge in a CPU job or on the login node."),
]
SlurmDeviceOpt = Annotated[
    str, typer.Option("--device", metavar="cuda|cpu", help="SLURM: the compute nodes' device.")
]
SignalOpt = Annotated[
    int,
    typer.Option(
        "--signal-seconds", metavar="S", help="SLURM: warning signal this long before the time limit."
    ),
]


@dataclass(frozen=True)
class SlurmOptions:
    """The launcher options `repro run`, `repro sweep` and `repro train` share, declared once:
    `with_slurm_options` gives a command each field (or the fields it names) as its own option
    (the annotation is the Typer option)."""

    launcher: LauncherOpt = "local"
    submit: SubmitOpt = False
    max_parallel: MaxParallelOpt = None
    partition: PartitionOpt = None
    account: AccountOpt = None
    time_limit: TimeOpt = "24:00:00"
    qos: QosOpt = None
    constraint: ConstraintOpt = None
    sbatch_extra: SbatchExtraOpt = None
    judge_on: JudgeOnOpt = "node"
    device: SlurmDeviceOpt = "cuda"
    signal_seconds: SignalOpt = 300

    def on_slurm(self) -> bool:
        """True for the SLURM launcher; --submit alone is refused."""
        if self.launcher not in LAUNCHERS:
            raise unknown("launcher", self.launcher, LAUNCHERS)
        if self.launcher != "slurm" and (given := self._slurm_only_given()):
            verb = "goes" if len(given) == 1 else "go"
            raise UsageError(f"{', '.join(given)} {verb} with --launcher slurm")  # else ignored unseen
        return self.launcher == "slurm"

    def _slurm_only_given(self) -> list[str]:
        """The SLURM options set to anything but their defaults, by flag."""
        hints = typing.get_type_hints(type(self), include_extras=True)
        given = []
        for field in dataclasses.fields(self):
            if field.name == "launcher" or getattr(self, field.name) == field.default:
                continue
            option = hints[field.name].__metadata__[0]  # typer keeps an Annotated option's first name here
            given.append(option.default if isinstance(option.default, str) else field.name)
        return given

    def site(self):
        """The cluster's #SBATCH lines for every job (repro.runs.cluster.slurm.Site)."""
        # deferred: repro.runs.cluster.slurm imports torch (through repro.train.preemption)
        from repro.runs.cluster import slurm

        return slurm.Site(
            partition=self.partition,
            account=self.account,
            time=self.time_limit,
            qos=self.qos,
            constraint=self.constraint,
            extra=slurm.Site.read_extra(self.sbatch_extra),
        )

    def build_options(self) -> dict[str, Any]:
        """repro.runs.cluster.slurm.build's keyword arguments for the cluster: the site and the throttle."""
        return dict(
            site=self.site(),
            max_parallel=self.max_parallel,
            judge_on=self.judge_on,
            device=self.device,
            signal_seconds=self.signal_seconds,
        )


# What a command's `slurm` parameter defaults to; with_slurm_options puts the options in its place.
SLURM_OPTIONS = SlurmOptions()


# The options that say where a job runs, the same for every job: what `repro train` takes.
SITE_FIELDS = ("launcher", "partition", "account", "time_limit", "qos", "constraint", "sbatch_extra")


def with_slurm_options(
    command: Callable[..., None] | None = None, *, only: tuple[str, ...] | None = None
) -> Callable[..., Any]:
    """Declare SlurmOptions' fields (`only` these, if given) as `command`'s options, where its
    `slurm` parameter stands (so `--help` lists them there); `command` gets them back as one
    SlurmOptions, the fields it does not take at their defaults."""
    hints = typing.get_type_hints(SlurmOptions, include_extras=True)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    own = [
        inspect.Parameter(f.name, kind, default=f.default, annotation=hints[f.name])
        for f in dataclasses.fields(SlurmOptions)
        if only is None or f.name in only
    ]
    decorate = in_place_of("slurm", own, lambda values: SlurmOptions(**values))
    return decorate if command is None else decorate(command)


def launch(
    configs: list,
    *,
    results: Path,
    benches: list[str],
    judge,
    eval_options: EvalOptions,
    slurm_options: SlurmOptions,
    dry_run: bool,
    fmt: str,
) -> None:
    """Build the pipeline; print it (--dry-run), write it, or write and submit it (--submit).
    `eval_options` travel whole to the evaluation jobs."""
    # deferred: repro.runs.cluster.slurm imports torch (through repro.train.preemption)
    from repro.runs.cluster import slurm

    submit = slurm_options.submit
    pipeline = slurm.build(
        configs,
        results_root=results,
        benches=benches,
        judge=judge,
        options=eval_options,
        **slurm_options.build_options(),
    )
    if not dry_run:
        if submit:
            slurm.require_sbatch()
        slurm.check_results_shared(results)
    summary = {
        "folder": str(pipeline.folder),
        "order": pipeline.order(),
        "estimate": pipeline.estimate,
        "runs": [{"run_dir": str(p.directory), **p.values} for p in pipeline.points],
    }
    if dry_run:
        if fmt == "json":
            render.print_json(
                {**summary, "scripts": {j.name: j.script for j in pipeline.jobs}, "dry_run": True}
            )
            return
        out = render.console()
        for job in pipeline.jobs:
            out.rule(f"{pipeline.folder / (job.name + '.sbatch')} (not written)")
            out.print(job.script, markup=False, highlight=False, end="", soft_wrap=True)
        out.rule("submission order")
        for number, line in enumerate(pipeline.order(), start=1):
            out.print(f"{number}. {line}", markup=False, highlight=False, soft_wrap=True)
        out.print(
            f"estimate: {slurm.estimate_text(pipeline.estimate)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        out.print("dry run: nothing written, nothing submitted", markup=False, highlight=False)
        return
    written = slurm.write(pipeline)
    ids = slurm.submit(pipeline) if submit else {}
    if fmt == "json":
        render.print_json({**summary, "scripts": [str(p) for p in written], "jobs": ids})
        return
    rows = [(f"script {p.stem}", str(p)) for p in written]
    rows += [(f"job {name}", job) for name, job in ids.items()]
    rows += [(f"step {i}", line) for i, line in enumerate(pipeline.order(), start=1)]
    rows.append(("estimate", slurm.estimate_text(pipeline.estimate)))
    caption = (
        "submitted; follow with: repro status " + str(results) if ids else "written; submit with --submit"
    )
    render.print_table(
        render.table(["slurm", "value"], rows, title=f"pipeline {pipeline.folder.name}", caption=caption)
    )


@app.command("status")
def status_cmd(
    results_dir: Annotated[Path, path_argument("dir", "A results folder (runs anywhere below it).")],
    watch: Annotated[
        float | None,
        typer.Option("--watch", metavar="SECONDS", help="Refresh every SECONDS until interrupted."),
    ] = None,
    fmt: Annotated[str, format_option("table", "json")] = "table",
) -> None:
    """Every run below RESULTS_DIR: stage, SLURM job and state, judge cost so far, score."""
    if watch is not None and watch <= 0:
        raise UsageError(f"--watch expects a positive number of seconds, got {watch}")
    while True:
        rows = status.collect(results_dir)
        if fmt == "json":
            render.print_json({"runs": [r.as_dict() for r in rows]})
        else:
            if watch:
                render.console().clear()
            render.print_table(_status_table(rows, results_dir))
        if not watch:
            return
        time.sleep(watch)


def _status_table(rows, results_dir: Path):
    body = [
        (
            r.setting,
            r.method,
            r.point_text(),
            r.stage,
            r.job or "",
            r.job_state or "",
            "" if r.judge_cost_usd is None else f"${r.judge_cost_usd:,.2f}",
            r.score_text(),
        )
        for r in rows
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    caption = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no runs"
    return render.table(
        ["setting", "method", "point", "stage", "job", "state", "judge cost", "score"],
        body,
        title=f"runs under {results_dir}",
        caption=caption,
    )
