"""The BOS guard: how many BOS tokens training sequences and generation prompts start with.

Two BOS silently shift scores (SimPO README; issues #21, #31): the Llama 3 templates write
<|begin_of_text|> themselves, and a post-update tokenizer (or vLLM's add_special_tokens)
adds another. The guard runs before every train and generate stage, and its report goes
into the run manifest. Where the published numbers were themselves scored with two BOS
(Mistral-Base and Gemma AlpacaEval prompts), the generation config says so
(`expected_bos: 2`) and two is what fidelity requires.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from repro.data import family as families
from repro.data.preference import Pair, Pipeline
from repro.errors import ReproError

PROBE = Pair(
    prompt=[{"role": "user", "content": "What is the capital of France?"}],
    chosen={"role": "assistant", "content": "Paris."},
    rejected={"role": "assistant", "content": "Lyon."},
)
PROBE_INSTRUCTION = "What is the capital of France?"
FIX = (
    "use the pre-update tokenizer (no BOS in its post-processor) or a template without BOS "
    "(e.g. llama3-nobos: drop <|begin_of_text|> from the prompt template)"
)


@dataclass
class Check:
    what: str
    first_ids: list[int]
    first_tokens: list[str]
    bos_count: int  # leading BOS tokens
    expected: int
    status: str  # ok | error | warning
    message: str


def leading(ids: list[int], token_id: int) -> int:
    n = 0
    for i in ids:
        if i != token_id:
            break
        n += 1
    return n


def _check(what: str, ids: list[int], tokenizer, expected: int, why: str = "") -> Check:
    bos = tokenizer.bos_token_id
    count = leading(ids, bos) if bos is not None else 0
    first = ids[:4]
    tokens = tokenizer.convert_ids_to_tokens(first)
    if count == expected:
        status, message = (
            "ok",
            why or (f"{count} BOS" if bos is not None else "no BOS: the tokenizer has none"),
        )
    elif count > expected:
        status, message = "error", f"{count} BOS where {expected} expected: {FIX}"
    else:
        status, message = (
            "warning",
            f"{count} BOS where {expected} expected: the model sees no start-of-text token",
        )
    return Check(what, first, tokens, count, expected, status, message)


def run(tokenizer, pipeline: Pipeline, generation: dict[str, Any] | None) -> list[Check]:
    """Check the family's declaration against the tokenizer, then the training sequences of
    `pipeline` and the setting's generation prompts. Only a sequence's leading run of BOS counts:
    a ChatML turn start (`bos_opens_turns`) later in the sequence is not a second BOS."""
    family = pipeline.family or families.infer(tokenizer)
    checks = [_family_check(family, tokenizer)]
    sample = pipeline.tokenize(PROBE)
    bos = tokenizer.bos_token_id
    doubled = bos is not None and sample.chosen_input_ids[:2] == [bos] * 2
    expected_train = 2 if pipeline.tokenization == "paper-v1" and doubled else family.expected_bos
    why = "paper-v1 reproduces the paper-time double BOS" if expected_train == 2 else ""
    checks.append(
        _check(f"training ({pipeline.tokenization})", sample.chosen_input_ids, tokenizer, expected_train, why)
    )
    if generation:
        cfg = generation["alpaca_eval"]
        prompt = cfg["prompt_template"].format(instruction=PROBE_INSTRUCTION)
        # vLLM's LLM.generate tokenizes prompts with add_special_tokens=True
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        expected = int(cfg.get("expected_bos", family.expected_bos))
        note = "two BOS, as the published numbers were scored" if expected == 2 else ""
        checks.append(_check("generation (AlpacaEval prompt template)", ids, tokenizer, expected, note))
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROBE_INSTRUCTION}], tokenize=False, add_generation_prompt=True
    )
    # a template that writes the BOS goes in without special tokens (repro.evaluation.runner)
    special = not family.template_writes_bos
    ids = list(tokenizer(chat, add_special_tokens=special)["input_ids"])
    checks.append(
        _check(
            f"generation (chat template, add_special_tokens={special})", ids, tokenizer, family.expected_bos
        )
    )
    return checks


def _family_check(family: families.Family, tokenizer) -> Check:
    """The setting's family declaration against the tokenizer: a contradiction is an error."""
    found = families.contradictions(family, tokenizer) if family.name != "inferred" else []
    ids = list(tokenizer("a", add_special_tokens=True)["input_ids"])[:4]
    if found:
        status, message = "error", f"family '{family.name}' contradicts the tokenizer: {'; '.join(found)}"
    elif family.name == "inferred":
        status, message = "ok", "no family declared: inferred from the tokenizer"
    else:
        status, message = "ok", f"family '{family.name}' matches the tokenizer"
    bos = family.expected_bos
    return Check("family declaration", ids, tokenizer.convert_ids_to_tokens(ids), bos, bos, status, message)


