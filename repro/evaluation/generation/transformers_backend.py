"""Generation with transformers, on token ids, batch by batch (left-padded); width-1 beam
search on a KV cache, in greedy rounds (the default) or step by step (the oracle)."""

from __future__ import annotations

from typing import Any

from repro import pauses
from repro.errors import ReproError
from repro.evaluation import beam
from repro.evaluation.generation.base import Backend, model_dtype
from repro.evaluation.generation.decoding import (
    Decoding,
    beam1_searches,
    beam1_temperature,
    check_beam1_search,
    cut_at_stop,
)


class TransformersBackend(Backend):
    """transformers on token ids, batch by batch (left-padded)."""

    name = "transformers"

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer=None,
        device: str | None = None,
        batch_size: int = 8,
        add_special_tokens: bool = True,
        dtype: str = "auto",
        beam1_search: str = "one-pass",
    ):
        import torch
        from transformers import AutoModelForCausalLM

        from repro.data import tokenizers

        super().__init__(tokenizer or tokenizers.load(model_path), add_special_tokens)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded = model_dtype(model_path, dtype, self.device)
        try:
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=loaded)
        except OSError as exc:  # a folder without weights, a hub id not in the cache
            raise ReproError(f"cannot load model '{model_path}': {str(exc).splitlines()[0]}") from None
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id  # get_tokenizer's rule
        self.beam1_search = check_beam1_search(beam1_search)

    def _batch(self, rows: list[list[int]]):
        """Left-padded ids and their attention mask."""
        import torch

        pad = self.pad_id
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return ids, mask

    def complete(self, prompt_ids, decoding, done):
        import torch

        stops = decoding.stops(self.tokenizer.eos_token_id)
        outputs: list[list[int]] = []
        torch.manual_seed(decoding.seed)
        for start in range(0, len(prompt_ids), self.batch_size):
            rows = prompt_ids[start : start + self.batch_size]
            if decoding.mode == "beam1" and self.beam1_search == "one-pass":
                batch = self._beam1_rounds(rows, decoding)
            elif decoding.mode == "beam1":
                batch = self._beam1(rows, decoding)
            else:
                batch = self._generate(rows, decoding, stops)
            for k, ids in enumerate(batch):
                done(start + k, ids)
            outputs += batch
            pauses.pause("generate.batch")
        return outputs

    def _generate(self, rows, decoding: Decoding, stops: frozenset[int]) -> list[list[int]]:
        import torch

        ids, mask = self._batch(rows)
        kwargs: dict[str, Any] = {
            "max_new_tokens": decoding.max_new_tokens,
            "eos_token_id": sorted(stops),
            "pad_token_id": self.pad_id,
        }
        if decoding.mode == "sample":
            kwargs.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, num_beams=1)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        return [cut_at_stop([int(t) for t in row], stops) for row in out[:, ids.shape[1] :]]

    def _extend(self, out, mask, positions, tokens: list[int]):
        """One cached forward step with one more token per row: (outputs, mask, positions)."""
        import torch  # deferred: torch takes seconds to import

        new = torch.tensor(tokens, device=self.device)[:, None]
        mask = torch.cat([mask, torch.ones_like(new)], dim=1)
        positions = positions[:, -1:] + 1
        out = self.model(
            input_ids=new,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=out.past_key_values,
            use_cache=True,
        )
        return out, mask, positions

    def _beam1(self, rows, decoding: Decoding) -> list[list[int]]:
        """Width-1 beam search with a KV cache, step-wise (the oracle): each row's running beam
        grows by one token a step."""
        import torch

        eos, pad = self.tokenizer.eos_token_id, self.pad_id
        limit = getattr(self.model.config, "max_position_embeddings", None)  # vLLM's max_model_len
        searches = beam1_searches(rows, decoding, eos, limit)
        temperature = beam1_temperature(decoding)
        ids, mask = self._batch(rows)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            while True:
                logprobs = torch.log_softmax(out.logits[:, -1, :].float() / temperature, dim=-1)
                values, tokens = logprobs.topk(2, dim=-1)
                step = []
                for row, search in enumerate(searches):
                    top2 = list(zip(tokens[row].tolist(), values[row].tolist(), strict=True))
                    token = None if search.done else search.feed(top2)
                    step.append(pad if token is None else token)  # finished rows take padding
                if all(s.done for s in searches):
                    break
                out, mask, positions = self._extend(out, mask, positions, step)
        return [s.completion() for s in searches]

    def _beam1_rounds(self, rows, decoding: Decoding) -> list[list[int]]:
        """Width-1 beam search in one pass: greedy decoding steered by the search (`search_in_rounds`)."""
        eos = self.tokenizer.eos_token_id
        limit = getattr(self.model.config, "max_position_embeddings", None)  # vLLM's max_model_len
        searches = beam1_searches(rows, decoding, eos, limit)
        return beam.search_in_rounds(rows, searches, self._greedy_round(decoding), lambda i, c: None)

    def _greedy_round(self, decoding: Decoding) -> beam.Round:
        """Greedy decoding on a KV cache that hands each step's top 2 (log_softmax(logits / T),
        as the step-wise search computes them) to the search as the token is taken. Where the
        search goes on from another token than the argmax (a stop id was the most likely), that
        token is fed instead: the cache holds the same prefix, so the search resumes in place."""
        import torch

        temperature = beam1_temperature(decoding)

        def run(sequences: list[list[int]], budgets: list[int], step: beam.Step, resume: beam.Resume) -> None:
            live, left = [True] * len(sequences), list(budgets)
            held = [list(s) for s in sequences]  # each row's tokens in the cache
            ids, mask = self._batch(sequences)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
                while True:
                    logprobs = torch.log_softmax(out.logits[:, -1, :].float() / temperature, dim=-1)
                    values, tokens = (t.tolist() for t in logprobs.topk(2, dim=-1))
                    following = []
                    for row in range(len(sequences)):
                        token = None
                        if live[row]:
                            left[row] -= 1
                            token = tokens[row][0]  # greedy: the most likely token
                            if not step(row, token, list(zip(tokens[row], values[row], strict=True))):
                                more = resume(row)
                                token = more[0][-1] if more and more[0][:-1] == held[row] else None
                                left[row] = more[1] if token is not None else 0
                            live[row] = token is not None and left[row] > 0
                        if token is not None:
                            held[row].append(token)
                        following.append(self.pad_id if token is None or not live[row] else token)
                    if not any(live):
                        return
                    out, mask, positions = self._extend(out, mask, positions, following)

        return run
