"""What a diagnosis is made of: checks with a verdict and numbers, and causes ranked by weight."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError

STATUSES = ("ok", "differs", "unknown")
RULES_FILE = paths.EVAL / "diagnose.yaml"


@cache
def rules() -> dict[str, Any]:
    """eval/diagnose.yaml: what a run is checked against (packages, judge, thresholds, patterns)."""
    data = read_yaml(RULES_FILE)
    if not isinstance(data, dict):
        raise ReproError(f"{RULES_FILE}: expected a mapping")
    return data


# The chain of checks, filled by `in_chain` as the check modules are imported (repro.runs.analysis.diagnosis
# imports every module of its package): name -> (position, the check function).
_CHAIN: dict[str, tuple[int, Callable[[Any], Check]]] = {}


def in_chain(name: str, *, order: int) -> Callable[[Callable[[Any], Check]], Callable[[Any], Check]]:
    """Decorator: the function is the chain's check `name`, run `order`-th (lowest first), in
    the maintainers' order: recipe, environment, tokenization, training, generation, judging."""

    def register(function: Callable[[Any], Check]) -> Callable[[Any], Check]:
        taken = {o: n for n, (o, _) in _CHAIN.items() if n != name}
        if order in taken:
            raise ReproError(f"diagnosis check '{name}': position {order} is already '{taken[order]}'")
        _CHAIN[name] = (order, function)
        return function

    return register


def chain() -> list[Callable[[Any], Check]]:
    """The registered checks, in order."""
    return [function for _, function in sorted(_CHAIN.values(), key=lambda entry: entry[0])]


@dataclass
class Cause:
    """One likely cause; `weight` orders them (most likely first), it is not a probability."""

    check: str
    summary: str
    weight: float


@dataclass
class Check:
    check: str
    status: str = "ok"
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    causes: list[Cause] = field(default_factory=list)

    def differs(self, summary: str, weight: float) -> None:
        """Record a difference: the check differs and `summary` is one of the likely causes."""
        self.status = "differs"
        self.causes.append(Cause(self.check, summary, weight))

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "evidence": self.evidence,
        }


def unknown(check: str, why: str, **evidence: Any) -> Check:
    return Check(check, "unknown", why, dict(evidence))


@dataclass
class Diagnosis:
    checks: list[Check]
    subject: str  # what was diagnosed: a run folder or an outputs file
    notes: list[str] = field(default_factory=list)  # said before the checks (e.g. verify failed)

    @property
    def causes(self) -> list[Cause]:
        found = [c for check in self.checks for c in check.causes]
        return sorted(found, key=lambda c: -c.weight)

    @property
    def exit_code(self) -> int:
        return 1 if any(c.status == "differs" for c in self.checks) else 0

    def as_text(self) -> list[str]:
        """The verdicts, one line per check, then the likely causes, most likely first."""
        out = [f"diagnosis of {self.subject}"]
        out += [f"! {note}" for note in self.notes]
        width = max((len(c.check) for c in self.checks), default=0)
        out += [f"{c.check:<{width}}  {c.status:<7}  {c.summary}" for c in self.checks]
        causes = self.causes
        if causes:
            out.append("likely causes, most likely first:")
            out += [f"{i}. [{c.check}] {c.summary}" for i, c in enumerate(causes, 1)]
        else:
            unknown = [c.check for c in self.checks if c.status == "unknown"]
            out.append("nothing differs" + (f" (not checked: {', '.join(unknown)})" if unknown else ""))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON form: {"checks": [...], "causes": [...]}."""
        return {
            "checks": [c.as_dict() for c in self.checks],
            "causes": [{"check": c.check, "summary": c.summary} for c in self.causes],
        }


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
