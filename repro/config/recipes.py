"""Recipes: the paper's settings and methods, loaded from recipes/ and resolved into one config.

A *setting* (recipes/settings/NAME.yaml) fixes the model, data, lengths, batch layout and
schedule; a *method* (recipes/methods.yaml) fixes the loss and its hyperparameters. A setting
can override a method's hyperparameters (the seed's SimPO and DPO tables do). `resolve()`
combines the two with the user's overrides and derives what the paper leaves implicit:
gamma = gamma_beta_ratio x beta, and the gradient accumulation that keeps the total batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro import paths
from repro.config.runconfig import Batch, EvalPlan, RunConfig, code_version
from repro.config.validate import check_choice, check_keys, check_range, coerce, read_yaml
from repro.data.preference import TOKENIZATIONS
from repro.errors import ReproError, ReproWarning, UsageError, unknown

LAYOUTS = ("current", "paper-time")


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str  # "float" | "int" | "str"
    default: Any
    source: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    above: float | None = None  # an exclusive minimum (beta = 0 turns every loss into a constant)


@dataclass(frozen=True)
class SearchGrid:
    """A named hyperparameter grid with its source (an axis `gamma` is SimPO's absolute margin)."""

    name: str
    source: str
    axes: dict[str, list[float]]

    def points(self) -> list[dict[str, float]]:
        """Every grid point as run overrides; an absolute gamma becomes gamma_beta_ratio."""
        points = []
        for values in itertools.product(*self.axes.values()):
            point = dict(zip(self.axes, values, strict=True))
            if "gamma" in point:
                point["gamma_beta_ratio"] = _round(point.pop("gamma") / point["beta"])
            points.append(point)
        return points


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    formula: str
    reference_model: bool
    log_probs: str  # "mean" or "sum"
    hyperparameters: dict[str, Hyperparameter]
    search_grids: dict[str, SearchGrid]
    aliases: tuple[str, ...] = ()

    @property
    def search_grid(self) -> dict[str, list[float]]:
        """The paper's grid (App. B, Table 7)."""
        return self.search_grids["paper"].axes if "paper" in self.search_grids else {}


@dataclass(frozen=True)
class Setting:
    name: str
    title: str
    model_name_or_path: str
    chat_template: str
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
    # Same losses as padded rows; the original padded. Not part of the config hash.
    padding_free: bool = False
    # Log-probs through the LM head in chunks (repro.train.chunked); false: full logits, as the
    # original computed them (repro.train.logprobs). Same values within 1e-5; not in the config hash.
    chunked_logprobs: bool = True
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
    "num_train_epochs": (0.0, None),
    "eval_steps": (1, None),
    "logging_steps": (1, None),
    "seed": (0, None),
    "data_shuffle_seed": (0, None),
    "baseline_learning_rate": (0.0, None),
    "checkpoint_steps": (1, None),
}
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
LEARNING_RATE_MAX = 1e-3  # above this preference optimization diverges (seed README: 1e-5 already degrades)


# ---------------------------------------------------------------------------- methods


def _parse_method(name: str, data: Any, where: str) -> Method:
    if not isinstance(data, dict):
        raise ReproError(f"{where}: method '{name}' must be a mapping")
    check_keys(
        data,
        [
            "title",
            "formula",
            "reference_model",
            "log_probs",
            "hyperparameters",
            "search_grids",
            "aliases",
        ],
        f"{where}: method '{name}'",
    )
    specs = {}
    for hp_name, spec in (data.get("hyperparameters") or {}).items():
        at = f"{where}: {name}.{hp_name}"
        if not isinstance(spec, dict):
            raise ReproError(f"{at}: expected a mapping")
        check_keys(spec, ["type", "default", "source", "min", "max", "above", "choices"], at)
        hp_type = spec.get("type", "float")
        check_choice(hp_type, ("float", "int", "str"), f"{at}.type")
        choices = tuple(spec["choices"]) if spec.get("choices") else None
        specs[hp_name] = Hyperparameter(
            name=hp_name,
            type=hp_type,
            default=spec.get("default"),
            source=str(spec.get("source", "")),
            min=spec.get("min"),
            max=spec.get("max"),
            choices=choices,
            above=spec.get("above"),
        )
    log_probs = data.get("log_probs", "sum")
    check_choice(log_probs, ("mean", "sum"), f"{where}: {name}.log_probs")
    return Method(
        name=name,
        title=str(data.get("title", name)),
        formula=str(data.get("formula", "")),
        reference_model=bool(data.get("reference_model", False)),
        log_probs=log_probs,
        hyperparameters=specs,
        search_grids=_parse_grids(name, data.get("search_grids") or {}, specs, where),
        aliases=tuple(data.get("aliases") or ()),
    )


