"""How an evaluation runs, apart from what it evaluates and who judges: the generation engine,
the data files the benchmarks read, caps and switches (`repro eval`'s and `repro run`'s options)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import records
from repro.errors import ReproError, unknown
from repro.evaluation.zeroeval import BOS_MODES as ZEROEVAL_BOS

STAGES = ("all", "generate", "judge")
# The fields that name files or folders: absolute in a SLURM plan, whose jobs run elsewhere.
PATHS = ("alpaca_reference", "arena_hard_data", "mt_bench_data", "lc_data", "zeroeval_data")


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
    alpaca_reference: Path | None = None
    arena_hard_data: Path | None = None
    mt_bench_data: Path | None = None
    lc_data: Path | None = None
    zeroeval_data: Path | None = None
    zeroeval_bos: str = "single"  # single (one BOS) or zeroeval (vLLM's way: may double it)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise unknown("evaluation stage", self.stage, STAGES)
        if self.zeroeval_bos not in ZEROEVAL_BOS:
            raise unknown("--zeroeval-bos mode", self.zeroeval_bos, ZEROEVAL_BOS)

    @classmethod
    def pick(cls, values: dict[str, Any], **overrides: Any) -> EvalOptions:
        """The options among a command's parameters (those named like a field), None left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in values.items() if k in names and v is not None}
        return cls(**{**chosen, **overrides})

    def absolute(self) -> EvalOptions:
        """The same options with every file or folder absolute (a SLURM job runs in its own folder)."""
        return dataclasses.replace(
            self, **{n: getattr(self, n).resolve() for n in PATHS if getattr(self, n) is not None}
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: str(v) if k in PATHS and v is not None else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> EvalOptions:
        """Options as `to_json` wrote them: exactly its keys, or one line naming `where` and the key."""
        records.exact_keys(data, cls, where)
        for name in PATHS:
            if data[name] is not None and not isinstance(data[name], str):
                raise ReproError(f"{where}: {name} must be a path or null, got {data[name]!r}")
        return cls(**{k: Path(v) if k in PATHS and v is not None else v for k, v in data.items()})
