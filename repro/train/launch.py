"""Launch training on the real engine: accelerate + DeepSpeed ZeRO-3, local or SLURM.

`prepare()` writes a run directory: run.json (the resolved recipe and paths), a DeepSpeed
JSON whose batch sizes are explicit numbers (HF's "auto" resolves a world size of 1 on
CPU and DeepSpeed refuses the config), and an accelerate YAML. `launch()` runs
`accelerate launch -m repro.train.worker run.json`; without CUDA it sets DS_ACCELERATOR=cpu so
the same ZeRO-3 path runs on CPU processes (gloo).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repro import paths
from repro.errors import ReproError

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
    bos_check: dict[str, Any]  # repro.data.bosguard report, also written to bos_check.json
    gpu: bool = True  # CUDA processes; False: CPU processes (DS_ACCELERATOR=cpu, gloo)


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deepspeed_json(config: dict[str, Any], *, gpu: bool) -> dict[str, Any]:
    batch = config["batch"]
    return {
        "bf16": {"enabled": bool(config["bf16"] and gpu)},
        "zero_optimization": {
            "stage": 3,
            "offload_optimizer": {"device": "none"},
            "offload_param": {"device": "none"},
            "overlap_comm": gpu,
            "contiguous_gradients": True,
            "stage3_gather_16bit_weights_on_model_save": True,
        },
        "gradient_clipping": 1.0,
        "train_micro_batch_size_per_gpu": batch["per_device"],
        "gradient_accumulation_steps": batch["gradient_accumulation_steps"],
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


def _materialize_tiny(config: dict[str, Any], directory: Path) -> tuple[str, str, Path]:
    """Build the tiny model and tokenizer and the synthetic data into the run directory."""
    from repro import tiny

    model_dir = tiny.save_policy(directory / "init-model", seed=config["seed"])
    data_dir = directory / "data"
    if config["dataset"] == TINY_DATA and not (data_dir / "train.jsonl").exists():
        tiny.write_dataset(data_dir, seed=config["seed"])
    return str(model_dir), str(model_dir), data_dir


def prepare(
    config: dict[str, Any],
    output_dir: Path,
    *,
    hyperparameters: dict[str, Any],
    tokenization: str = "simpo",
    tokenizer: str | None = None,
    max_steps: int | None = None,
    reference_cache: str | None = None,
    cache_dir: Path | None = None,
    eval_during_training: bool = True,
    device: str | None = None,
) -> Run:
    """Write the run directory. `device` "cuda" or "cpu" says where training runs; None: CUDA if this
    machine has it (an sbatch script written on a login node names the compute nodes' device)."""
    directory = output_dir.resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ReproError(f"{output_dir}: output directory is not writable ({exc.strerror})") from None
    gpu = cuda_available() if device is None else device == "cuda"
    batch = config["batch"]
    data_dir = directory / "data"
    model = config["model_name_or_path"]
    tokenizer_path = tokenizer or model
    if model == TINY_MODEL:
        model, tokenizer_path, data_dir = _materialize_tiny(config, directory)
    elif config["dataset"] == TINY_DATA:
        raise ReproError("the synthetic dataset only goes with the tiny model")

    ds_path = directory / "deepspeed.json"
    ds_path.write_text(json.dumps(deepspeed_json(config, gpu=gpu), indent=2))
    acc_path = directory / "accelerate.yaml"
    acc_path.write_text(
        yaml.safe_dump(accelerate_yaml(ds_path, batch["num_processes"], batch["num_nodes"], free_port()))
    )
    run_file = directory / "run.json"
    run = {
        "config": config,
        "hyperparameters": hyperparameters,
        "tokenization": tokenization,
        "max_steps": max_steps,
        "eval_during_training": eval_during_training,
        "paths": {
            "output_dir": str(directory),
            "deepspeed_config": str(ds_path),
            "model": model,
            "tokenizer": tokenizer_path,
            "data_dir": str(data_dir),
            "cache_dir": str(
                cache_dir or Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro"))
            ),
            "reference_cache": reference_cache,
        },
    }
    run_file.write_text(json.dumps(run, indent=2, default=str))
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(acc_path),
        "-m",
        "repro.train.worker",
        str(run_file),
    ]
    # repro's root first, keeping whatever the user's PYTHONPATH already holds
    pythonpath = os.pathsep.join(p for p in (str(paths.ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": pythonpath}
    if not gpu:
        env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", ACCELERATE_USE_DEEPSPEED="true")
    from repro.data import bosguard

    guard = bosguard.check_config(config, tokenizer_path, tokenization)
    (directory / "bos_check.json").write_text(json.dumps(guard, indent=2))
    return Run(
        directory,
        run_file,
        acc_path,
        ds_path,
        command,
        env,
        batch["num_processes"],
        batch["num_nodes"],
        guard,
        gpu,
    )


_STEP = re.compile(r"^REPRO_STEP (\d+)/(\d+)$")  # printed by repro.train.trainer.ProgressLines


def launch(run: Run, *, log_file: Path | None = None) -> int:
    """Run the training processes. Everything goes to train.log; the terminal gets a progress
    bar, the logged metrics (HF's log dicts) and errors."""
    from repro.cli import render

    env = {**os.environ, **run.env}
    log_path = log_file or run.directory / "train.log"
    quiet = os.environ.get("REPRO_QUIET") == "1"
    progress = render.progress("[bold]training", disable=quiet)
    with open(log_path, "w", encoding="utf-8") as log, progress:
        task = progress.add_task("train", total=None)
        proc = subprocess.Popen(
            run.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if match := _STEP.match(line.strip()):
                progress.update(task, completed=int(match[1]), total=int(match[2]))
            elif not quiet and (line.startswith("{'") or "repro: error" in line):
                progress.console.print(line.rstrip(), markup=False, highlight=False, soft_wrap=True)
        return proc.wait()


def slurm_script(
    run: Run,
    *,
    nodes: int,
    processes_per_node: int,
    partition: str | None = None,
    time_limit: str = "24:00:00",
) -> str:
    """An sbatch script: one task per node, each running `accelerate launch` with its machine rank.

    The rendezvous (torch's static one) lives on the allocation's first node. MASTER_ADDR and
    MASTER_PORT are computed and exported by the batch shell, so srun hands them to every task;
    the single-quoted `bash -c` command expands them there, with the SLURM_NODEID srun sets per
    node as the machine rank. A CPU run (`run.gpu` false) asks for no GPUs and exports the local
    launcher's environment: DS_ACCELERATOR=cpu (DeepSpeed's CPU accelerator, gloo).
    """
    launch_cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(run.accelerate_config),
        "--num_machines", str(nodes), "--num_processes", str(nodes * processes_per_node),
    ]  # fmt: skip
    per_node = (
        f"exec {shlex.join(launch_cmd)} "
        '--machine_rank "$SLURM_NODEID" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" '
        f"-m repro.train.worker {shlex.quote(str(run.run_file))}"
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
    lines += [f"#SBATCH --time={time_limit}", f"#SBATCH --output={run.directory}/slurm-%j.log"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
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