def _parse_grids(
    method: str, data: Any, specs: dict[str, Hyperparameter], where: str
) -> dict[str, SearchGrid]:
    """Named grids: a `source` and axes of numbers over the method's hyperparameters (plus
    learning_rate; SimPO: the absolute `gamma` with `beta`)."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: {method}.search_grids: expected a mapping of named grids")
    grids = {}
    for grid_name, grid in data.items():
        at = f"{where}: {method}.search_grids.{grid_name}"
        if not isinstance(grid, dict) or not str(grid.get("source", "")).strip():
            raise ReproError(f"{at}: expected a mapping with a source")
        axes = {}
        allowed = [*specs, "learning_rate", *(["gamma"] if method == "simpo" else [])]
        for axis, values in grid.items():
            if axis == "source":
                continue
            check_keys({axis: None}, allowed, at)
            if not isinstance(values, list) or not values:
                raise ReproError(f"{at}.{axis}: expected a list of numbers")
            axes[axis] = [coerce(v, float, f"{at}.{axis}") for v in values]
        if "gamma" in axes and "beta" not in axes:
            raise ReproError(f"{at}: an absolute gamma axis needs a beta axis")
        grids[str(grid_name)] = SearchGrid(str(grid_name), str(grid["source"]), axes)
    return grids


def load_methods(path: Path | None = None) -> dict[str, Method]:
    path = path or paths.METHODS_FILE
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ReproError(f"{path}: expected a mapping of methods")
    return {name: _parse_method(name, spec, str(path)) for name, spec in data.items()}


def get_method(name: str, methods: dict[str, Method] | None = None) -> Method:
    methods = methods or load_methods()
    key = name.strip().lower()
    if key in methods:
        return methods[key]
    for method in methods.values():
        if key in method.aliases:
            return method
    raise unknown("method", name, methods)


def search_grid(method: str, name: str) -> SearchGrid:
    """A method's named search grid (recipes/methods.yaml `search_grids`)."""
    the_method = get_method(method)
    if name not in the_method.search_grids:
        raise unknown(f"search grid of {the_method.name}", name, the_method.search_grids)
    return the_method.search_grids[name]


# ---------------------------------------------------------------------------- settings

_SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Setting) if f.name != "source"}


def parse_setting(data: Any, where: str, methods: dict[str, Method]) -> Setting:
    """Validate a repro-format setting mapping: keys, types, ranges, choices, method values."""
    if not isinstance(data, dict):
        raise ReproError(f"{where}: expected a mapping of setting keys")
    check_keys(data, _SETTING_FIELDS, where)
    hints = typing.get_type_hints(Setting)
    values: dict[str, Any] = {}
    for name, fld in _SETTING_FIELDS.items():
        if name not in data:
            required = fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING
            if required:
                raise ReproError(f"{where}: missing required key '{name}'")
            continue
        if name == "evaluation":
            continue  # checked below by check_evaluation
        value = coerce(data[name], hints[name], f"{where}: {name}")
        if name in _RANGES and value is not None:
            check_range(value, *_RANGES[name], f"{where}: {name}")
        check_choice(value, _CHOICES.get(name), f"{where}: {name}")
        values[name] = value
    if values["max_prompt_length"] >= values["max_length"]:
        raise ReproError(
            f"{where}: max_prompt_length ({values['max_prompt_length']}) must be below "
            f"max_length ({values['max_length']})"
        )
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
        from repro.train import trackers

        values["report_to"] = trackers.parse(values["report_to"])
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


