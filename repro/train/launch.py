"""Launch training on the real engine: accelerate + DeepSpeed ZeRO-3, local or SLURM.

`prepare()` writes a run directory: run.json (the resolved recipe and paths), a DeepSpeed
JSON whose batch sizes are explicit numbers (HF's "auto" resolves a world size of 1 on
CPU and DeepSpeed refuses the config), and an accelerate YAML. `launch()` runs
`accelerate launch -m repro.train.worker run.json`; without CUDA it sets DS_ACCELERATOR=cpu so
the same ZeRO-3 path runs on CPU processes (gloo).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repro import paths, tiny
from repro.config.runconfig import RunConfig, RunFile, RunPaths
from repro.data import alpaca_preferences, bosguard, tokenizers
from repro.data.preference import Pipeline, load_rows
from repro.errors import ReproError
from repro.io import read_json, write_json
from repro.models import catalog
from repro.progress import Progress
from repro.train import trackers

TINY_MODEL = "repro:tiny-llama"
TINY_DATA = "repro:synthetic-preferences"


@dataclass
class Run:
    directory: Path
    run_file: Path
    accelerate_config: Path
    deepspeed_config: Path
    command: list[str]
    env: dict[str, str]
    num_processes: int
    num_nodes: int
    bos_check: bosguard.Report  # also written to bos_check.json
    planned: Path | None = None  # where a dry run wrote its planned files, when asked to
    gpu: bool = True  # CUDA processes; False: CPU processes (DS_ACCELERATOR=cpu, gloo)


def cuda_available() -> bool:
    """Whether this machine's torch sees a CUDA device. A CPU build ("2.13.0+cpu") never does,
    and its version says so without importing torch (about 2.5 s of CPU on 2 cores)."""
    from importlib import metadata

    try:
        if metadata.version("torch").endswith("+cpu"):
            return False
        import torch

        return torch.cuda.is_available()
    except (ImportError, metadata.PackageNotFoundError):  # pragma: no cover
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deepspeed_json(config: RunConfig, *, gpu: bool) -> dict[str, Any]:
    batch = config.batch
    return {
        "bf16": {"enabled": bool(config.bf16 and gpu)},
        "zero_optimization": {
            "stage": 3,
            "offload_optimizer": {"device": "none"},
            "offload_param": {"device": "none"},
            "overlap_comm": gpu,
            "contiguous_gradients": True,
            "stage3_gather_16bit_weights_on_model_save": True,
        },
        "gradient_clipping": 1.0,
        "train_micro_batch_size_per_gpu": batch.per_device,
        "gradient_accumulation_steps": batch.gradient_accumulation_steps,
        # train_batch_size is left to DeepSpeed (micro x accumulation x world size): on CPU HF's
        # TrainingArguments computes a world size of 1 and would refuse an explicit total.
        "steps_per_print": 1_000_000,
        "wall_clock_breakdown": False,
    }


def accelerate_yaml(ds_path: Path, num_processes: int, num_nodes: int, port: int) -> dict[str, Any]:
    return {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "deepspeed_config": {
            "deepspeed_config_file": str(ds_path),
            "deepspeed_multinode_launcher": "standard",
            "zero3_init_flag": True,
        },
        "distributed_type": "DEEPSPEED",
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "num_machines": num_nodes,
        "num_processes": num_processes * num_nodes,  # accelerate counts processes over all machines
        "main_process_port": port,
        "rdzv_backend": "static",
        "same_network": True,
        "tpu_env": [],
        "tpu_use_cluster": False,
        "tpu_use_sudo": False,
        "use_cpu": False,
    }


def _materialize_tiny(config: RunConfig, directory: Path) -> tuple[str, str, Path]:
    """The tiny tokenizer and the synthetic data into the run directory. The model's weights
    are the training process's to write (repro.train.worker.materialize_tiny): it imports
    transformers' model code anyway, and this process then need not."""
    model_dir = tiny.save_tokenizer(directory / "init-model")
    data_dir = directory / "data"
    if config.dataset == TINY_DATA and not (data_dir / "train.jsonl").exists():
        tiny.write_dataset(data_dir, seed=config.seed)
    return str(model_dir), str(model_dir), data_dir


