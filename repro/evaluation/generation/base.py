"""What every generation backend shares: the tokenizer, prompt strings to token ids (`encode`,
so every backend sees the same ids), answers decoded with that same tokenizer (equal ids give
equal text), and the checkpoint's dtype."""

from __future__ import annotations

from collections.abc import Callable

from repro.evaluation.generation.decoding import Decoding

OnAnswer = Callable[[int, str], None]  # (prompt index, answer) as each answer completes


def encode(tokenizer, prompts: list[str], *, add_special_tokens: bool) -> list[list[int]]:
    """Prompt strings to token ids. add_special_tokens=True is what vLLM's `LLM.generate` does
    with a string prompt; False when the template already wrote the BOS."""
    return [list(tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"]) for p in prompts]


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


class Backend:
    """What every backend shares: the tokenizer, prompt encoding and answer decoding."""

    whole_set = False  # True: one call takes every prompt (the engine batches internally)
    name = "backend"
    fingerprint: str | None = None  # the model's identity in answer files (answering.fingerprint)

    def __init__(self, tokenizer, add_special_tokens: bool):
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens

    def generate(
        self, prompts: list[str], decoding: Decoding, on_answer: OnAnswer | None = None
    ) -> list[str]:
        """Answers for prompt strings, tokenized with this backend's add_special_tokens."""
        ids = encode(self.tokenizer, prompts, add_special_tokens=self.add_special_tokens)
        return self.generate_ids(ids, decoding, on_answer)

    def generate_ids(
        self, prompt_ids: list[list[int]], decoding: Decoding, on_answer: OnAnswer | None = None
    ) -> list[str]:
        """Answers for tokenized prompts; `on_answer(i, text)` runs as each one completes."""
        decoding.check()

        def done(i: int, ids: list[int]) -> None:
            if on_answer:
                on_answer(i, decode(self.tokenizer, ids))

        return [decode(self.tokenizer, ids) for ids in self.complete(prompt_ids, decoding, done)]

    def complete(
        self, prompt_ids: list[list[int]], decoding: Decoding, done: Callable[[int, list[int]], None]
    ) -> list[list[int]]:
        """Completion token ids (no prompt, cut before the stop token), in prompt order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine (vLLM: its memory and processes)."""


def model_dtype(model_path: str, dtype: str, device: str) -> str:
    """`auto`: the checkpoint's own dtype (config.json `dtype`/`torch_dtype`), float32 when it
    names none; bfloat16 checkpoints stay bfloat16. On a CPU, half precision becomes float32
    for float16 only (CPU kernels lack it)."""
    if dtype != "auto":
        return dtype
    import json
    from pathlib import Path

    config = Path(model_path) / "config.json"
    found = None
    if config.is_file():
        data = json.loads(config.read_text())
        found = data.get("dtype") or data.get("torch_dtype")
    else:  # a hub id: its config through transformers (offline: the local cache)
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(model_path)
            found = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
            found = str(found).replace("torch.", "") if found is not None else None
        except (OSError, ValueError):
            found = None
    found = found or "float32"
    if device == "cpu" and found == "float16":
        return "float32"
    return found