def check_hyperparameters(method: Method, values: dict, where: str) -> dict[str, Any]:
    """Validate one method's hyperparameter values (plus learning_rate) against its spec."""
    allowed = [*method.hyperparameters, "learning_rate", "log_probs"]
    check_keys(values, allowed, where)
    checked = {}
    for key, value in values.items():
        at = f"{where}.{key}"
        if key == "learning_rate":
            checked[key] = check_learning_rate(coerce(value, float, at), at)
            continue
        if key == "log_probs":
            checked[key] = coerce(value, str, at)
            check_choice(checked[key], ("mean", "sum"), at)
            continue
        spec = method.hyperparameters[key]
        tp = {"float": float, "int": int, "str": str}[spec.type]
        value = coerce(value, tp, at)
        if spec.type != "str":
            check_range(value, spec.min, spec.max, at)
            if spec.above is not None and value <= spec.above:
                raise ReproError(f"{at}: must be above {spec.above:g}, got {value}")
        check_choice(value, spec.choices, at)
        checked[key] = value
    return checked


def check_learning_rate(value: float, where: str) -> float:
    if value <= 0:
        raise ReproError(f"{where}: learning rate must be positive, got {value}")
    if value > LEARNING_RATE_MAX:
        warnings.warn(
            f"{where}: learning rate {value:g} is above {LEARNING_RATE_MAX:g}; preference "
            "optimization usually diverges there (the paper searched 3e-7..1e-6)",
            ReproWarning,
            stacklevel=2,
        )
    return value


def list_settings() -> list[str]:
    return sorted(p.stem for p in paths.SETTINGS.glob("*.yaml"))


def load_setting_file(path: Path, methods: dict[str, Method] | None = None) -> Setting:
    """A setting file in repro's format, or an alignment-handbook / SimPO training config."""
    from repro.config import handbook  # local import: handbook builds on this module

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


# ---------------------------------------------------------------------------- resolution


def _round(x: float) -> float:
    """Drop float noise from derived values (10 x 0.3 = 3.0000000000000004)."""
    return float(f"{x:.12g}")


