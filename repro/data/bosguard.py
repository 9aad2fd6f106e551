"""The BOS guard: how many BOS tokens training sequences and generation prompts start with.

Two BOS silently shift scores (SimPO README; issues #21, #31): the Llama 3 templates write
<|begin_of_text|> themselves, and a post-update tokenizer (or vLLM's add_special_tokens)
adds another. The guard runs before every train and generate stage, and its report goes
into the run manifest. Where the published numbers were themselves scored with two BOS
(Mistral-Base and Gemma AlpacaEval prompts), the generation config says so
(`expected_bos: 2`) and two is what fidelity requires.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from repro.data import family as families
from repro.data.preference import Pair, Pipeline

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


def as_manifest(checks: list[Check]) -> dict[str, Any]:
    return {"status": worst(checks), "checks": [asdict(c) for c in checks]}


def first_error(checks: list[Check]) -> str | None:
    """The message of the first failed check (what a refusal says), if any."""
    return next((f"{c.what}: {c.message}" for c in checks if c.status == "error"), None)


def worst(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"
