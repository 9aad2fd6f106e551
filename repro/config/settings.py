"""Settings: the paper's training setups (recipes/settings/NAME.yaml), read and checked.

A setting fixes the model, data, lengths, batch layout, schedule and evaluation plan, and may
override a method's hyperparameters (the seed's SimPO and DPO tables do). A setting file may
also be an alignment-handbook / SimPO training config (repro.config.handbook maps it).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import paths
from repro.config import families, handbook
from repro.config.methods import Method, check_hyperparameters, get_method, load_methods
from repro.config.runconfig import EvalPlan
from repro.config.validate import check_choice, check_keys, check_range, coerce, read_yaml
from repro.data import training_templates
from repro.data.family import Family
from repro.errors import ReproError, UsageError, unknown

# The experiment trackers a setting's report_to may name (repro.train.trackers runs them).
TRACKERS = ("wandb", "tensorboard")


def parse_report_to(value: Any) -> list[str]:
    """A report_to value (list, comma string, "none" or None) as a checked list of trackers."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(i).strip() for i in items if str(i).strip()]
    if names == ["none"]:
        return []
    if "none" in names:
        raise UsageError(f"report_to: 'none' cannot be combined with trackers ({', '.join(names)})")
    for name in names:
        if name not in TRACKERS:
            raise unknown("tracker (report_to)", name, (*TRACKERS, "none"))
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Setting:
    name: str
    title: str
    model_name_or_path: str
    dataset: str
    train_split: str
    test_split: str
    max_length: int
    max_prompt_length: int
    total_batch_size: int
    per_device_train_batch_size: int
    num_processes: int
    per_device_eval_batch_size: int
    lr_scheduler_type: str
    warmup_ratio: float
    num_train_epochs: float
    optim: str
    bf16: bool
    gradient_checkpointing: bool
    eval_steps: int
    logging_steps: int
    seed: int
    data_shuffle_seed: int
    baseline_learning_rate: float
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_sources: dict[str, str] = field(default_factory=dict)
    # How its tokenizer starts, turns and ends a sequence (recipes/families/NAME.yaml, read into
    # repro.data.family.Family); None: inferred from the tokenizer when it loads.
    family: Family | None = None
    # "tokenizer" (the checkpoint's own), a named template or a literal one; default: the family's.
    chat_template: str = ""
    model_revision: str = "main"
    # The tokenizer's hub revision where it must differ from the model's ("parent-of:SHA": the
    # commit before SHA, resolved on the hub), with where the pin comes from.
    tokenizer_revision: str | None = None
    tokenizer_revision_source: str | None = None
    torch_dtype: str | None = None
    attn_implementation: str = "sdpa"
    truncation_mode: str = "keep_end"
    paper_time_layout: dict[str, int] | None = None
    paper_v1: dict[str, float] | None = None
    aliases: list[str] = field(default_factory=list)
    train_rows: int | None = None  # training pairs, where known (plans count optimizer steps with it)
    checkpoint_steps: int = (
        100  # resumable checkpoints (the original saved none); not part of the config hash
    )
    # Chosen and rejected sequences packed into one row without padding (repro.train.trainer.PairCollator).
    # Same losses as padded rows; the original padded. In the config hash (other arithmetic order).
    padding_free: bool = False
    # Log-probs through the LM head in chunks (repro.train.chunked); false: full logits, as the
    # original computed them (repro.train.logprobs). Same values within 1e-5; in the config hash.
    chunked_logprobs: bool = True
    # How a dataset that repro builds itself is made (repro:alpaca-eval-preferences: the keys of
    # repro.data.alpaca_preferences.Binarization). In the run's identity.
    dataset_options: dict[str, Any] | None = None
    # How `dataset` was generated on-policy (repro data on-policy --setting NAME), where it was.
    on_policy: dict[str, Any] | None = None
    # How it is evaluated (repro.config.runconfig.EvalPlan): generation config, judge, baseline.
    evaluation: EvalPlan = field(default_factory=EvalPlan)
    # Experiment trackers (repro.train.trackers): wandb, tensorboard; none by default. Not in the config hash.
    report_to: list[str] = field(default_factory=list)
    source: str = ""  # the file it was read from


# Ranges and choices of setting fields (types come from the dataclass annotations).
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "max_length": (1, None),
    "max_prompt_length": (1, None),
    "total_batch_size": (1, None),
    "per_device_train_batch_size": (1, None),
    "num_processes": (1, None),
    "per_device_eval_batch_size": (1, None),
    "warmup_ratio": (0.0, 1.0),
    "eval_steps": (1, None),
    "logging_steps": (1, None),
    "seed": (0, None),
    "data_shuffle_seed": (0, None),
    "baseline_learning_rate": (0.0, None),
    "checkpoint_steps": (1, None),
    "train_rows": (1, None),
}
# Exclusive minimums: 0 epochs trains no step, and the run would score the starting model.
_ABOVE: dict[str, float] = {"num_train_epochs": 0.0}
_CHOICES: dict[str, tuple[str, ...]] = {
    "truncation_mode": ("keep_end", "keep_start"),
    "attn_implementation": ("eager", "sdpa", "flash_attention_2"),
    "torch_dtype": ("float32", "bfloat16", "float16", "auto"),
    "lr_scheduler_type": ("cosine", "linear", "constant", "constant_with_warmup"),
    "optim": (
        "adamw_torch",
        "adamw_torch_fused",
        "adamw_hf",
        "paged_adamw_32bit",
        "adamw_bnb_8bit",
    ),
}


# The keys a setting file may hold (source is where it was read from, not a key).
SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Setting) if f.name != "source"}


