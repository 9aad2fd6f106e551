"""From prompt text to answers on disk: tokenize, guard the BOS, generate what is missing.

Every benchmark's answers go through `Answerer.answers`: the prompts are tokenized once
(`generation.base.encode`), the BOS guard checks the ids the engine will see, and generation resumes
from the benchmark's answer file (`repro.evaluation.answer_log`), one line per answer as it
completes. The whole set goes to the backend in one call (vLLM and servers batch it).

Prompt BOS, two cases:
- AlpacaEval prompts are strings filled into the setting's template and tokenized with
  `add_special_tokens=True`, as alpaca-eval 0.6.2 handed them to vLLM; the count of leading
  BOS must equal the config's `expected_bos` (1; 2 where the published numbers were scored
  with two). The post-update Llama 3 tokenizer gives two where one is expected: refused.
- Chat prompts (Arena-Hard, MT-Bench) are rendered with the setting's served template; when
  the template writes the BOS itself, the ids go in without special tokens, so exactly one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.data import served_templates
from repro.evaluation.answer_log import AnswerLog, generate_resumable, reuse
from repro.evaluation.generation.base import Backend, encode
from repro.evaluation.generation.bos import check_bos
from repro.evaluation.generation.decoding import Decoding


def fingerprint(model: str) -> str:
    """What identifies a model's answers: its weights' SHA-256 for a local folder, else its name."""
    folder = Path(model)
    if folder.is_dir():
        from repro.errors import ReproError
        from repro.hashing import weights_sha256

        try:
            return weights_sha256(folder)
        except ReproError:
            return str(folder.resolve())
    return model


def chat_prompt(tokenizer, template: str, messages: list[dict[str, str]]) -> tuple[str, bool]:
    """(prompt text, add_special_tokens): no special tokens when the template wrote the BOS."""
    text = served_templates.render(tokenizer, template, messages)
    bos = tokenizer.bos_token
    return text, not (bos and text.startswith(bos))


class Answerer:
    """`earlier`: folders of earlier evaluations; an answer file missing here is started from
    theirs when it was generated the same way (its identity line), instead of generated again."""

    def __init__(self, output: Path, *, allow_double_bos: bool = False, earlier: list[Path] | None = None):
        self.output = Path(output)
        self.allow_double_bos = allow_double_bos
        self.earlier = [Path(p) for p in earlier or []]
        self._fingerprints: dict[int, str] = {}
        self.resumed: dict[str, int] = {}  # answer file -> answers taken from it, not generated

    def identity(self, generator: Backend, decoding: Decoding, what: str) -> dict[str, Any]:
        key = id(generator)
        if key not in self._fingerprints:
            self._fingerprints[key] = getattr(generator, "fingerprint", None) or "unknown"
        return {
            "what": what,
            "model": self._fingerprints[key],
            "backend": generator.name,
            "decoding": dict(decoding.__dict__),
        }

    def answers(
        self,
        file: str,
        generator: Backend,
        prompts: list[str],
        decoding: Decoding,
        *,
        add_special_tokens: bool | list[bool],
        expected_bos: int = 1,
        what: str,
    ) -> list[str]:
        flags = add_special_tokens
        if not isinstance(flags, list):
            flags = [flags] * len(prompts)
        ids = [
            encode(generator.tokenizer, [p], add_special_tokens=f)[0]
            for p, f in zip(prompts, flags, strict=True)
        ]
        if not self.allow_double_bos:
            check_bos(generator.tokenizer, ids, expected_bos, what)
        identity = self.identity(generator, decoding, what)
        if not (self.output / file).exists():
            reuse(self.output / file, [folder / file for folder in self.earlier], identity)
        log = AnswerLog(self.output / file, identity)
        texts = generate_resumable(
            log, ids, lambda pending, on_answer: generator.generate_ids(pending, decoding, on_answer)
        )
        if log.resumed:
            self.resumed[file] = log.resumed
        return texts

    def mt_bench_turns(
        self,
        generator: Backend,
        questions: list[dict[str, Any]],
        chat: Callable[[list[dict[str, str]]], tuple[str, bool]],
        temperatures: dict[str, float],
        max_new_tokens: int,
    ) -> list[list[str]]:
        """Every MT-Bench question's answers, turn by turn: each turn of the whole set at once,
        one call per temperature (FastChat's per-category temperatures, greedy below 1e-4)."""
        turns: list[list[str]] = [[] for _ in questions]
        for t in range(max((len(q["turns"]) for q in questions), default=0)):
            groups: dict[float, list[int]] = {}
            for k, q in enumerate(questions):
                if t < len(q["turns"]):
                    groups.setdefault(temperatures.get(q["category"], 0.7), []).append(k)
            for temperature, members in sorted(groups.items()):
                decoding = Decoding(
                    mode="sample" if temperature >= 1e-4 else "greedy",
                    temperature=temperature,
                    max_new_tokens=max_new_tokens,
                )
                rendered = []
                for k in members:
                    conv: list[dict[str, str]] = []
                    for turn, previous in zip(questions[k]["turns"][:t], turns[k], strict=True):
                        conv.append({"role": "user", "content": turn})
                        conv.append({"role": "assistant", "content": previous})
                    conv.append({"role": "user", "content": questions[k]["turns"][t]})
                    rendered.append(chat(conv))
                texts = self.answers(
                    f"mt_bench/answers-turn{t + 1}-t{temperature:g}.jsonl",
                    generator,
                    [p for p, _ in rendered],
                    decoding,
                    add_special_tokens=[f for _, f in rendered],
                    what="MT-Bench prompts",
                )
                for k, text in zip(members, texts, strict=True):
                    turns[k].append(text)
        return turns