STATUSES = ("ok", "warning", "error", "skipped")


@dataclass(frozen=True)
class Report:
    """The guard's outcome for one tokenizer (bos_check.json, and each stage of a result's
    `bos_check`): the worst status of its checks, the checks, and why it did not run when it
    was `skipped` (a dry run; a tokenizer the launching machine cannot load)."""

    status: str  # STATUSES
    checks: tuple[Check, ...] = ()
    reason: str | None = None

    @classmethod
    def of(cls, checks: list[Check]) -> Report:
        return cls(worst(checks), tuple(checks))

    @classmethod
    def skipped(cls, reason: str) -> Report:
        return cls("skipped", (), reason)

    def first_error(self) -> Check | None:
        return next((c for c in self.checks if c.status == "error"), None)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status, "checks": [asdict(c) for c in self.checks]}
        return {**data, "reason": self.reason} if self.reason is not None else data

    @classmethod
    def from_json(cls, data: Any, where: str) -> Report:
        """A recorded report; one line when it is not one."""
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise ReproError(f"{where}: not a BOS check report (a status of {', '.join(STATUSES)})")
        names = [f.name for f in dataclasses.fields(Check)]
        checks = data.get("checks") or []
        if not isinstance(checks, list) or not all(
            isinstance(c, dict) and set(names) <= c.keys() for c in checks
        ):
            raise ReproError(f"{where}: a BOS check without {', '.join(names)}")
        found = tuple(Check(**{n: c[n] for n in names}) for c in checks)
        return cls(data["status"], found, data.get("reason"))


@dataclass(frozen=True)
class Stages:
    """A result's BOS reports by stage (result.json's `bos_check`, the manifest's
    `tokenizer_checks`): the tokenizer a run trained with, and the one its answers were generated
    with (a checkpoint's `repro eval` has only the latter). Each is checked where it is used: a
    tokenizer saved with the trained model is loaded again for generation, and a re-saved
    tokenizer is where a BOS setting is lost or gained (the post-update Llama 3 tokenizer)."""

    train: Report | None = None
    eval: Report | None = None

    def items(self) -> list[tuple[str, Report]]:
        return [(name, r) for name, r in (("train", self.train), ("eval", self.eval)) if r is not None]

    def to_json(self) -> dict[str, Any]:
        return {name: report.to_json() for name, report in self.items()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Stages:
        """{"train": report, "eval": report}; an older `repro eval` result recorded its one
        report bare (the evaluation's)."""
        if isinstance(data, dict) and "status" in data:
            return cls(eval=Report.from_json(data, where))
        if not isinstance(data, dict) or not set(data) <= {"train", "eval"}:
            raise ReproError(f"{where}: BOS checks are not a mapping of train and eval reports")
        return cls(**{k: Report.from_json(v, f"{where}: {k}") for k, v in data.items() if v is not None})

    @classmethod
    def recorded(cls, data: Any, where: str) -> Stages | None:
        """A record's BOS checks, or None where it recorded none (null)."""
        return None if data is None else cls.from_json(data, where)


def worst(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"
