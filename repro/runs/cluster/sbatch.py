"""The text of a SLURM pipeline's job scripts (repro.runs.cluster.slurm builds the pipeline from them).

Every script asks for a warning signal and is requeueable. Its body runs one stage in the
background and passes the warning signal on: training checkpoints and stops
(repro.train.preemption), the generation and judging processes stop with REQUEUE_EXIT
(repro.runs.cluster.stage), and the script requeues the job, at most MAX_REQUEUES times. Any other
failure exits non-zero and is never requeued.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from repro import paths
from repro.train import launch, preemption

REQUEUE_EXIT = 75  # a stage process stopped on the warning signal (EX_TEMPFAIL): requeue it
MAX_REQUEUES = 20  # a job preempted more often than this stops: something else is wrong


def resources(gpu: bool, nodes: int, per_node: int) -> list[str]:
    lines = [f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1"]
    if gpu:
        return lines + [f"#SBATCH --gpus-per-node={per_node}", f"#SBATCH --cpus-per-task={8 * per_node}"]
    return lines + [f"#SBATCH --cpus-per-task={per_node}"]  # one core per CPU process


def script(
    name: str,
    *,
    resources: list[str],
    array: str | None,
    body: list[str],
    site_lines: list[str],
    signal_seconds: int,
    folder: Path,
) -> str:
    log = f"{folder}/logs/{name}-%A_%a.log" if array else f"{folder}/logs/{name}-%j.log"
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=repro-{name}-{folder.name}",
        *resources,
        *([f"#SBATCH --array={array}"] if array else []),
        f"#SBATCH --output={log}",
        "#SBATCH --open-mode=append",  # a requeued job adds to its log
        # the warning signal goes to this shell only; the traps below pass it on
        f"#SBATCH --signal=B:USR1@{signal_seconds}",
        "#SBATCH --requeue",
        *site_lines,
        "set -uo pipefail",
        f"cd {shlex.quote(str(folder))}",
        *(f"export {k}={shlex.quote(v)}" for k, v in environment().items()),
        *body,
    ]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(paths.ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": pythonpath, "TOKENIZERS_PARALLELISM": "false"}


REQUEUE = [
    "requeue() {  # preempted or at the time limit: back into the queue, unless it keeps happening",
    f'    if [ "${{SLURM_RESTART_COUNT:-0}}" -ge {MAX_REQUEUES} ]; then',
    f'        echo "repro: error: stopped by the warning signal {MAX_REQUEUES} times; not requeued again"',
    "        exit 1",
    "    fi",
    '    echo "repro: requeued after the warning signal (restart ${SLURM_RESTART_COUNT:-0})"',
    '    scontrol requeue "$SLURM_JOB_ID"',
    "    exit 0",
    "}",
]


def wait_lines(pid: str) -> list[str]:
    """Wait for a background step; a trapped signal interrupts `wait`, so wait again."""
    return [
        f"while :; do wait {pid}; rc=$?; kill -0 {pid} 2>/dev/null || break; done",
    ]


def train_body(train_dirs: list[Path], nodes: int, per_node: int, gpu: bool) -> list[str]:
    placeholder = "@DIR@"
    command = launch.command_for(
        Path(placeholder) / "accelerate.yaml", Path(placeholder) / "run.json", per_node, nodes
    )
    launcher, worker = command[:-3], command[-3:]
    per_node_cmd = (
        f"exec {shlex.join(launcher)} "
        '--machine_rank "$SLURM_NODEID" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" '
        f"{shlex.join(worker)}"
    ).replace(placeholder, '"$DIR"')
    env = (
        {"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_DEEPSPEED": "true"}
        if not gpu
        else {}
    )
    return [
        "RUNS=(",
        *(f"    {shlex.quote(str(d))}" for d in train_dirs),
        ")",
        "DIR=${RUNS[$SLURM_ARRAY_TASK_ID]}",
        "export DIR",
        'if [ -f "$DIR/metrics.json" ] && [ -f "$DIR/model/config.json" ]; then',
        '    echo "repro: $DIR is trained already"; exit 0',
        "fi",
        *REQUEUE,
        f'export {preemption.STOP_FILE_ENV}="$DIR/stop-requested"',
        f'rm -f "${preemption.STOP_FILE_ENV}" "$DIR/{preemption.MARKER}"',
        # every rank sees the file after its current step; they checkpoint and stop together
        'trap \'echo "repro: warning signal: checkpoint, then requeue"; '
        f'touch "${preemption.STOP_FILE_ENV}"\' USR1',
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 10000))}",
        "export MASTER_ADDR MASTER_PORT",
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        'echo "repro: training $DIR on $SLURM_JOB_NODELIST (restart ${SLURM_RESTART_COUNT:-0})"',
        # progress and errors go where `repro status` and a local run keep them
        'srun --kill-on-bad-exit=1 --cpus-per-task="$SLURM_CPUS_PER_TASK" '
        f'bash -c {shlex.quote(per_node_cmd)} >> "$DIR/train.log" 2>&1 &',
        "STEP=$!",
        *wait_lines("$STEP"),
        f'if [ -f "$DIR/{preemption.MARKER}" ]; then requeue; fi',
        'if [ "$rc" -ne 0 ] || [ ! -f "$DIR/metrics.json" ]; then',
        '    reason=$(grep -h "repro: error" "$DIR/train.log" | tail -n 1)',
        '    echo "repro: error: training failed (exit $rc): ${reason:-see $DIR/train.log}"',
        "    exit $(( rc == 0 ? 1 : rc ))",
        "fi",
        'echo "repro: trained $DIR"',
    ]


def stage_body(stage: str, folder: Path, index: str) -> list[str]:
    plan = shlex.quote(str(folder / "plan.json"))
    command = f"{shlex.quote(sys.executable)} -m repro.runs.cluster.stage {stage} {plan}"
    return [
        *REQUEUE,
        f"{command} {index} &",
        "STAGE=$!",
        # the stage process answers USR1 by stopping with exit {REQUEUE_EXIT}; its logs keep its work
        "trap 'kill -USR1 $STAGE 2>/dev/null' USR1",
        *wait_lines("$STAGE"),
        f'if [ "$rc" -eq {REQUEUE_EXIT} ]; then requeue; fi',
        "exit $rc",
    ]
