"""How a completion is decoded, whatever the engine: the modes, the stop ids, the seeds, and
the width-1 beam search's drivers that every engine shares.

Modes, named for what they do:
- `greedy`: argmax decoding;
- `beam1`: beam search of width 1, what alpaca-eval 0.6.2 ran for configs with
  `do_sample: true` (`repro.evaluation.beam` says how, and why it is not vLLM's
  `LLM.beam_search`); the same search runs on every backend. vLLM and transformers run it in
  a few greedy rounds (`beam1_search="one-pass"`, the default: `beam.search_in_rounds`);
  `beam1_search="stepwise"` asks the engine for each token's top 2 (one round per token), the
  oracle the one-pass search is tested against (tests/test_beam_one_pass.py);
- `sample`: temperature / top-p sampling with a seed, reproducible run to run on the same
  backend, not across backends (vLLM and servers seed each prompt from the seed and the
  prompt, `prompt_seed`; transformers seeds each batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repro.errors import ReproError
from repro.evaluation import beam

MODES = ("greedy", "beam1", "sample")
BEAM1_SEARCHES = ("one-pass", "stepwise")  # the same search: in greedy rounds, or a round per token


@dataclass
class Decoding:
    mode: str = "greedy"
    max_new_tokens: int = 512
    temperature: float = 0.0  # sample: the sampling temperature; beam1: scales the beam scores
    top_p: float = 1.0
    stop_token_ids: list[int] | None = None
    seed: int = 0

    @classmethod
    def alpaca_eval(cls, config: dict[str, Any], *, max_new_tokens: int | None = None) -> Decoding:
        """The decoding the published numbers used: do_sample true under 0.6.2 meant beam width 1."""
        mode = (
            "beam1" if config.get("do_sample") else ("greedy" if not config.get("temperature") else "sample")
        )
        return cls(
            mode=mode,
            max_new_tokens=max_new_tokens or config["max_new_tokens"],
            temperature=config.get("temperature") or 0.0,
            top_p=config.get("top_p") or 1.0,
            stop_token_ids=config.get("stop_token_ids"),
        )

    def check(self) -> None:
        if self.mode not in MODES:
            raise ReproError(f"unknown decoding mode '{self.mode}' ({', '.join(MODES)})")

    def stops(self, eos_id: int | None) -> frozenset[int]:
        """Token ids that end a completion: the configured stop ids and the tokenizer's EOS."""
        return frozenset([*(self.stop_token_ids or []), *([eos_id] if eos_id is not None else [])])


def cut_at_stop(ids: list[int], stops: frozenset[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    return ids


def prompt_seed(seed: int, prompt_ids: list[int]) -> int:
    """A sampling seed per prompt, from the run's seed and the prompt itself: the same prompt
    samples the same answer whatever else is in the batch (so a resumed run samples what an
    unbroken one would), and two prompts never share their random stream."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(json.dumps(prompt_ids).encode())) % (2**31)


def beam1_searches(
    prompt_ids: list[list[int]], decoding: Decoding, eos_id: int | None, max_model_len: int | None
) -> list[beam.Width1]:
    """One search per prompt. A beam ends at `max_model_len` tokens, prompt included: `Width1`
    finishes candidates longer than its limit, and vLLM takes no longer sequence (beam.py, 2)."""
    stops = decoding.stops(eos_id)
    limit = max_model_len - 1 if max_model_len is not None else None
    return [beam.Width1(len(p), decoding.max_new_tokens, stops, eos_id, limit) for p in prompt_ids]


def check_beam1_search(name: str) -> str:
    if name not in BEAM1_SEARCHES:
        raise ReproError(f"unknown beam1 search '{name}' ({', '.join(BEAM1_SEARCHES)})")
    return name


def beam1_temperature(decoding: Decoding) -> float:
    """The temperature beam1's log-probs are scaled by: none (1.0) when it is 0."""
    return decoding.temperature if decoding.temperature > 1e-5 else 1.0


def run_beam1(
    prompt_ids: list[list[int]],
    decoding: Decoding,
    eos_id: int | None,
    top2: Callable[[list[list[int]]], list[beam.TopTwo]],
    done: Callable[[int, list[int]], None],
    max_model_len: int | None = None,
) -> list[list[int]]:
    """The step-wise width-1 beam search of every prompt at once (the oracle): each step,
    `top2(sequences)` asks the engine for the top 2 next tokens of every running beam."""
    searches = beam1_searches(prompt_ids, decoding, eos_id, max_model_len)
    active = list(range(len(prompt_ids)))
    while active:
        proposals = top2([prompt_ids[i] + searches[i].tokens for i in active])
        still = []
        for i, candidates in zip(active, proposals, strict=True):
            if searches[i].feed(candidates) is None:
                done(i, searches[i].completion())
            else:
                still.append(i)
        active = still
    return [s.completion() for s in searches]