def batch_layout(
    setting: Setting,
    *,
    num_processes: int | None = None,
    num_nodes: int = 1,
    layout: str = "current",
    per_device: int | None = None,
) -> Batch:
    """Per-device batch x accumulation x processes x nodes that keeps the setting's total batch."""
    if layout not in LAYOUTS:
        raise unknown("layout", layout, LAYOUTS)
    per_device_batch = setting.per_device_train_batch_size
    processes = setting.num_processes
    if layout == "paper-time":
        if not setting.paper_time_layout:
            raise ReproError(f"setting '{setting.name}' has no paper-time batch layout")
        per_device_batch = setting.paper_time_layout["per_device_train_batch_size"]
        processes = setting.paper_time_layout["num_processes"]
    if per_device is not None:
        per_device_batch = per_device
    if num_processes is not None:
        processes = num_processes
    if processes < 1 or num_nodes < 1 or per_device_batch < 1:
        raise UsageError("GPU count, node count and per-device batch must be at least 1")
    world = processes * num_nodes
    per_step = per_device_batch * world
    total = setting.total_batch_size
    if total % per_step:
        raise ReproError(
            f"total batch {total} is not divisible by per-device {per_device_batch} x "
            f"{processes} processes x {num_nodes} nodes = {per_step}"
        )
    return Batch(
        total=total,
        per_device=per_device_batch,
        gradient_accumulation_steps=total // per_step,
        num_processes=processes,
        num_nodes=num_nodes,
        world_size=world,
        layout=layout,
    )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as YAML scalars (so 1e-6 and true work)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got '{pair}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def resolve(
    setting: Setting,
    method: Method,
    *,
    overrides: dict[str, Any] | None = None,
    num_processes: int | None = None,
    num_nodes: int = 1,
    layout: str = "current",
    tokenization: str = "simpo",
    max_steps: int | None = None,
) -> RunConfig:
    """The fully resolved run config for one setting x method, with each value's source."""
    overrides = dict(overrides or {})
    sources: dict[str, str] = {}
    check_choice(tokenization, TOKENIZATIONS, "--tokenization")

    # Setting-level overrides (max_length=..., seed=...) go through the same validation.
    setting_keys = set(_SETTING_FIELDS) - {"name", "title", "methods", "method_sources", "aliases"}
    setting_overrides = {k: overrides.pop(k) for k in list(overrides) if k in setting_keys}
    if setting_overrides:
        data = {f: getattr(setting, f) for f in _SETTING_FIELDS}
        data.update(setting_overrides)
        setting = parse_setting(data, f"{setting.name} (with --set)", load_methods())
        setting = dataclasses.replace(setting, source=setting.source or "")

    # Method hyperparameters: method default < setting value < user override.
    hyper: dict[str, Any] = {"log_probs": method.log_probs}
    sources["log_probs"] = "recipes/methods.yaml: the method's aggregation in the paper"
    for name, spec in method.hyperparameters.items():
        hyper[name] = spec.default
        sources[name] = spec.source
    lr = setting.baseline_learning_rate
    sources["learning_rate"] = (
        "unpublished for this method: the setting's DPO learning rate (baseline_learning_rate)"
    )
    published = setting.methods.get(method.name, {})
    for name, value in published.items():
        origin = setting.method_sources.get(method.name, f"setting {setting.name}")
        if name == "learning_rate":
            lr = value
        else:
            hyper[name] = value
        sources[name] = origin
    if overrides:  # a key neither the method nor the setting knows: name every valid one
        check_keys(overrides, [*method.hyperparameters, "learning_rate", "log_probs", *setting_keys],
                   f"--set for {method.name}")  # fmt: skip
    user = check_hyperparameters(method, overrides, f"--set for {method.name}") if overrides else {}
    for name, value in user.items():
        if name == "learning_rate":
            lr = value
        else:
            hyper[name] = value
        sources[name] = "command line (--set)"

    if method.name == "simpo":
        hyper["gamma"] = _round(hyper["beta"] * hyper["gamma_beta_ratio"])
        sources["gamma"] = "derived: gamma_beta_ratio x beta"
    if setting.tokenizer_revision:
        sources["tokenizer_revision"] = setting.tokenizer_revision_source or f"setting {setting.name}"

    batch = batch_layout(setting, num_processes=num_processes, num_nodes=num_nodes, layout=layout)
    notes = []
    if setting.paper_v1 and method.name == "simpo" and "gamma" in setting.paper_v1:
        v1 = setting.paper_v1["gamma"]
        if not math.isclose(v1, hyper["gamma"]):
            notes.append(
                f"paper v1 used an absolute gamma of {v1:g}; the current ratio gives {hyper['gamma']:g}"
            )
    if setting.max_length - setting.max_prompt_length < setting.max_length // 4:
        notes.append(
            f"pairs longer than max_length have both responses cut to "
            f"{setting.max_length - setting.max_prompt_length} tokens (the original's rule)"
        )

    return RunConfig(
        setting=setting.name,
        title=setting.title,
        method=method.name,
        method_title=method.title,
        loss=method.formula,
        reference_model=method.reference_model,
        model_name_or_path=setting.model_name_or_path,
        model_revision=setting.model_revision,
        tokenizer_revision=setting.tokenizer_revision,
        torch_dtype=setting.torch_dtype,
        attn_implementation=setting.attn_implementation,
        chat_template=setting.chat_template,
        dataset=dataset_location(setting.dataset, setting.source),
        train_split=setting.train_split,
        test_split=setting.test_split,
        data_shuffle_seed=setting.data_shuffle_seed,
        max_length=setting.max_length,
        max_prompt_length=setting.max_prompt_length,
        truncation_mode=setting.truncation_mode,
        tokenization=tokenization,
        hyperparameters=hyper,
        learning_rate=lr,
        lr_scheduler_type=setting.lr_scheduler_type,
        warmup_ratio=setting.warmup_ratio,
        num_train_epochs=setting.num_train_epochs,
        max_steps=max_steps,
        optim=setting.optim,
        bf16=setting.bf16,
        gradient_checkpointing=setting.gradient_checkpointing,
        seed=setting.seed,
        batch=batch,
        per_device_eval_batch_size=setting.per_device_eval_batch_size,
        eval_steps=setting.eval_steps,
        logging_steps=setting.logging_steps,
        checkpoint_steps=setting.checkpoint_steps,
        train_rows=setting.train_rows,
        padding_free=setting.padding_free,
        chunked_logprobs=setting.chunked_logprobs,
        evaluation=evaluation_plan(setting),
        report_to=list(setting.report_to),
        code_version=code_version(),
        recipe_file=_relative(setting.source),
        sources=sources,
        notes=tuple(notes),
    )


