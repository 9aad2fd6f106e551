"""A model family: how its tokenizer and chat template start, turn and end a sequence.

Each setting names one (`family:` in its recipe; the declarations are recipes/families/*.yaml,
read by repro.config.families). The training tokenization, the BOS guard and generation all
read the same declaration, so a new family is a YAML file, not a code change.

What a family declares, and why each matters:
- `bos`: the token the tokenizer calls BOS, or None when it has none (Qwen2.5). With none,
  nothing is prepended and the guard expects no BOS.
- `tokenizer_adds_bos`: whether `tokenizer(text)` (add_special_tokens=True, as vLLM tokenizes a
  prompt string) puts a BOS in front by itself (Mistral's SentencePiece, Gemma, the post-update
  Llama 3 tokenizer).
- `template_writes_bos`: whether the chat template's text starts with the BOS token (Llama 3,
  Gemma and ChatML templates do; Zephyr and the SimPO Mistral template do not).
- `bos_opens_turns`: ChatML (SmolLM2): the BOS token `<|im_start|>` also opens every turn, so
  only a sequence's leading run counts as BOS; a turn start is never taken for a second BOS.
- `eos`, `stop`: the end-of-sequence token and the tokens generation stops at.
- `chat_template`: "tokenizer" (the checkpoint's own) or a name in repro.data.training_templates.
- `system_turn`: `insert-empty` (alignment-handbook's maybe_insert_system_message, as the SimPO
  repo trained every published setting) or `as-template` (no turn inserted: a template that
  writes its own default system prompt keeps it, as generation will).
- `answer_text`: `alone` (the SimPO repo renders the answer message by itself and strips a
  leading BOS) or `continuation` (the answer is what rendering prompt + answer adds to the
  rendered prompt: a template that opens a conversation with a default system prompt would
  otherwise write that prompt into every answer).
- `eos`-appending, `append_eos`: `if-missing` (the SimPO repo: EOS appended unless the answer's
  last token is EOS; after a template's trailing newline that gives `...</s>\\n</s>`) or
  `as-template` (the answer ends where the template ends it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from repro.errors import ReproError

SYSTEM_TURNS = ("insert-empty", "as-template")
ANSWER_TEXTS = ("alone", "continuation")
APPEND_EOS = ("if-missing", "as-template")


@dataclass(frozen=True)
class Family:
    name: str
    bos: str | None
    tokenizer_adds_bos: bool
    template_writes_bos: bool
    eos: str
    stop: tuple[str, ...]
    chat_template: str = "tokenizer"
    bos_opens_turns: bool = False
    system_turn: str = "insert-empty"
    answer_text: str = "alone"
    append_eos: str = "if-missing"
    title: str = ""
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @property
    def identity(self) -> dict[str, Any]:
        """What changes the token ids a run trains on or generates from (not title or source)."""
        return {k: v for k, v in self.to_json().items() if k not in ("title", "source")}

    @property
    def expected_bos(self) -> int:
        """Leading BOS tokens a training sequence or a chat prompt should start with."""
        return 0 if self.bos is None else 1

    def stop_ids(self, tokenizer) -> list[int]:
        """The stop tokens as ids of `tokenizer` (each must be one token of its vocabulary)."""
        ids = []
        for token in self.stop:
            token_id = token_id_of(tokenizer, token)
            if token_id is None:
                raise ReproError(
                    f"family '{self.name}': stop token {token!r} is not in the tokenizer's vocabulary"
                )
            ids.append(token_id)
        return ids


def token_id_of(tokenizer, token: str) -> int | None:
    """The id of one vocabulary token; None when the tokenizer does not have it (it maps it to unk)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(token_id)


def _adds_bos(tokenizer) -> bool:
    ids = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def _template_starts_with_bos(tokenizer) -> bool:
    if tokenizer.bos_token is None:
        return False
    text = tokenizer.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False)
    return text.startswith(tokenizer.bos_token)


def infer(tokenizer) -> Family:
    """The family a tokenizer (with its chat template installed) shows, for a recipe that declares
    none: its own BOS, EOS and template, with the SimPO repo's choices (what the original code
    would have done with this tokenizer)."""
    bos = tokenizer.bos_token
    turns = False
    if bos is not None and tokenizer.chat_template:
        two = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        turns = tokenizer.apply_chat_template(two, tokenize=False).count(bos) > 1
    eos = tokenizer.eos_token
    return Family(
        name="inferred",
        bos=bos,
        tokenizer_adds_bos=_adds_bos(tokenizer),
        template_writes_bos=bool(tokenizer.chat_template) and _template_starts_with_bos(tokenizer),
        eos=eos,
        stop=(eos,) if eos else (),
        bos_opens_turns=turns,
        title="inferred from the tokenizer",
        source="repro.data.family.infer",
    )


def contradictions(family: Family, tokenizer) -> list[str]:
    """Where the declaration and the tokenizer (with the chat template installed) disagree."""
    found = []
    if family.bos != tokenizer.bos_token:
        found.append(f"bos is {family.bos!r} in the family, {tokenizer.bos_token!r} in the tokenizer")
    if family.eos != tokenizer.eos_token:
        found.append(f"eos is {family.eos!r} in the family, {tokenizer.eos_token!r} in the tokenizer")
    if family.bos is not None:
        adds = _adds_bos(tokenizer)
        if adds != family.tokenizer_adds_bos:
            does = "adds" if adds else "adds no"
            found.append(f"tokenizer_adds_bos is {family.tokenizer_adds_bos} but the tokenizer {does} BOS")
        writes = _template_starts_with_bos(tokenizer)
        if writes != family.template_writes_bos:
            found.append(
                f"template_writes_bos is {family.template_writes_bos} but the chat template "
                f"{'writes' if writes else 'does not write'} {family.bos!r} first"
            )
    for token in family.stop:
        if token_id_of(tokenizer, token) is None:
            found.append(f"stop token {token!r} is not in the vocabulary")
    return found


def check(family: Family, tokenizer, where: str) -> None:
    """One line when the declaration contradicts the tokenizer; before any work."""
    found = contradictions(family, tokenizer)
    if found:
        raise ReproError(f"{where}: family '{family.name}' contradicts its tokenizer: {'; '.join(found)}")
