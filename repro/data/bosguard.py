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
    count = leading(ids, bos)
    first = ids[:4]
    tokens = tokenizer.convert_ids_to_tokens(first)
    if count == expected:
        status, message = "ok", why or f"{count} BOS"
    elif count > expected:
        status, message = "error", f"{count} BOS where {expected} expected: {FIX}"
    else:
        status, message = (
            "warning",
            f"{count} BOS where {expected} expected: the model sees no start-of-text token",
        )
    return Check(what, first, tokens, count, expected, status, message)


def run(tokenizer, pipeline: Pipeline, generation: dict[str, Any] | None) -> list[Check]:
    """Check the training sequences of `pipeline` and the setting's generation prompts."""
    checks = []
    sample = pipeline.tokenize(PROBE)
    expected_train = (
        2
        if pipeline.tokenization == "paper-v1" and sample.chosen_input_ids[:2] == [tokenizer.bos_token_id] * 2
        else 1
    )
    why = "paper-v1 reproduces the paper-time double BOS" if expected_train == 2 else ""
    checks.append(
        _check(f"training ({pipeline.tokenization})", sample.chosen_input_ids, tokenizer, expected_train, why)
    )
    if generation:
        cfg = generation["alpaca_eval"]
        prompt = cfg["prompt_template"].format(instruction=PROBE_INSTRUCTION)
        # vLLM's LLM.generate tokenizes prompts with add_special_tokens=True
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        expected = int(cfg.get("expected_bos", 1))
        note = "two BOS, as the published numbers were scored" if expected == 2 else ""
        checks.append(_check("generation (AlpacaEval prompt template)", ids, tokenizer, expected, note))
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROBE_INSTRUCTION}], tokenize=False, add_generation_prompt=True
    )
    ids = list(tokenizer(chat, add_special_tokens=True)["input_ids"])
    checks.append(_check("generation (chat template, add_special_tokens)", ids, tokenizer, 1))
    return checks


def as_manifest(checks: list[Check]) -> dict[str, Any]:
    return {"status": worst(checks), "checks": [asdict(c) for c in checks]}


def worst(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"