def build_dataset(config: RunConfig, data_dir: Path) -> None:
    """Binarize the annotation files into `data_dir` (train.jsonl, test.jsonl, heldout.json),
    once: a folder already built from the same sources and options is kept."""
    options = dict(config.dataset_options or {})
    source, sha = options.pop("source", None), options.pop("sources_sha256", None)
    if not source or not sha:
        raise ReproError(
            f"{config.setting}: its dataset is built from AlpacaEval annotation files: pass --data DIR "
            "(alpaca_eval's results/*/weighted_alpaca_eval_gpt4_turbo/annotations.json as "
            "preferences/*.json, and reference/gpt4_1106_preview.json), or keep shared/ beside the checkout"
        )
    record = read_json(data_dir / "binarization.json")
    wanted = alpaca_preferences.Binarization(**options)
    if record and record.get("sources_sha256") == sha and record.get("config") == dataclasses.asdict(wanted):
        return
    alpaca_preferences.write(Path(source), data_dir, wanted)


def training_rows(config: RunConfig, split: str) -> list[Any]:
    """The rows of `split` that a run of `config` reads, as stored: the tiny setting's synthetic
    pairs and the smol setting's binarized annotations built as `prepare` builds them (in a
    temporary folder), any other dataset read where the run reads it (a folder, or a hub
    dataset at the commit `config` pins)."""
    if config.dataset not in (TINY_DATA, alpaca_preferences.NAME):
        return load_rows(config.dataset, split, revision=config.dataset_commit)
    with tempfile.TemporaryDirectory(prefix="repro-rows-") as tmp:
        if config.dataset == TINY_DATA:
            tiny.write_dataset(Path(tmp), seed=config.seed)
        else:
            build_dataset(config, Path(tmp))
        return load_rows(config.dataset, split, Path(tmp))


