"""How an evaluation runs, apart from what it evaluates and who judges: the generation engine,
the data files the benchmarks read, caps and switches (`repro eval`'s and `repro run`'s options).

The data files are the benchmarks' own options (`Benchmark.data_options`: --zeroeval-data and
the like), held by name in `data_paths`; in JSON (a SLURM plan) each given one is a top-level
key beside the other options. Which names exist is the registry's business (the CLI builds its
flags from it, repro.runs.cluster.stage checks a plan's names against it), not this record's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ReproError, unknown
from repro.evaluation.zeroeval import BOS_MODES as ZEROEVAL_BOS

STAGES = ("all", "generate", "judge")


@dataclass(frozen=True)
class EvalOptions:
    backend: str = "transformers"  # transformers | vllm
    tokenizer: str | None = None  # default: the model's own
    limit: int | None = None  # only the first N questions per benchmark (a partial result)
    reference_model: str | None = None  # the baseline's answers (tiny: the starting model)
    max_new_tokens: int | None = None  # default: the setting's generation config
    server: str | None = None  # generate with an OpenAI-compatible server instead
    server_key_env: str | None = None
    chat_template: str | None = None  # Arena-Hard/MT-Bench template (default: the setting's)
    allow_double_bos: bool = False
    # "generate": answers only (a GPU job); "judge": answers are expected on disk, so the
    # models load only if one is missing (a CPU job); "all": both, in one process.
    stage: str = "all"
    zeroeval_bos: str = "single"  # single (one BOS) or zeroeval (vLLM's way: may double it)
    # the benchmarks' data files given (a data option's name -> its path; absent: not given)
    data_paths: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise unknown("evaluation stage", self.stage, STAGES)
        if self.zeroeval_bos not in ZEROEVAL_BOS:
            raise unknown("--zeroeval-bos mode", self.zeroeval_bos, ZEROEVAL_BOS)
        for name in self.data_paths:
            if not isinstance(name, str) or not name.isidentifier():
                raise ReproError(f"data option {name!r} is not a plain name")
        # None means not given: kept out, so equal options compare equal
        object.__setattr__(self, "data_paths", {k: Path(v) for k, v in self.data_paths.items() if v})

    def data_path(self, name: str) -> Path | None:
        """The file or folder given for data option `name` (a benchmark's), or None."""
        return self.data_paths.get(name)

    @classmethod
    def pick(cls, values: dict[str, Any], **overrides: Any) -> EvalOptions:
        """The options among a command's parameters (those named like a field), None left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in values.items() if k in names and v is not None}
        return cls(**{**chosen, **overrides})

    def absolute(self) -> EvalOptions:
        """The same options with every file or folder absolute (a SLURM job runs in its own folder)."""
        return dataclasses.replace(self, data_paths={k: v.resolve() for k, v in self.data_paths.items()})

    def to_json(self) -> dict[str, Any]:
        """Every option as a top-level key, each data option given among them."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "data_paths"}
        return {**data, **{k: str(v) for k, v in self.data_paths.items()}}

    @classmethod
    def from_json(cls, data: Any, where: str) -> EvalOptions:
        """Options as `to_json` wrote them: its keys, any other key a data option's path (null:
        not given, as plans of an older repro wrote every built-in one); one line naming `where`."""
        if not isinstance(data, dict):
            raise ReproError(f"{where}: expected a mapping, got {type(data).__name__}")
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "data_paths"]
        for key in fields:
            if key not in data:
                raise ReproError(f"{where}: missing key '{key}'")
        given = {k: v for k, v in data.items() if k not in fields}
        for name, value in given.items():
            if value is not None and not isinstance(value, str):
                raise ReproError(f"{where}: {name} must be a path or null, got {value!r}")
        return cls(**{k: data[k] for k in fields}, data_paths={k: Path(v) for k, v in given.items() if v})
