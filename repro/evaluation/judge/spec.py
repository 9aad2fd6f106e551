"""Which judge a command asked for: an OpenAI-compatible endpoint, or `rule` (the local rule judge)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.config.runconfig import EvalPlan
from repro.errors import ReproError, UsageError, unknown
from repro.evaluation.judge import upstream
from repro.evaluation.judge.judged_by import JudgedBy, Said, is_local


def _default_cache() -> Path:
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro")) / "judgments.sqlite"


@dataclass
class Judge:
    """Where judgments come from: an OpenAI-compatible endpoint, or `rule` (the local rule judge)."""

    kind: str = "endpoint"  # endpoint | rule
    url: str | None = None
    model: str | None = None  # None: each benchmark's own judge (gpt-4-1106-preview, gpt-4)
    key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    cache: Path = field(default_factory=_default_cache)
    refresh: bool = False  # --refresh-judgments: ask the judge again instead of the cache

    KINDS = ("endpoint", "rule")

    @classmethod
    def choose(cls, kind: str | None, plan: EvalPlan, **kwargs: Any) -> Judge:
        """The judge a command asked for; without a choice: an endpoint when a URL is given, else
        the recipe's judge (an endpoint then asks for its URL)."""
        kind = kind or ("endpoint" if kwargs.get("url") else plan.judge)
        if kind not in cls.KINDS:
            raise unknown("judge", kind, cls.KINDS)
        if kind == "endpoint" and kwargs.get("url") and (problem := upstream.url_problem(kwargs["url"])):
            raise UsageError(problem)
        endpoint_only = {"url": None, "model": None, "key_env": cls.key_env}  # their defaults
        if kind == "rule" and (
            given := [f for f, d in endpoint_only.items() if kwargs.get(f) not in (None, d)]
        ):
            flags = " and ".join(f"--judge-{f.replace('_', '-')}" for f in given)
            verb = "name" if len(given) > 1 else "names"
            raise UsageError(f"{flags} {verb} an endpoint judge; the judge here is the local rule judge")
        return cls(kind=kind, **{k: v for k, v in kwargs.items() if v is not None})

    def backend(self) -> Any:
        if self.kind == "rule":
            return upstream.RuleJudge()
        if not self.url:
            raise ReproError("no judge: pass --judge-url URL (an OpenAI-compatible endpoint) or --judge rule")
        return upstream.OpenAIEndpoint(
            self.url,
            model=self.model,
            api_key_env=self.key_env,
            max_concurrency=self.concurrency,
            require_key=not is_local(self.url),  # a server you run yourself needs no key
        )

    def describe(self) -> dict[str, Any]:
        """The judge asked for, as plans and evaluation keys hold it (never the key itself)."""
        return self.judged_by().to_json()

    def judged_by(self, said: Said | None = None) -> JudgedBy:
        """This judge as results record it, with what it said of itself (`said`) where it was asked."""
        return JudgedBy(self.kind, self.url, self.model, self.key_env, said)
