"""The run configuration: one typed, frozen object from recipe to loss.

`repro.config.resolution.resolve()` builds it from a setting, a method and the user's overrides;
`launch.prepare()` writes it into run.json and the training worker reads it back through
`RunConfig.from_json`, which refuses an unknown or a missing key in one line. The run's
identity (`config_hash`) is computed here, from every field that can change the trained
weights, and from the code that trains them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from repro import paths, records
from repro.config import evalconfig
from repro.data.family import Family
from repro.errors import ReproError

# Fields that describe a run without changing what it computes. Everything else is in the hash.
# report_to: where metrics are also sent (W&B, TensorBoard) changes no weight and no score.
NOT_IN_IDENTITY = (
    "title", "method_title", "loss", "recipe_file", "sources", "notes", "checkpoint_steps", "report_to",
    "recipe_differences",
)  # fmt: skip
# Identity values added after runs were recorded: left out of the hash (and run.json) where unset,
# so that those runs keep their identity.
ADDED_LATER = ("dataset_sha256", "model_sha256", "model_commit", "dataset_commit")
# Values every run of newer code differs in from its recipe's: not a difference worth naming.
# The hub commits are what the recipe's revision (`main`) was at: no recipe value of their own.
INCIDENTAL = ("code_version", "model_commit", "dataset_commit")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"hyperparameters": {"beta": 2}} -> {"hyperparameters.beta": 2}: the one flattening of a
    config, which replicates, the recipe differences and the recipe diagnosis name values by."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# What of eval/ the evaluation reads as part of its code: the bundled question sets (settings
# evaluate on them as benchmarks read their own data), the Arena-Hard judge's settings (prompt,
# temperature, attempts) and ZeroEval's prompts. Generation configs are keyed on their own.
CODE_DATA = ("questions", "judges", "zeroeval")


def code_version() -> str:
    """SHA-256 over repro's Python source and the files of eval/ it reads as code (CODE_DATA): a
    run made by other code, on other bundled questions or with other judge settings is another run."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for folder in CODE_DATA:
        for path in sorted(p for p in (paths.EVAL / folder).rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(paths.EVAL)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class EvalPlan:
    """How a setting is evaluated: its generation config, default judge, baseline and questions.

    - generation: a config under eval/generation/ by name, or a YAML path (relative to the recipe);
    - judge: `endpoint` (an OpenAI-compatible server) or `rule` (the local rule judge);
    - baseline: `published` (each benchmark's own reference answers) or `init-model` (the
      answers of the model training started from);
    - questions: `benchmark` (the benchmarks' own questions) or `repro:tiny` (the toy task's).
    """

    generation: str | None = None
    judge: str = "endpoint"
    baseline: str = "published"
    questions: str = "benchmark"

    CHOICES = {"judge": ("endpoint", "rule"), "baseline": ("published", "init-model"),
               "questions": ("benchmark", "repro:tiny")}  # fmt: skip

    @cached_property
    def generation_file(self) -> evalconfig.GenerationFile:
        """The generation config, read once in this process for all who use it (a file edited
        while a run trains is the next process's, never half this one's)."""
        return evalconfig.load(self.generation)


@dataclass(frozen=True)
class Batch:
    """The training batch: per device x accumulation x processes x nodes = the setting's total."""

    total: int
    per_device: int
    gradient_accumulation_steps: int
    num_processes: int  # per node
    num_nodes: int
    world_size: int  # num_processes x num_nodes
    layout: str  # recipes.LAYOUTS: current, or paper-time (the paper's per-device batch and GPUs)

    def describe(self) -> str:
        return (
            f"{self.total} = {self.per_device} per device x {self.gradient_accumulation_steps} accumulation"
            f" x {self.num_processes} processes x {self.num_nodes} nodes"
        )


@dataclass(frozen=True)
class RunConfig:
    setting: str
    title: str
    method: str
    method_title: str
    loss: str
    reference_model: bool
    model_name_or_path: str
    model_revision: str
    tokenizer_revision: str | None  # the tokenizer's own revision where it differs (Llama 3: pre-update)
    torch_dtype: str | None
    attn_implementation: str
    chat_template: str
    dataset: str
    train_split: str
    test_split: str
    data_shuffle_seed: int
    max_length: int
    max_prompt_length: int
    truncation_mode: str
    tokenization: str  # simpo | paper-v1 | trl (repro.data.preference)
    hyperparameters: dict[str, Any]  # the method's values, log_probs included
    learning_rate: float
    lr_scheduler_type: str
    warmup_ratio: float
    num_train_epochs: float
    max_steps: int | None
    optim: str
    bf16: bool
    gradient_checkpointing: bool
    seed: int
    batch: Batch
    per_device_eval_batch_size: int
    eval_steps: int
    logging_steps: int
    checkpoint_steps: int
    train_rows: int | None
    padding_free: bool
    chunked_logprobs: bool
    evaluation: EvalPlan
    report_to: list[str]  # experiment trackers (repro.train.trackers): wandb, tensorboard
    code_version: str  # code_version(): the source that trains and evaluates
    recipe_file: str
    sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # The setting's model family (repro.data.family): how its tokenizer starts, turns and ends a
    # sequence. None: inferred from the tokenizer (a recipe that names none, a run of an older repro).
    family: Family | None = None
    # How a dataset repro builds itself is made (repro.data.alpaca_preferences.Binarization), with
    # the sources' digest (in the identity) and their folder (`source`, not in it). None: a file dataset.
    dataset_options: dict[str, Any] | None = None
    # The SHA-256 of a local dataset folder's splits (repro.data.preference.local_sha256), so that
    # other data behind the same path is another run. None: a hub id or a dataset repro builds.
    dataset_sha256: str | None = None
    # The SHA-256 of a local starting model's folder (repro.hashing.model_sha256: weights, config,
    # tokenizer), so that other weights behind the same path are another run. None: a hub id (its
    # model_revision names it) or a model repro builds or fetches by its pinned hash.
    model_sha256: str | None = None
    # The hub commit a hub model's `model_revision`, and a hub dataset's head, resolved to when the
    # config was resolved (repro.hub.commit), so that a repository moving upstream is another run;
    # training loads that commit. None: a local or built-in one, a hub one not in an offline cache,
    # or a run of an older repro.
    model_commit: str | None = None
    dataset_commit: str | None = None
    # What differs from the setting x method as its recipe alone gives it, by flattened name:
    # {name: [this run's value, the recipe's]}; found once, when the config is resolved, from the
    # same reading of the recipe (not in the identity). None: resolved by an older repro.
    recipe_differences: dict[str, list[Any]] | None = None

    @cached_property
    def config_hash(self) -> str:
        """SHA-256 of every value that changes training (not sources, notes, titles, paths)."""
        keep = {k: v for k, v in self.to_json(with_hash=False).items() if k not in NOT_IN_IDENTITY}
        # fields added later stay out of the hash where unset, so older runs keep their identity
        if self.family is None:
            keep.pop("family", None)
        else:
            keep["family"] = self.family.identity
        for added in ADDED_LATER:  # older runs: never had them
            if getattr(self, added) is None:
                keep.pop(added, None)
        if self.dataset_options is None:
            keep.pop("dataset_options", None)
        else:
            keep["dataset_options"] = {k: v for k, v in self.dataset_options.items() if k != "source"}
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()

    def identity_values(self) -> dict[str, Any]:
        """Every value that decides this run's scores but the seed, flattened (what replicates
        share and what a variant of its recipe names)."""
        skip = ("seed", "config_hash", "recipe_differences", *NOT_IN_IDENTITY)
        return flatten({k: v for k, v in self.to_json(with_hash=False).items() if k not in skip})

    def differences_from(self, recipe: RunConfig) -> dict[str, list[Any]]:
        """{name: [ours, the recipe's]} for each value that is not the recipe's (code version aside)."""
        ours, theirs = self.identity_values(), recipe.identity_values()
        return {
            name: [ours.get(name), theirs.get(name)]
            for name in sorted(ours.keys() | theirs.keys())
            if name not in INCIDENTAL and ours.get(name) != theirs.get(name)
        }

    @property
    def model_hub_revision(self) -> str:
        """What the hub loads the starting model at: the commit resolved, else the recipe's revision."""
        return self.model_commit or self.model_revision

    @property
    def tokenizer_hub_revision(self) -> str:
        """The tokenizer's own revision where it has one (Llama 3's pre-update), else the model's."""
        return self.tokenizer_revision or self.model_hub_revision

    @property
    def run_id(self) -> str:
        return f"{self.config_hash[:10]}-seed{self.seed}"

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self, *, with_hash: bool = True) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["evaluation"] = dataclasses.asdict(self.evaluation)
        data["batch"] = dataclasses.asdict(self.batch)  # the same mapping as ever: the hash is over it
        data["notes"] = list(self.notes)
        data["family"] = self.family.to_json() if self.family else None
        # absent when unset: older run.json files are written back byte for byte (they never had them)
        for optional in ("family", "dataset_options", *ADDED_LATER, "recipe_differences"):
            if data[optional] is None:
                del data[optional]
        if with_hash:
            data["config_hash"] = self.config_hash
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "run config") -> RunConfig:
        """Strict: every field present, nothing else; a recorded hash must match the values."""
        if not isinstance(data, dict):
            raise ReproError(f"{where}: expected a mapping")
        data = dict(data)
        recorded = data.pop("config_hash", None)
        optional = [f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING]  # fmt: skip
        records.exact_keys(data, cls, where, optional=tuple(optional))
        plan = data.get("evaluation")
        if not isinstance(plan, dict):
            raise ReproError(f"{where}: evaluation must be a mapping")
        records.exact_keys(plan, EvalPlan, f"{where}: evaluation",
                    optional=tuple(f.name for f in dataclasses.fields(EvalPlan)))  # fmt: skip
        data["evaluation"] = EvalPlan(**plan)
        batch = data.get("batch")
        if not isinstance(batch, dict):
            raise ReproError(f"{where}: batch must be a mapping")
        records.exact_keys(batch, Batch, f"{where}: batch")
        data["batch"] = Batch(**batch)
        data["notes"] = tuple(data.get("notes") or ())
        family = data.get("family")
        if family is not None:
            if not isinstance(family, dict):
                raise ReproError(f"{where}: family must be a mapping")
            defaults = tuple(
                f.name for f in dataclasses.fields(Family) if f.default is not dataclasses.MISSING
            )
            records.exact_keys(family, Family, f"{where}: family", optional=defaults)
            data["family"] = Family(**{**family, "stop": tuple(family["stop"])})
        config = cls(**data)
        if recorded is not None and recorded != config.config_hash:
            raise ReproError(
                f"{where}: config_hash {recorded[:10]} does not match its values "
                f"({config.config_hash[:10]}); "
                "the file was edited or written by another version of repro"
            )
        return config


@dataclass(frozen=True)
class RunPaths:
    """Where one training run reads and writes (absolute paths, resolved by launch.prepare)."""

    output_dir: str
    deepspeed_config: str
    model: str
    tokenizer: str
    data_dir: str
    cache_dir: str
    reference_cache: str | None


@dataclass(frozen=True)
class RunFile:
    """run.json: what the launcher hands every training process."""

    config: RunConfig
    paths: RunPaths
    eval_during_training: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "paths": dataclasses.asdict(self.paths),
            "eval_during_training": self.eval_during_training,
        }

    @classmethod
    def read(cls, path: Path) -> RunFile:
        where = str(path)
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReproError(f"{where}: not a readable run file ({exc})") from None
        if not isinstance(data, dict):
            raise ReproError(f"{where}: expected a mapping")
        records.exact_keys(data, cls, where, optional=("eval_during_training",))
        paths_ = data["paths"]
        if not isinstance(paths_, dict):
            raise ReproError(f"{where}: paths must be a mapping")
        records.exact_keys(paths_, RunPaths, f"{where}: paths")
        return cls(
            config=RunConfig.from_json(data["config"], where),
            paths=RunPaths(**paths_),
            eval_during_training=bool(data.get("eval_during_training", True)),
        )
