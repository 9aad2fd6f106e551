"""Resolution: one setting x one method x the user's overrides -> the run's RunConfig.

`resolve()` combines them (method default < setting value < command line), records where each
value comes from, derives what the paper leaves implicit (a method's `derived` values such as
SimPO's gamma = gamma_beta_ratio x beta, and the gradient accumulation that keeps the total
batch), and notes where the paper's first version differs.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from repro import hashing, hub, paths
from repro.config.methods import Method, check_hyperparameters, get_method, load_methods
from repro.config.runconfig import Batch, EvalPlan, RunConfig, code_version
from repro.config.settings import (
    SETTING_FIELDS,
    Setting,
    get_setting,
    list_settings,
    parse_report_to,
    parse_setting,
)
from repro.config.validate import check_choice, check_keys, coerce
from repro.data import alpaca_preferences
from repro.data.preference import TOKENIZATIONS, local_sha256
from repro.errors import ReproError, UsageError, unknown

# How a setting's batch is laid out on GPUs: as the setting says, or as the paper's runs were.
LAYOUTS = ("current", "paper-time")


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
            f"{processes} processes x {num_nodes} nodes = {per_step} (from --gpus/--nodes, or setting "
            f"'{setting.name}''s total_batch_size, per_device_train_batch_size and num_processes)"
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
        if key.strip() in overrides and overrides[key.strip()] != value:  # the last would win unseen
            raise UsageError(f"--set {key.strip()} given twice ({overrides[key.strip()]} and {value})")
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
    data_source: str | None = None,
) -> RunConfig:
    """The fully resolved run config for one setting x method, with each value's source.
    `data_source`: the source folder of a dataset repro builds itself (--data; default: shared/)."""
    overrides = dict(overrides or {})
    sources: dict[str, str] = {}
    check_choice(tokenization, TOKENIZATIONS, "--tokenization")

    # Setting-level overrides (max_length=..., seed=...) go through the same validation.
    setting_keys = set(SETTING_FIELDS) - {"name", "title", "methods", "method_sources", "aliases"}
    setting_overrides = {k: overrides.pop(k) for k in list(overrides) if k in setting_keys}
    if setting_overrides:
        data = {f: getattr(setting, f) for f in SETTING_FIELDS}
        data.update(setting_overrides)
        source = setting.source or ""  # the recipe file: its relative paths stay relative to it
        setting = parse_setting(data, f"{setting.name} (with --set)", load_methods())
        setting = dataclasses.replace(setting, source=source)

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

    for derived in method.derived.values():
        hyper[derived.name] = derived.value(hyper)
        sources[derived.name] = derived.source
    if setting.tokenizer_revision:
        sources["tokenizer_revision"] = setting.tokenizer_revision_source or f"setting {setting.name}"

    batch = batch_layout(setting, num_processes=num_processes, num_nodes=num_nodes, layout=layout)
    notes = []
    for name in method.derived:  # paper v1 gave SimPO's gamma as an absolute value
        v1 = (setting.paper_v1 or {}).get(name)
        if v1 is not None and not math.isclose(v1, hyper[name]):
            notes.append(
                f"paper v1 used an absolute {name} of {v1:g}; the current ratio gives {hyper[name]:g}"
            )
    if setting.max_length - setting.max_prompt_length < setting.max_length // 4:
        notes.append(
            f"pairs longer than max_length have both responses cut to "
            f"{setting.max_length - setting.max_prompt_length} tokens (the original's rule)"
        )

    dataset = dataset_location(setting.dataset, setting.source)
    return RunConfig(
        setting=setting.name,
        title=setting.title,
        method=method.name,
        method_title=method.title,
        loss=method.formula,
        reference_model=method.reference_model,
        model_name_or_path=setting.model_name_or_path,
        model_sha256=local_model_sha256(setting.model_name_or_path),
        model_revision=setting.model_revision,
        tokenizer_revision=setting.tokenizer_revision,
        torch_dtype=setting.torch_dtype,
        attn_implementation=setting.attn_implementation,
        chat_template=setting.chat_template,
        family=setting.family,
        dataset_options=built_dataset_options(setting, data_source),
        dataset=dataset,
        dataset_sha256=local_sha256(dataset, (setting.train_split, setting.test_split)),
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


def local_model_sha256(model: str) -> str | None:
    """The hash of a starting model given as a local folder (repro.hashing.model_sha256), so that
    other weights behind the same path are another run; None for a hub id or a repro: model."""
    folder = Path(model).expanduser()
    return hashing.model_sha256(folder) if not model.startswith("repro:") and folder.is_dir() else None


def hub_commit(name: str, revision: str, kind: str) -> str | None:
    """The commit a hub model or dataset is at (repro.hub.commit); None for anything else, and for
    a revision that is a commit already (it is its own pin: runs recorded so keep their ids)."""
    if not hub.is_hub_id(name) or hub.COMMIT.fullmatch(revision):
        return None
    return hub.commit(name, revision, kind)


def evaluation_plan(setting: Setting) -> EvalPlan:
    """The setting's plan with its generation config as an absolute path when the recipe gave a
    relative one, so the plan means the same wherever the run is read."""
    plan = setting.evaluation
    ref = plan.generation
    if ref and ref.endswith((".yaml", ".yml")) and not Path(ref).is_absolute():
        base = Path(setting.source).resolve().parent if setting.source else Path.cwd()
        plan = dataclasses.replace(plan, generation=str((base / ref).resolve()))
    return plan


def built_dataset_options(setting: Setting, data: str | None) -> dict[str, Any] | None:
    """The options of a dataset repro builds from annotation files (repro:alpaca-eval-preferences):
    the setting's binarization values, checked, with the source folder and its digest. Without
    the sources (no shared/, no --data) the digest is missing and training says so in one line."""
    if setting.dataset != alpaca_preferences.NAME:
        if data is not None:
            raise ReproError(
                f"--data is for settings whose dataset is {alpaca_preferences.NAME}, not {setting.dataset}"
            )
        return None
    where = f"{setting.source or setting.name}: dataset_options"
    values = dict(setting.dataset_options or {})
    check_keys(values, [f.name for f in dataclasses.fields(alpaca_preferences.Binarization)], where)
    hints = typing.get_type_hints(alpaca_preferences.Binarization)
    options: dict[str, Any] = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    folder = Path(data).expanduser().resolve() if data else alpaca_preferences.default_source()
    options["source"] = str(folder) if folder else None
    options["sources_sha256"] = alpaca_preferences.digest(folder) if folder else None
    return options


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
    data_source: str | None = None,
    tokenization: str = "simpo",
    max_steps: int | None = None,
    report_to: str | None = None,
    pin: bool = True,
) -> tuple[RunConfig, Method]:
    """resolve() from what users type: a setting name or recipe file, a method name, --set pairs.
    The config records what differs from the recipe alone (`recipe_differences`), found from the
    same reading of the recipe, and (`pin`) the hub commits its model and dataset are at now."""
    methods = load_methods()
    the_method = get_method(method, methods)
    the_setting = setting if isinstance(setting, Setting) else get_setting(setting, methods)
    config = resolve(
        the_setting,
        the_method,
        overrides=parse_overrides(overrides or []),
        num_processes=num_processes,
        num_nodes=num_nodes,
        layout=layout,
        tokenization=tokenization,
        max_steps=max_steps,
        data_source=data_source,
    )
    if padding_free is not None:
        config = config.replace(padding_free=padding_free)
    if report_to is not None:
        config = config.replace(report_to=parse_report_to(report_to))
    if dataset is not None:  # e.g. a directory written by `repro data on-policy`
        dataset = str(Path(dataset).resolve()) if Path(dataset).exists() else dataset
        if data_source is not None:
            raise ReproError("--data builds the setting's dataset; --dataset replaces it: give one of them")
        config = config.replace(
            dataset=dataset,
            dataset_sha256=local_sha256(dataset, (config.train_split, config.test_split)),
            dataset_options=None,  # the setting's way of building its dataset no longer applies
            notes=(*config.notes, f"dataset replaced by --dataset {dataset}"),
        )
    if pin:  # what the user runs is pinned; reading recipes needs no hub
        config = config.replace(
            model_commit=hub_commit(config.model_name_or_path, config.model_revision, "model"),
            dataset_commit=hub_commit(config.dataset, "main", "dataset"),
        )
    recipe = resolve(the_setting, the_method)
    return config.replace(recipe_differences=config.differences_from(recipe)), the_method


def with_recipe_differences(config: RunConfig) -> RunConfig:
    """A config recorded by an older repro (no `recipe_differences`), with them found from its
    recipe as it is now: the recipe file it names (relative ones under the repro checkout), else
    its setting's name. Unchanged when the recipe cannot be resolved any more."""
    if config.recipe_differences is not None:
        return config
    source = Path(config.recipe_file) if config.recipe_file else None
    if source is not None and not source.is_absolute():
        source = paths.ROOT / source  # recipe_file is kept relative to the checkout (_relative)
    where = str(source) if source is not None and source.exists() else config.setting
    try:
        recipe, _ = resolve_names(where, config.method, pin=False)  # commits are incidental
    except ReproError:
        return config
    return config.replace(recipe_differences=config.differences_from(recipe))


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
            for derived in method.derived:
                hps[derived] = config.hyperparameters[derived]
            rows.append(
                {
                    "setting": name,
                    "method": method.name,
                    "hyperparameters": hps,
                    "source": "published" if method.name in setting.methods else "default",
                }
            )
    return rows
