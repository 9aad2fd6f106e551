"""Read alignment-handbook / SimPO-repo training configs (e.g. llama-3-8b-instruct-simpo-v2.yaml).

Users arrive with the paper's own YAML files. We accept their keys, map them onto a repro
setting, and refuse keys we do not know (with the closest match), so a typo cannot
silently fall back to a default the way HfArgumentParser-style parsing would allow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import ReproError, UsageError, closest

# handbook key -> repro setting key (same meaning, same value).
_DIRECT = {
    "model_name_or_path": "model_name_or_path",
    "model_revision": "model_revision",
    "torch_dtype": "torch_dtype",
    "attn_implementation": "attn_implementation",
    "max_length": "max_length",
    "max_prompt_length": "max_prompt_length",
    "truncation_mode": "truncation_mode",
    "per_device_train_batch_size": "per_device_train_batch_size",
    "per_device_eval_batch_size": "per_device_eval_batch_size",
    "lr_scheduler_type": "lr_scheduler_type",
    "warmup_ratio": "warmup_ratio",
    "num_train_epochs": "num_train_epochs",
    "optim": "optim",
    "bf16": "bf16",
    "gradient_checkpointing": "gradient_checkpointing",
    "eval_steps": "eval_steps",
    "logging_steps": "logging_steps",
    "seed": "seed",
}
# Loss hyperparameters of SimPOConfig / DPOConfig.
_METHOD_KEYS = ("beta", "gamma_beta_ratio", "gamma", "sft_weight", "label_smoothing", "loss_type")
# Keys that configure logging, saving or the hub: accepted, not part of the recipe.
_IGNORED = {
    "do_eval",
    "evaluation_strategy",
    "eval_strategy",
    "gradient_checkpointing_kwargs",
    "hub_model_id",
    "hub_strategy",
    "log_level",
    "logging_strategy",
    "output_dir",
    "run_name",
    "push_to_hub",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "preprocessing_num_workers",
    "overwrite_output_dir",
    "remove_unused_columns",
    "max_steps",
    "use_flash_attention_2",
    "dataset_num_proc",
    "disable_dropout",
    "logging_first_step",
    "auto_insert_empty_system_msg",
    "max_seq_length",
    "trust_remote_code",
}
_SPECIAL = {
    "report_to",
    "chat_template",
    "dataset_mixer",
    "dataset_splits",
    "gradient_accumulation_steps",
    "learning_rate",
    "num_processes",
    "method",
}
KNOWN_KEYS = set(_DIRECT) | set(_METHOD_KEYS) | _IGNORED | _SPECIAL

# The SimPO configs assume this many GPUs (accelerate_configs/deepspeed_zero3.yaml).
DEFAULT_NUM_PROCESSES = 4


def looks_like_handbook(data: dict) -> bool:
    return "dataset_mixer" in data or ("model_name_or_path" in data and "name" not in data)


def to_setting(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Map a handbook config onto repro setting keys (validated afterwards by parse_setting)."""
    where = str(path)
    for key in data:
        if key not in KNOWN_KEYS:
            hint = closest(str(key), KNOWN_KEYS)
            suffix = f" (did you mean '{hint}'?)" if hint else ""
            raise UsageError(f"{where}: unknown alignment-handbook key '{key}'{suffix}")
    setting: dict[str, Any] = {
        "name": path.stem,
        "title": f"{path.name} (alignment-handbook config)",
    }
    for key, target in _DIRECT.items():
        if key in data:
            setting[target] = data[key]

    mixer = data.get("dataset_mixer")
    if not isinstance(mixer, dict) or len(mixer) != 1:
        raise ReproError(
            f"{where}: dataset_mixer must name exactly one dataset (mixtures are not supported yet)"
        )
    ((dataset, fraction),) = mixer.items()
    if fraction != 1 and fraction != 1.0:
        raise ReproError(f"{where}: dataset_mixer fraction {fraction} is not supported yet (use 1.0)")
    setting["dataset"] = dataset
    splits = data.get("dataset_splits") or ["train", "test"]
    if not isinstance(splits, list) or len(splits) != 2:
        raise ReproError(f"{where}: dataset_splits must list a train and a test split")
    setting["train_split"], setting["test_split"] = splits

    if "report_to" in data:  # the SimPO configs report to wandb, as their runs did
        report_to = data["report_to"]
        setting["report_to"] = [report_to] if isinstance(report_to, str) else report_to

    template = data.get("chat_template")
    setting["chat_template"] = template if template else "tokenizer"

    processes = data.get("num_processes", DEFAULT_NUM_PROCESSES)
    per_device = data.get("per_device_train_batch_size", 2)
    accumulation = data.get("gradient_accumulation_steps", 1)
    try:
        setting["total_batch_size"] = int(per_device) * int(accumulation) * int(processes)
    except (TypeError, ValueError):
        raise ReproError(
            f"{where}: per_device_train_batch_size, gradient_accumulation_steps and "
            "num_processes must be integers"
        ) from None
    setting["num_processes"] = processes

    defaults = {
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 4,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.0,
        "num_train_epochs": 1,
        "optim": "adamw_torch",
        "bf16": False,
        "gradient_checkpointing": False,
        "eval_steps": 500,
        "logging_steps": 500,
        "seed": 42,
        "max_length": 512,
        "max_prompt_length": 128,  # SimPOConfig falls back to 512/128 with a warning
    }
    for key, value in defaults.items():
        setting.setdefault(key, value)
    setting["data_shuffle_seed"] = 42  # hard-coded in alignment/data.py

    method = str(data.get("method", "simpo"))
    hyper = {k: data[k] for k in _METHOD_KEYS if k in data}
    if "gamma" in hyper:  # paper-time configs gave an absolute gamma
        gamma = hyper.pop("gamma")
        if "gamma_beta_ratio" not in hyper:
            beta = hyper.get("beta", 2.0)
            try:
                hyper["gamma_beta_ratio"] = float(gamma) / float(beta)
            except (TypeError, ValueError, ZeroDivisionError):
                raise ReproError(f"{where}: gamma and beta must be numbers, beta nonzero") from None
    if "learning_rate" in data:
        hyper["learning_rate"] = data["learning_rate"]
        setting["baseline_learning_rate"] = data["learning_rate"]
    else:
        setting["baseline_learning_rate"] = 5.0e-7
    setting["methods"] = {method: hyper}
    setting["method_sources"] = {method: f"user recipe {path.name}"}
    return setting