def parse_setting(data: Any, where: str, methods: dict[str, Method]) -> Setting:
    """Validate a repro-format setting mapping: keys, types, ranges, choices, method values."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping of setting keys")
    check_keys(data, SETTING_FIELDS, where)
    hints = typing.get_type_hints(Setting)
    values: dict[str, Any] = {}
    for name, fld in SETTING_FIELDS.items():
        if name not in data:
            required = fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
            if required:
                raise ReproError(f"{where}: missing required key '{name}'")
            continue
        if name == "evaluation":
            continue  # checked below by check_evaluation
        if name == "family":  # a name in a recipe; a Family when a setting is re-read with overrides
            value = data[name]
            if isinstance(value, dict):
                value = families.parse(value, f"{where}: family")
            elif value is not None and not isinstance(value, Family):
                value = families.load(coerce(value, str, f"{where}: family"))
            values[name] = value
            continue
        value = coerce(data[name], hints[name], f"{where}: {name}")
        if name in _RANGES and value is not None:
            check_range(value, *_RANGES[name], f"{where}: {name}")
        if name in _ABOVE and value is not None and value <= _ABOVE[name]:
            raise ReproError(f"{where}: {name}: must be above {_ABOVE[name]:g}, got {value:g}")
        check_choice(value, _CHOICES.get(name), f"{where}: {name}")
        values[name] = value
    if values["max_prompt_length"] >= values["max_length"]:
        raise ReproError(
            f"{where}: max_prompt_length ({values['max_prompt_length']}) must be below "
            f"max_length ({values['max_length']})"
        )
    for method_name in values.get("method_sources") or {}:  # a source of a method that is not one
        try:
            get_method(str(method_name), methods)
        except ReproError as exc:
            raise type(exc)(f"{where}: method_sources: {exc}") from None
    for method_name, hps in values.get("methods", {}).items():
        method = get_method(str(method_name), methods)
        if not isinstance(hps, dict):
            raise ReproError(f"{where}: methods.{method_name}: expected a mapping")
        values["methods"][method_name] = check_hyperparameters(method, hps, f"{where}: methods.{method_name}")
    if values.get("paper_time_layout") is not None:
        layout = values["paper_time_layout"]
        check_keys(layout, ("num_processes", "per_device_train_batch_size"), f"{where}: paper_time_layout")
        for key in ("num_processes", "per_device_train_batch_size"):
            if key not in layout:
                raise ReproError(f"{where}: paper_time_layout: missing '{key}'")
            layout[key] = coerce(layout[key], int, f"{where}: paper_time_layout.{key}")
            check_range(layout[key], 1, None, f"{where}: paper_time_layout.{key}")
    if values.get("on_policy") is not None:
        values["on_policy"] = check_on_policy(values["on_policy"], f"{where}: on_policy")
    if "evaluation" in data:
        values["evaluation"] = check_evaluation(data["evaluation"], f"{where}: evaluation")
    if "report_to" in values:
        values["report_to"] = parse_report_to(values["report_to"])
    if not values.get("chat_template"):
        family = values.get("family")
        values["chat_template"] = family.chat_template if family else "tokenizer"
    try:  # a name that is no template would pass every plan and fail in the training ranks
        training_templates.lookup(values["chat_template"])
    except ReproError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return Setting(**values, source=where)


def check_evaluation(data: Any, where: str) -> EvalPlan:
    """A setting's evaluation plan: known keys and choices (defaults live in EvalPlan)."""
    if isinstance(data, EvalPlan):
        return data
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping")
    fields = [f.name for f in dataclasses.fields(EvalPlan)]
    check_keys(data, fields, where)
    values = {k: coerce(v, str, f"{where}.{k}") for k, v in data.items()}
    for key, choices in EvalPlan.CHOICES.items():
        if key in values:
            check_choice(values[key], choices, f"{where}.{key}")
    return EvalPlan(**values)


ON_POLICY_KEYS: dict[str, Any] = {
    "model": str,
    "reward_model": str,
    "prompts": str,
    "seeds": list[int],
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "trust_remote_code": bool,
    "source": str,
}


def check_on_policy(data: Any, where: str) -> dict[str, Any]:
    """A setting's on-policy generation recipe: known keys with the right types."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping")
    check_keys(data, ON_POLICY_KEYS, where)
    return {k: coerce(v, ON_POLICY_KEYS[k], f"{where}.{k}") for k, v in data.items()}


def list_settings() -> list[str]:
    return sorted(p.stem for p in paths.SETTINGS.glob("*.yaml"))


def load_setting_file(path: Path, methods: dict[str, Method] | None = None) -> Setting:
    """A setting file in repro's format, or an alignment-handbook / SimPO training config."""
    methods = methods or load_methods()
    data = read_yaml(path)
    if isinstance(data, dict) and handbook.looks_like_handbook(data):
        data = handbook.to_setting(data, path)
    return parse_setting(data, str(path), methods)


def get_setting(name_or_path: str, methods: dict[str, Method] | None = None) -> Setting:
    """A setting by name or alias, or from a YAML file when given a path."""
    methods = methods or load_methods()
    candidate = Path(name_or_path)
    if candidate.is_dir():
        raise UsageError(f"{name_or_path}: is a directory, not a recipe (a setting name or a .yaml file)")
    if name_or_path.endswith((".yaml", ".yml")) or candidate.is_file():
        return load_setting_file(candidate, methods)
    key = name_or_path.strip().lower()
    names = list_settings()
    if key in names:
        return load_setting_file(paths.SETTINGS / f"{key}.yaml", methods)
    for name in names:
        setting = load_setting_file(paths.SETTINGS / f"{name}.yaml", methods)
        if key in setting.aliases:
            return setting
    raise unknown("setting", name_or_path, names)
