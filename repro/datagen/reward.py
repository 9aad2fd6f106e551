"""Reward-model scoring of (prompt, response) pairs, batched and resumable.

The SimPO repo scored each sample alone (on_policy_data_gen/reward_model_annotate.py):
apply the reward model's chat template to [user, assistant], read `output.score` (ArmoRM)
or the single logit. Here samples go in length-sorted, right-padded batches; the score is
read at each row's last real token, where the one-at-a-time pass reads it (tested equal).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from repro import io
from repro.errors import ReproError
from repro.progress import Progress


def _no_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()


class RewardModel:
    """A sequence-classification reward model; conversations through its own chat template
    (tokenized by the template: no extra BOS)."""

    def __init__(self, path: str, *, trust_remote_code: bool = False, device: str | None = None):
        # deferred: torch takes about 2 s to import
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        # transformers' multi-line load report would precede the one line below (a filter, not a
        # level: a raised level makes transformers check tensor-parallel plans and log those)
        report = logging.getLogger("transformers.modeling_utils")
        report.addFilter(_no_load_report)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.model, loading = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True
            )
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: mismatched head sizes
            raise ReproError(f"cannot load reward model '{path}': {str(exc).splitlines()[0]}") from None
        finally:
            report.removeFilter(_no_load_report)
        if missing := sorted(loading.get("missing_keys") or []):
            # a language model loads as a classifier with a freshly drawn head: its rewards are noise
            raise ReproError(
                f"'{path}' is not a reward model: {', '.join(missing[:2])} not in its weights "
                "(a head transformers would initialize at random)"
            )
        self.model.to(self.device).eval()
        # The model finds each row's last real token from its pad id. Without one, a stand-in
        # (often EOS, which the chat template itself contains) could move that position, so
        # such models score one sample at a time, as the original did.
        self.pad_token_id = self.model.config.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.tokenizer.pad_token_id
            self.model.config.pad_token_id = self.pad_token_id
        self.batched = self.pad_token_id is not None

    def encode(self, prompt: str, response: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return list(ids)

    def score_ids(self, rows: list[list[int]]) -> list[float]:
        # deferred: torch takes about 2 s to import
        import torch

        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_token_id] * (length - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (length - len(r)) for r in rows], device=self.device)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask)
        score = getattr(out, "score", None)  # ArmoRM's output carries .score
        values = score if score is not None else out.logits[:, 0]
        return [float(v) for v in values.float().reshape(len(rows), -1)[:, 0].cpu()]

    def score(self, pairs: list[tuple[str, str]], batch_size: int) -> list[float]:
        """Scores in the given order; batches group similar lengths to pad little."""
        batch_size = batch_size if self.batched else 1
        encoded = [self.encode(p, r) for p, r in pairs]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        scores = [0.0] * len(encoded)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            for i, value in zip(idx, self.score_ids([encoded[i] for i in idx]), strict=True):
                scores[i] = value
        return scores


def score_all(
    rm: RewardModel, rows: list[dict[str, Any]], batch_size: int, path: Path, progress: Progress | None = None
) -> list[list[float]]:
    """Every sample of every row, resumable per block of prompts; returns scores per row."""
    done = io.read_jsonl(path, bad="stop")
    io.rewrite_jsonl(path, done)
    by_row = {d["i"]: d["scores"] for d in done}
    block = max(1, batch_size)
    todo = [i for i in range(len(rows)) if i not in by_row]
    for s in range(0, len(todo), block):
        idx = todo[s : s + block]
        pairs = [(rows[i]["prompt"], r) for i in idx for r in rows[i]["all_generated_responses"]]
        flat = rm.score(pairs, batch_size)
        items, k = [], 0
        for i in idx:
            n = len(rows[i]["all_generated_responses"])
            items.append({"i": i, "scores": flat[k : k + n]})
            by_row[i] = flat[k : k + n]
            k += n
        io.append_jsonl(path, items)
        if progress:
            progress("reward scoring", len(by_row), len(rows))
    return [by_row[i] for i in range(len(rows))]
