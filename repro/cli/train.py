"""`repro train SETTING --method M --output DIR`: the recipe on accelerate + DeepSpeed ZeRO-3."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli import slurm as slurm_cli
from repro.cli.common import (
    CONFIG_OPTIONS,
    MethodOpt,
    SettingArg,
    app,
    local_or_hub_option,
    path_option,
    with_config_options,
)
from repro.config.config_options import ConfigOptions
from repro.config.runconfig import RunConfig
from repro.errors import ReproError, UsageError, unknown
from repro.runs.pipeline import training
from repro.train import launch
from repro.train.outcome import TrainingOutcome

DEVICES = ("auto", "cuda", "cpu")


@app.command("train")
@slurm_cli.with_slurm_options(only=slurm_cli.SITE_FIELDS)
@with_config_options
def train_cmd(
    setting: SettingArg,
    method: MethodOpt = "simpo",
    output: Annotated[Path, path_option("--output", "-o", role="output-dir", help="Run directory.")] = Path(
        "out/train"
    ),
    options: ConfigOptions = CONFIG_OPTIONS,  # its fields are the options here
    tokenizer: Annotated[
        str | None,
        local_or_hub_option("--tokenizer", help="Tokenizer directory or hub id (default: the model's)."),
    ] = None,
    reference_cache: Annotated[
        Path | None,
        path_option(
            "--reference-cache", role="output-file", help="Reference log-prob cache (created if absent)."
        ),
    ] = None,
    slurm: slurm_cli.SlurmOptions = slurm_cli.SLURM_OPTIONS,  # --launcher and the site's options
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto, cuda or cpu: where training runs (auto: CUDA if this machine has it). "
            "With --launcher slurm, the compute nodes' device.",
        ),
    ] = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the launch command; write nothing into the output.")
    ] = False,
    planned_files: Annotated[
        Path | None,
        path_option(
            "--planned-files",
            role="output-dir",
            help="With --dry-run: write the planned run.json and DeepSpeed/accelerate configs here.",
        ),
    ] = None,
    allow_double_bos: Annotated[
        bool, typer.Option("--allow-double-bos", help="Train even if the BOS check fails.")
    ] = False,
) -> None:
    """Train SETTING x METHOD; writes OUTPUT/model (consolidated weights) and OUTPUT/metrics.json."""
    launcher = "slurm" if slurm.on_slurm() else "local"  # SLURM's options without it: refused
    if device not in DEVICES:
        raise unknown("device", device, DEVICES)
    site = slurm.site().lines() if launcher == "slurm" else []  # a bad --time: refused before any work
    if planned_files is not None and not dry_run:
        raise UsageError("--planned-files goes with --dry-run (a real launch writes its files into --output)")
    if device == "cuda" and launcher == "local" and not dry_run and not launch.cuda_available():
        raise ReproError("--device cuda: this machine has no CUDA device (--launcher slurm for GPU nodes)")
    config, _ = options.resolve(setting, method)
    if not dry_run:
        from repro.runs.pipeline import preflight

        preflight.require(
            config,
            results_root=output,
            output_option="--output",
            here=launcher == "local",
            device=device != "cpu",
        )
    if launcher == "local" and not dry_run:
        _train_here(config, output, tokenizer, reference_cache, device, allow_double_bos)
        return
    done = training.finished(config, output)  # a folder of another config is refused, here too
    if done is not None and launcher == "local":
        _already(output, done)
        return
    run = launch.prepare(
        config,
        output,
        tokenizer=tokenizer,
        reference_cache=str(reference_cache) if reference_cache else None,
        dry_run=dry_run,
        planned_dir=planned_files,
        device=None if device == "auto" else device,
        allow_double_bos=allow_double_bos,
    )
    console = render.console(stderr=True)
    console.print(_layout(config, run.directory))
    if launcher == "slurm":
        text = launch.slurm_script(
            run, nodes=config.batch.num_nodes, processes_per_node=config.batch.num_processes, site=site
        )
        where = "GPU nodes" if run.gpu else "CPU nodes (DS_ACCELERATOR=cpu, gloo; --device cuda for GPUs)"
        if dry_run:  # the script it would write, and nothing written (--planned-files: there)
            print(text, end="")
            if run.planned:
                (run.planned / "train.sbatch").write_text(text)
            planned = f"; the planned files are in {run.planned}" if run.planned else ""
            console.print(f"dry run: nothing written to {run.directory}{planned}")
            return
        script = run.directory / "train.sbatch"
        script.write_text(text)
        console.print(f"wrote {script} for {where}; submit with: sbatch {script}")
        return
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in run.env.items())
    print(f"{env} {shlex.join(run.command)}")
    where = (
        f"; the planned files are in {run.planned}"
        if run.planned
        else " (--planned-files DIR writes the planned files there)"
    )
    console.print(f"dry run: nothing written to {run.directory}{where}")


def _layout(config: RunConfig, directory: Path) -> str:
    return f"{config.setting} x {config.method}: {config.batch.describe()}; run directory {directory}"


def _already(output: Path, outcome: TrainingOutcome) -> None:
    """Finished means finished: nothing is resumed, rewritten or relaunched."""
    render.console(stderr=True).print(
        f"already trained: {outcome.steps} steps, {output / 'metrics.json'} (nothing to do)",
        markup=False,
        highlight=False,
    )


def _train_here(
    config: RunConfig,
    output: Path,
    tokenizer: str | None,
    reference_cache: Path | None,
    device: str,
    allow_double_bos: bool,
) -> None:
    """The train stage on this machine (repro.runs.pipeline.training, as `repro run` runs it)."""
    console = render.console(stderr=True)
    with render.Bars() as bars:
        trained = training.train(
            config,
            output,
            tokenizer=tokenizer,
            reference_cache=str(reference_cache) if reference_cache else None,
            device=None if device == "auto" else device,
            allow_double_bos=allow_double_bos,
            on_launch=lambda run: bars.echo(_layout(config, run.directory)),
            progress=bars,
            echo=bars.echo,
            verbose=render.VERBOSE,
        )
    out = trained.outcome
    if not trained.launched:
        _already(output, out)
        return
    nan = float("nan")

    def value(x: float | None) -> float:
        return nan if x is None else x

    # a resumed training's seconds are this launch's: say which steps they cover
    resumed = re.fullmatch(r"checkpoint-(\d+)", Path(out.resumed_from).name) if out.resumed_from else None
    steps = f"{out.steps} steps" + (
        f" ({out.steps - int(resumed[1])} after resuming at {resumed[1]})" if resumed else ""
    )
    console.print(
        f"done: {steps} in {out.train_seconds} s, {out.world_size} processes; "
        f"held-out reward accuracy {value(out.accuracy_before):.3f} -> {value(out.held_out_accuracy):.3f}, "
        f"eval loss {value(out.loss_before):.4f} -> {value(out.held_out_loss):.4f}; "
        f"{trained.directory / 'metrics.json'}"
    )
    for name, where in (out.trackers or {}).items():
        if isinstance(where, dict):
            console.print(f"{name}: {where.get('url') or where.get('dir')}", markup=False, highlight=False)
