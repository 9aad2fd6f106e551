"""Preference rows -> exactly the token ids the trainer consumes, faithful to the original.

Input rows follow the UltraFeedback layout: `prompt` (string, informational), `chosen`
and `rejected` (OpenAI message lists ending with the assistant's answer).

Tokenization modes:
- `simpo` (default): the SimPO repo at HEAD (scripts/run_simpo.py apply_chat_template +
  SimPOTrainer.tokenize_row). The prompt is rendered *without* the generation prompt, so
  the assistant header belongs to the response and counts in |y|; BOS is prepended and
  EOS appended only when missing; an empty system turn is inserted when the template text
  mentions "system"; prompt/answer boundary from tokenizing prompt and prompt+answer
  jointly (one token back when they merge); if prompt + longer answer > max_length the
  prompt keeps its last max_prompt_length tokens (keep_end), and if still too long both
  answers are cut to max_length - max_prompt_length tokens.
- `paper-v1`: the paper-time trainer (trl 0.8.6 DPOTrainer.tokenize_row): the same, but
  BOS is always prepended (two BOS under Llama 3 templates) and EOS always appended.
- `trl`: TRL 1.16: prompt rendered with the generation prompt, completion = where the
  tokenized prompt and prompt+completion diverge, no system insertion, sequence cut to
  max_length (keep_start keeps the beginning).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from repro import io
from repro.data import family as families
from repro.data import training_templates
from repro.data.family import Family
from repro.errors import ReproError, unknown

TOKENIZATIONS = ("simpo", "paper-v1", "trl")
ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100


class RowError(ValueError):
    """A preference row that cannot be trained on; the reason is counted and reported."""


@dataclass
class Pair:
    prompt: list[dict[str, str]]  # the conversation before the answers
    chosen: dict[str, str]  # the final assistant message
    rejected: dict[str, str]


@dataclass
class Tokenized:
    prompt_input_ids: list[int]
    chosen_input_ids: list[int]
    chosen_labels: list[int]
    rejected_input_ids: list[int]
    rejected_labels: list[int]

    def as_dict(self) -> dict[str, list[int]]:
        return dict(self.__dict__)


@dataclass
class Stats:
    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    prompt_truncated: int = 0
    responses_truncated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "prompt_truncated": self.prompt_truncated,
            "responses_truncated": self.responses_truncated,
        }


# ---------------------------------------------------------------------------- rows


def _messages(value: Any, name: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowError(f"'{name}' must be a non-empty list of messages")
    out = []
    for message in value:
        if not isinstance(message, dict) or set(message) - {"role", "content"} or "role" not in message:
            raise RowError(f"'{name}' messages must be {{role, content}} objects")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowError(f"'{name}' has a message with role {role!r} (expected system, user or assistant)")
        if not isinstance(content, str):
            raise RowError(f"'{name}' has a message whose content is not a string")
        out.append({"role": role, "content": content})
    return out


def parse_row(row: Any) -> Pair:
    """Validate one row; RowError names what is wrong (a counted skip, never a crash)."""
    if not isinstance(row, dict):
        raise RowError("row is not a JSON object")
    for key in ("chosen", "rejected"):
        if key not in row:
            raise RowError(f"missing '{key}'")
    if "prompt" in row and not isinstance(row["prompt"], str):  # a string, or messages (on-policy data)
        if not isinstance(row["prompt"], list):
            raise RowError("'prompt' is neither a string nor a list of messages")
        _messages(row["prompt"], "prompt")
    chosen, rejected = _messages(row["chosen"], "chosen"), _messages(row["rejected"], "rejected")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise RowError("the last message of 'chosen' and 'rejected' must be the assistant's")
    if len(chosen) < 2 or chosen[-2]["role"] != "user":
        raise RowError("the answer must follow a user message")
    if chosen[:-1] != rejected[:-1]:
        raise RowError("'chosen' and 'rejected' have different prompts")
    if not chosen[-1]["content"].strip() or not rejected[-1]["content"].strip():
        raise RowError("empty answer")
    if chosen[-1]["content"] == rejected[-1]["content"]:
        raise RowError("chosen is identical to rejected")
    return Pair(prompt=chosen[:-1], chosen=chosen[-1], rejected=rejected[-1])


def read_jsonl(path: Path) -> list[Any]:
    """Rows of a JSON-lines file; a line that is not JSON is kept as a BadLine and skipped later."""
    return io.read_jsonl(path, bad="keep")


# ---------------------------------------------------------------------------- formatting


def local_sha256(source: str, splits: tuple[str, ...]) -> str | None:
    """SHA-256 of what `load_rows` reads from a local dataset folder for `splits` (SPLIT.jsonl, or
    the saved split's folder), or None when `source` is no local folder (a hub id, a built
    dataset, a path that is not there)."""
    from repro import hashing

    folder = Path(source)
    if not folder.is_dir():
        return None
    files: list[Path] = []
    for split in splits:
        file, saved = folder / f"{split}.jsonl", folder / split
        files += [file] if file.is_file() else sorted(p for p in saved.rglob("*") if p.is_file())
    return hashing.files_sha256(folder, files)


def load_rows(
    source: str, split: str, data_dir: Path | None = None, *, revision: str | None = None
) -> list[Any]:
    """Rows of one split: DATA_DIR/SPLIT.jsonl (the tiny setting's), a folder of SPLIT.jsonl or
    of saved splits (load_from_disk), or a hub dataset (datasets.load_dataset) at `revision`
    (the commit the run's identity holds; None: the dataset's head)."""
    if data_dir is not None and (data_dir / f"{split}.jsonl").exists():
        return read_jsonl(data_dir / f"{split}.jsonl")
    folder = Path(source)
    if (folder / f"{split}.jsonl").exists():
        return read_jsonl(folder / f"{split}.jsonl")
    # deferred: datasets takes about 1 s to import
    import datasets

    try:
        if folder.is_dir():  # alignment-handbook: load_from_disk(path/split) fallback
            return list(datasets.load_from_disk(str(folder / split)))
        return list(datasets.load_dataset(source, split=split, revision=revision))
    except Exception as exc:  # noqa: BLE001 - any loader failure is the user's data source
        raise ReproError(f"cannot load dataset '{source}' split '{split}': {exc}".splitlines()[0]) from None


def format_texts(pair: Pair, tokenizer, family: Family) -> tuple[str, str, str]:
    """scripts/run_simpo.py apply_chat_template (task "simpo"): prompt, chosen and rejected strings.

    The family says where the original's choices do not carry over: `system_turn` (an empty
    system turn inserted, or the template's own), `answer_text` (the answer rendered alone with
    a leading BOS stripped, or what rendering prompt + answer adds to the rendered prompt)."""
    prompt_messages = [dict(m) for m in pair.prompt]
    if (
        family.system_turn == "insert-empty"
        and prompt_messages[0]["role"] != "system"
        and training_templates.wants_system_message(tokenizer.chat_template)
    ):
        prompt_messages.insert(0, {"role": "system", "content": ""})
    text_prompt = tokenizer.apply_chat_template(prompt_messages, tokenize=False)
    if family.answer_text == "continuation":
        answers = []
        for answer in (pair.chosen, pair.rejected):
            whole = tokenizer.apply_chat_template([*prompt_messages, answer], tokenize=False)
            if not whole.startswith(text_prompt):
                raise RowError("the chat template renders the prompt differently once an answer follows")
            answers.append(whole[len(text_prompt) :])
        return text_prompt, answers[0], answers[1]
    text_chosen = tokenizer.apply_chat_template([pair.chosen], tokenize=False)
    text_rejected = tokenizer.apply_chat_template([pair.rejected], tokenize=False)
    bos = tokenizer.bos_token
    if bos and text_chosen.startswith(bos):
        text_chosen = text_chosen[len(bos) :]
    if bos and text_rejected.startswith(bos):
        text_rejected = text_rejected[len(bos) :]
    return text_prompt, text_chosen, text_rejected


# ---------------------------------------------------------------------------- tokenization


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _split_answer(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """build_tokenized_answer: joint tokenization; the boundary moves back one token on a merge."""
    full = _encode(tokenizer, prompt + answer)
    prompt_ids = _encode(tokenizer, prompt)
    start = len(prompt_ids)
    if prompt_ids != full[:start]:
        start -= 1
    return full[:start], full[start:]


def tokenize_original(
    texts: tuple[str, str, str],
    tokenizer,
    *,
    max_length: int,
    max_prompt_length: int,
    truncation_mode: str = "keep_end",
    paper_v1: bool = False,
    append_eos: str = "if-missing",
    stats: Stats | None = None,
) -> Tokenized:
    """SimPOTrainer.tokenize_row (HEAD), or trl 0.8.6 DPOTrainer.tokenize_row when paper_v1.

    A tokenizer without a BOS token gets none prepended; `append_eos` "as-template" leaves the
    answer as the template ends it (the family's choice; paper_v1 always appends)."""
    prompt, chosen, rejected = texts
    prompt_ids = _encode(tokenizer, prompt)
    chosen_prompt, chosen_answer = _split_answer(tokenizer, prompt, chosen)
    rejected_prompt, rejected_answer = _split_answer(tokenizer, prompt, rejected)
    prompt_ids = prompt_ids[: min(len(chosen_prompt), len(rejected_prompt))]
    differing = sum(a != b for a, b in zip(chosen_prompt, rejected_prompt, strict=False))
    if differing > 1 or abs(len(chosen_prompt) - len(rejected_prompt)) > 1:
        raise RowError("chosen and rejected prompt ids differ beyond the last token")

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    prompts = [prompt_ids, chosen_prompt, rejected_prompt]
    for i, ids in enumerate(prompts):
        if bos is not None and (paper_v1 or not ids or ids[0] != bos):
            prompts[i] = [bos, *ids]
    answers = [chosen_answer, rejected_answer]
    for i, ids in enumerate(answers):
        if paper_v1 or (append_eos == "if-missing" and (not ids or ids[-1] != eos)):
            answers[i] = [*ids, eos]

    longer = max(len(a) for a in answers)
    truncated_prompt = False
    for i, ids in enumerate(prompts):
        if len(ids) + longer > max_length:
            truncated_prompt = True
            if truncation_mode == "keep_start":
                prompts[i] = ids[:max_prompt_length]
            elif truncation_mode == "keep_end":
                prompts[i] = ids[-max_prompt_length:]
            else:
                raise ReproError(f"unknown truncation mode '{truncation_mode}'")
    truncated_answers = False
    for i in range(2):
        if len(prompts[i + 1]) + longer > max_length:
            truncated_answers = True
            answers[i] = answers[i][: max_length - max_prompt_length]
    if stats is not None:
        stats.prompt_truncated += truncated_prompt
        stats.responses_truncated += truncated_answers

    def sequence(prompt_part: list[int], answer: list[int]) -> tuple[list[int], list[int]]:
        return prompt_part + answer, [IGNORE_INDEX] * len(prompt_part) + answer

    chosen_ids, chosen_labels = sequence(prompts[1], answers[0])
    rejected_ids, rejected_labels = sequence(prompts[2], answers[1])
    return Tokenized(prompts[0], chosen_ids, chosen_labels, rejected_ids, rejected_labels)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_trl(
    pair: Pair, tokenizer, *, max_length: int, truncation_mode: str = "keep_start", stats: Stats | None = None
) -> Tokenized:
    """TRL 1.16 DPOTrainer: common-prefix split of prompt vs prompt+completion, cut to max_length."""

    def ids(messages, generation_prompt=False) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        return _encode(tokenizer, text)

    prompt = ids(pair.prompt, True)
    full_chosen, full_rejected = ids([*pair.prompt, pair.chosen]), ids([*pair.prompt, pair.rejected])
    n = min(_common_prefix(prompt, full_chosen), _common_prefix(prompt, full_rejected))

    def cut(sequence: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
        if len(sequence) <= max_length:
            return sequence, labels
        if stats is not None:
            stats.responses_truncated += 1
        if truncation_mode == "keep_start":
            return sequence[:max_length], labels[:max_length]
        return sequence[-max_length:], labels[-max_length:]

    chosen_ids, chosen_labels = cut(full_chosen, [IGNORE_INDEX] * n + full_chosen[n:])
    rejected_ids, rejected_labels = cut(full_rejected, [IGNORE_INDEX] * n + full_rejected[n:])
    return Tokenized(prompt[:n], chosen_ids, chosen_labels, rejected_ids, rejected_labels)


# ---------------------------------------------------------------------------- pipeline


class TrainingFormat(Protocol):
    """How a recipe formats its training data (a RunConfig and a Setting both say it)."""

    chat_template: str
    model_name_or_path: str
    max_length: int
    max_prompt_length: int
    truncation_mode: str
    family: Family | None  # None: inferred from the tokenizer


@dataclass
class Pipeline:
    """One setting's tokenization rules, applied row by row."""

    tokenizer: Any
    max_length: int
    max_prompt_length: int
    tokenization: str = "simpo"
    truncation_mode: str = "keep_end"
    notes: list[str] = field(default_factory=list)
    family: Family | None = None  # set by for_setting (declared, or inferred from the tokenizer)

    @classmethod
    def for_setting(
        cls,
        tokenizer,
        *,
        chat_template: str,
        model_name_or_path: str,
        max_length: int,
        max_prompt_length: int,
        tokenization: str = "simpo",
        truncation_mode: str = "keep_end",
        family: Family | None = None,
    ) -> Pipeline:
        """The pipeline of a training format. The recipe's chat template (when it names one) is
        installed on `tokenizer`, so what renders the training data later, and the BOS guard,
        use the template the recipe trains with. Without a declared `family`, one is inferred
        from the tokenizer (repro.data.family.infer); the BOS guard checks a declared one."""
        if tokenization not in TOKENIZATIONS:
            raise unknown("tokenization", tokenization, TOKENIZATIONS)
        if max_prompt_length >= max_length:
            raise ReproError(
                f"max_prompt_length ({max_prompt_length}) must be below max_length ({max_length})"
            )
        text, notes = training_templates.select(chat_template, model_name_or_path)
        if text is not None:
            tokenizer.chat_template = text
        elif not tokenizer.chat_template:
            raise ReproError(
                f"tokenizer of '{model_name_or_path}' has no chat template; set chat_template in the recipe"
            )
        if tokenizer.eos_token_id is None:
            raise ReproError("the tokenizer needs an EOS token (it ends every trained answer)")
        family = family or families.infer(tokenizer)
        return cls(tokenizer, max_length, max_prompt_length, tokenization, truncation_mode, notes, family)

    @classmethod
    def for_config(
        cls,
        tokenizer,
        config: TrainingFormat,
        tokenization: str = "simpo",
        *,
        max_length: int | None = None,
        max_prompt_length: int | None = None,
    ) -> Pipeline:
        """The pipeline of a recipe's training format (a RunConfig or a Setting); lengths can be
        overridden. Like `for_setting`, it installs the recipe's chat template on `tokenizer`."""
        return cls.for_setting(
            tokenizer,
            chat_template=config.chat_template,
            model_name_or_path=config.model_name_or_path,
            max_length=max_length or config.max_length,
            max_prompt_length=max_prompt_length or config.max_prompt_length,
            tokenization=tokenization,
            truncation_mode=config.truncation_mode,
            family=getattr(config, "family", None),
        )

    def tokenize(self, pair: Pair, stats: Stats | None = None) -> Tokenized:
        if self.tokenization == "trl":
            return tokenize_trl(pair, self.tokenizer, max_length=self.max_length, stats=stats)
        family = self.family or families.infer(self.tokenizer)
        texts = format_texts(pair, self.tokenizer, family)
        return tokenize_original(
            texts,
            self.tokenizer,
            max_length=self.max_length,
            max_prompt_length=self.max_prompt_length,
            truncation_mode=self.truncation_mode,
            paper_v1=self.tokenization == "paper-v1",
            append_eos=family.append_eos,
            stats=stats,
        )

    def run(self, rows: list[Any]) -> tuple[list[Tokenized], Stats]:
        """Tokenize every valid row; invalid rows are skipped and counted by reason."""
        stats = Stats(rows=len(rows))
        out = []
        for row in rows:
            try:
                if isinstance(row, io.BadLine):
                    raise RowError("line is not valid JSON")
                out.append(self.tokenize(parse_row(row), stats))
            except RowError as exc:
                stats.skipped[str(exc)] += 1
        stats.kept = len(out)
        return out, stats