def evaluation_plan(setting: Setting) -> EvalPlan:
    """The setting's plan with its generation config as an absolute path when the recipe gave a
    relative one, so the plan means the same wherever the run is read."""
    plan = setting.evaluation
    ref = plan.generation
    if ref and ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute():
        base = Path(setting.source).resolve().parent if setting.source else Path.cwd()
        plan = dataclasses.replace(plan, generation=str((base / ref).resolve()))
    return plan


def dataset_location(value: str, recipe_file: str) -> str:
    """A hub id as it is; a path (./, ../, /, ~: e.g. a `repro data on-policy` output) made
    absolute, relative ones against the recipe file's folder so a recipe travels with its data."""
    if not value.startswith(("./", "../", "/", "~")):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(recipe_file).resolve().parent / path
    return str(path.resolve())


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.ROOT))
    except ValueError:
        return path


def resolve_names(
    setting: str | Setting,
    method: str,
    *,
    overrides: list[str] | None = None,
    num_processes: int | None = None,
    num_nodes: int = 1,
    layout: str = "current",
    padding_free: bool | None = None,
    dataset: str | None = None,
    tokenization: str = "simpo",
    max_steps: int | None = None,
    report_to: str | None = None,
) -> tuple[RunConfig, Method]:
    """resolve() from what users type: a setting name or recipe file, a method name, --set pairs."""
    methods = load_methods()
    the_method = get_method(method, methods)
    config = resolve(
        setting if isinstance(setting, Setting) else get_setting(setting, methods),
        the_method,
        overrides=parse_overrides(overrides or []),
        num_processes=num_processes,
        num_nodes=num_nodes,
        layout=layout,
        tokenization=tokenization,
        max_steps=max_steps,
    )
    if padding_free is not None:
        config = config.replace(padding_free=padding_free)
    if report_to is not None:
        from repro.train import trackers

        config = config.replace(report_to=trackers.parse(report_to))
    if dataset is not None:  # e.g. a directory written by `repro data on-policy`
        dataset = str(Path(dataset).resolve()) if Path(dataset).exists() else dataset
        config = config.replace(
            dataset=dataset, notes=(*config.notes, f"dataset replaced by --dataset {dataset}")
        )
    return config, the_method


def overview() -> list[dict[str, Any]]:
    """Every setting x method with its resolved hyperparameters and whether they were published."""
    methods = load_methods()
    rows = []
    for name in list_settings():
        setting = get_setting(name, methods)
        for method in methods.values():
            config = resolve(setting, method)
            hps = {k: config.hyperparameters[k] for k in method.hyperparameters}
            hps["learning_rate"] = config.learning_rate
            if "gamma" in config.hyperparameters:
                hps["gamma"] = config.hyperparameters["gamma"]
            rows.append(
                {
                    "setting": name,
                    "method": method.name,
                    "hyperparameters": hps,
                    "source": "published" if method.name in setting.methods else "default",
                }
            )
    return rows