def command_for(accelerate_config: Path, run_file: Path, num_processes: int, num_nodes: int) -> list[str]:
    """The one command that trains: every launcher and every dry run prints this. The process
    counts repeat the accelerate config's, so the command line alone says what runs."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config),
        "--num_processes",
        str(num_processes * num_nodes),
        "--num_machines",
        str(num_nodes),
        "-m",
        "repro.train.worker",
        str(run_file),
    ]


def environment(config: RunConfig, directory: Path, gpu: bool) -> dict[str, str]:
    """What the training processes run with, beside the user's environment."""
    # repro's root first, keeping whatever the user's PYTHONPATH already holds
    pythonpath = os.pathsep.join(p for p in (str(paths.ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": pythonpath,
        "TORCH_EXTENSIONS_DIR": paths.torch_extensions_dir(),
    }
    env.update(trackers.environment(config.report_to, directory, dict(os.environ)))
    if not gpu:
        env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", ACCELERATE_USE_DEEPSPEED="true")
    return env


def writable_directory(path: Path) -> Path:
    """Create `path` and prove it can be written, or fail in one line."""
    directory = path.resolve()
    if directory.exists() and not directory.is_dir():
        raise ReproError(f"{path}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ReproError(f"{path}: output directory is not writable ({exc.strerror})") from None
    return directory


def prepare(
    config: RunConfig,
    output_dir: Path,
    *,
    tokenizer: str | None = None,
    reference_cache: str | None = None,
    cache_dir: Path | None = None,
    eval_during_training: bool = True,
    dry_run: bool = False,
    planned_dir: Path | None = None,
    device: str | None = None,
    allow_double_bos: bool = False,
) -> Run:
    """Write the run directory (run.json, DeepSpeed and accelerate configs, bos_check.json).

    With dry_run nothing is written anywhere: the Run holds the paths and the command that
    would run; with `planned_dir` too, the planned files go there (Run.planned). `device`
    "cuda" or "cpu" says where training runs; None: CUDA if this machine has it (an sbatch
    script written on a login node names the compute nodes' device). A failed BOS check (two
    BOS, or a family that contradicts its tokenizer) is one error before the run directory is
    written, unless `allow_double_bos`. What the run needs from this machine (trackers
    installed, folders writable, the model there) is the caller's preflight
    (repro.runs.pipeline.preflight), checked once before this is called.
    """
    directory = output_dir.resolve()
    gpu = cuda_available() if device is None else device == "cuda"
    batch = config.batch
    data_dir = directory / "data"
    model = config.model_name_or_path
    if model != TINY_MODEL and config.dataset == TINY_DATA:
        raise ReproError("the synthetic dataset only goes with the tiny model")
    if catalog.is_builtin(model) and not dry_run:  # fetched and imported once per machine
        model = catalog.local_path(model)
    tokenizer_path = tokenizer or model  # the tiny tokenizer loads by name (repro:tiny-llama)
    if dry_run:
        guard = bosguard.Report.skipped("dry run")
    else:  # before the run directory is written: a refusal leaves nothing behind
        guard = bos_check(config, tokenizer_path)
        if (first := guard.first_error()) and not allow_double_bos:
            raise ReproError(
                f"BOS check failed: {first.what}: {first.message} (--allow-double-bos trains anyway)"
            )
        directory = writable_directory(output_dir)
    if model == TINY_MODEL:
        if dry_run:
            model = tokenizer_path = str(directory / "init-model")
        else:
            model, tokenizer_path, data_dir = _materialize_tiny(config, directory)
    if config.dataset == alpaca_preferences.NAME and not dry_run:
        build_dataset(config, data_dir)

    ds_path = directory / "deepspeed.json"
    acc_path = directory / "accelerate.yaml"
    run_file = directory / "run.json"
    command = command_for(acc_path, run_file, batch.num_processes, batch.num_nodes)
    env = environment(config, directory, gpu)
    # A dry run writes its planned files only where it is told to (never into the output).
    files = (planned_dir or None) if dry_run else directory
    if files is not None:
        files.mkdir(parents=True, exist_ok=True)
        (files / ds_path.name).write_text(json.dumps(deepspeed_json(config, gpu=gpu), indent=2))
        (files / acc_path.name).write_text(
            yaml.safe_dump(accelerate_yaml(ds_path, batch.num_processes, batch.num_nodes, free_port()))
        )
    run = RunFile(
        config=config,
        paths=RunPaths(
            output_dir=str(directory),
            deepspeed_config=str(ds_path),
            model=model,
            tokenizer=tokenizer_path,
            data_dir=str(data_dir),
            cache_dir=str(cache_dir or paths.cache_root()),
            reference_cache=reference_cache,
        ),
        eval_during_training=eval_during_training,
    )
    if files is not None:
        write_json(files / run_file.name, run.to_json())
    if not dry_run:
        write_json(directory / "bos_check.json", guard.to_json())
    return Run(directory, run_file, acc_path, ds_path, command, env, batch.num_processes,
               batch.num_nodes, guard, gpu=gpu, planned=files if dry_run else None)  # fmt: skip


def bos_check(config: RunConfig, tokenizer_path: str) -> bosguard.Report:
    """The BOS guard (repro.data.bosguard) for a resolved recipe: the training format and the
    setting's generation prompts, with the run's tokenizer."""
    try:
        tokenizer = tokenizers.load(tokenizer_path, revision=config.tokenizer_hub_revision)
    except ReproError as exc:  # e.g. no hub access on the launching machine: recorded, not fatal
        return bosguard.Report.skipped(str(exc))
    try:
        generation = config.evaluation.generation_file.data
    except ReproError:
        generation = None
    pipeline = Pipeline.for_config(tokenizer, config, config.tokenization)
    return bosguard.Report.of(bosguard.run(tokenizer, pipeline, generation))


_STEP = re.compile(r"^REPRO_STEP (\d+)/(\d+)$")  # printed by repro.train.trainer.ProgressLines
_PHASE = re.compile(r"^REPRO_PHASE (\d+)/(\d+) (.*)$")  # printed by repro.train.worker.phase


def _keep_earlier_log(path: Path) -> None:
    """An earlier launch's log (a killed or preempted attempt this one resumes) moves to
    PATH.1, PATH.2, ...: what it said stays readable, and PATH is this launch's alone."""
    if not path.exists() or path.stat().st_size == 0:
        return
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    path.rename(path.with_name(f"{path.name}.{n}"))


def launch(
    run: Run,
    *,
    log_file: Path | None = None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = None,
    verbose: bool = False,
    errors: list[str] | None = None,
) -> int:
    """Run the training processes. Everything goes to train.log; `progress` gets the optimizer
    steps, `echo` the logged metrics when verbose (HF's log dicts), `errors` each distinct
    `repro: error:` line of the ranks (every rank says the same: it is said once, by the
    caller), or `echo` gets them when no list is given."""
    from repro.train import lifetime

    env = {**os.environ, **run.env}
    log_path = log_file or run.directory / "train.log"
    lifetime.wait_for_workers(run.directory)  # ranks of a killed earlier launch are gone first
    _keep_earlier_log(Path(log_path))
    # the launcher dies with this process (and its ranks with it: repro.train.lifetime)
    command = [sys.executable, "-m", "repro.train.lifetime", *run.command]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        if progress:  # start-up takes a minute before the first step: say what is starting
            progress(f"start-up: starting {run.num_processes * run.num_nodes} training processes", 0, None)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if match := _STEP.match(line.strip()):
                if progress:
                    progress("training", int(match[1]), int(match[2]))
            elif match := _PHASE.match(line.strip()):
                if progress:
                    progress(f"start-up: {match[3]}", int(match[1]), int(match[2]))
            elif "repro: error" in line:
                said = line.strip()[line.strip().index("repro: error") :]
                if errors is not None:
                    if said not in errors:
                        errors.append(said)
                elif echo:
                    echo(line.rstrip())
            elif echo and verbose and line.startswith("{'"):
                echo(line.rstrip())
        return proc.wait()


def slurm_script(
    run: Run,
    *,
    nodes: int,
    processes_per_node: int,
    site: Sequence[str] = ("#SBATCH --time=24:00:00",),
) -> str:
    """An sbatch script: one task per node, each running `accelerate launch` with its machine rank.
    `site`: the cluster's own #SBATCH lines (time limit, partition, account, ...), as every job
    of `repro run --launcher slurm` gets them.

    The rendezvous (torch's static one) lives on the allocation's first node. MASTER_ADDR and
    MASTER_PORT are computed and exported by the batch shell, so srun hands them to every task;
    the single-quoted `bash -c` command expands them there, with the SLURM_NODEID srun sets per
    node as the machine rank. A CPU run (`run.gpu` false) asks for no GPUs and exports the local
    launcher's environment: DS_ACCELERATOR=cpu (DeepSpeed's CPU accelerator, gloo).
    """
    command = command_for(run.accelerate_config, run.run_file, processes_per_node, nodes)
    launcher, worker = command[:-3], command[-3:]  # worker: -m repro.train.worker RUN_FILE
    per_node = (
        f"exec {shlex.join(launcher)} "
        '--machine_rank "$SLURM_NODEID" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" '
        f"{shlex.join(worker)}"
    )
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=repro-{run.directory.name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
    ]
    if run.gpu:
        lines.append(f"#SBATCH --gpus-per-node={processes_per_node}")
        lines.append(f"#SBATCH --cpus-per-task={8 * processes_per_node}")
    else:  # one core per training process (OMP_NUM_THREADS=1)
        lines.append(f"#SBATCH --cpus-per-task={processes_per_node}")
    lines += [*site, f"#SBATCH --output={run.directory}/slurm-%j.log"]
    lines += [
        "set -euo pipefail",
        "# The first node hosts the rendezvous; a port from the job id lets jobs share a node.",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 10000))}",
        "export MASTER_ADDR MASTER_PORT",
        *(f"export {key}={shlex.quote(value)}" for key, value in run.env.items()),
        'echo "repro: nodes $SLURM_JOB_NODELIST, rendezvous $MASTER_ADDR:$MASTER_PORT"',
        # Slurm 22.05-23.02 steps do not inherit --cpus-per-task: pass it on
        f'srun --kill-on-bad-exit=1 --cpus-per-task="$SLURM_CPUS_PER_TASK" bash -c {shlex.quote(per_node)}',
    ]
    return "\n".join(lines) + "\n"
