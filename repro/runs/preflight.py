"""Preflight: everything the later stages of a run need, checked in the parent process before any
training process is spawned or any step is trained. Each failure is one line naming the fix."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from repro.config import evalconfig
from repro.config.runconfig import RunConfig
from repro.errors import ReproError

# Bytes of training state per parameter under ZeRO-3 with mixed-precision Adam: bf16 weights
# and gradients (2 + 2) plus fp32 master weights and two Adam moments (4 + 4 + 4).
BYTES_PER_PARAMETER = 16


@dataclass
class Check:
    name: str
    ok: bool
    message: str


def parameters_from_name(model: str) -> float | None:
    """Billions of parameters from a model id such as 'Meta-Llama-3-8B-Instruct' (None if unnamed)."""
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model.split("/")[-1])
    return float(match[1]) if match else None


def _model(config: RunConfig) -> Check:
    model = config.model_name_or_path
    if model.startswith("repro:"):
        return Check("model", True, f"{model} (built locally)")
    if Path(model).expanduser().exists():
        return Check("model", True, f"{model} (local)")
    if model.startswith(("/", "./", "../", "~")):
        return Check("model", False, f"model path {model} does not exist")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json", revision=config.model_revision)
        except Exception:  # noqa: BLE001  (an unusable cache is the same answer: not available)
            cached = None
        if not isinstance(cached, str):
            return Check(
                "model",
                False,
                f"{model} is not in the Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE=1): "
                "download it first (huggingface-cli download) or give a local path",
            )
        return Check("model", True, f"{model} (Hugging Face cache)")
    return Check("model", True, f"{model} (Hugging Face Hub)")


def _device(config: RunConfig) -> Check:
    from repro.train.launch import cuda_available

    if not config.bf16:
        return Check("device", True, "runs on CPU processes or GPUs")
    gpus = config.batch["num_processes"] * config.batch["num_nodes"]
    billions = parameters_from_name(config.model_name_or_path)
    need = (
        f"; {billions:g}B in bf16 needs about {billions * BYTES_PER_PARAMETER / gpus:.0f} GB per GPU "
        f"for weights, gradients and Adam states under ZeRO-3 on {gpus} GPUs, plus activations"
        if billions
        else ""
    )
    if not cuda_available():
        return Check(
            "device",
            False,
            f"setting '{config.setting}' trains in bf16 on GPUs and no CUDA device is visible{need}",
        )
    return Check("device", True, f"CUDA{need}")


def _generation(config: RunConfig) -> Check:
    try:
        path = evalconfig.locate(config.evaluation.generation)
    except ReproError as exc:
        return Check("generation config", False, str(exc))
    return Check("generation config", True, str(path))


def _judge(judge) -> Check:
    try:
        judge.backend()
    except ReproError as exc:
        return Check("judge", False, str(exc))
    where = judge.url or "local rule judge"
    return Check("judge", True, f"{judge.kind}: {where}")


def _output(results_root: Path) -> Check:
    root = Path(results_root)
    if root.exists() and not root.is_dir():
        return Check("results", False, f"{root}: exists and is not a directory (--results)")
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Check("results", False, f"{root}: not writable (--results)")
    return Check("results", True, str(root.resolve()))


def checks(config: RunConfig, *, judge, results_root: Path) -> list[Check]:
    return [_output(results_root), _model(config), _device(config), _generation(config), _judge(judge)]


def require(config: RunConfig, *, judge, results_root: Path) -> list[Check]:
    """All checks, or one error naming the first failure (and how many others failed)."""
    found = checks(config, judge=judge, results_root=results_root)
    failed = [c for c in found if not c.ok]
    if failed:
        more = (
            f" (and {len(failed) - 1} more: {', '.join(c.name for c in failed[1:])})"
            if len(failed) > 1
            else ""
        )
        raise ReproError(f"preflight: {failed[0].name}: {failed[0].message}{more}")
    return found
