"""Beam search of width 1, as the vLLM engine that alpaca-eval 0.6.2 drove ran it.

What the published AlpacaEval numbers ran: alpaca-eval 0.6.2 (`decoders/vllm_local.py`)
builds `SamplingParams(temperature=T, top_p, max_tokens, stop_token_ids, ...)` and then sets
`use_beam_search = True` when a config says `do_sample: true`, after the constructor's
checks ran. On the vLLM engines of that time (0.4.x - 0.6.2: the beam search lived in the
engine, `SingleStepOutputProcessor._process_sequence_group_outputs`) this is beam search
with `best_of = n = 1`, i.e. width 1, with these rules, reproduced by `Width1` below:

1. every step proposes the 2 x width = 2 most likely next tokens of the running beam
   (`torch.topk` of the log-probs);
2. a candidate ending in the tokenizer's EOS or in one of `stop_token_ids`, or reaching
   `max_tokens` (or the model length), is *finished*; the best finished sequence is kept.
   The model length: the old engine let a sequence grow to `max_model_len` + 1 tokens; today's
   vLLM takes no prompt of `max_model_len` tokens (prompt + 1 output must fit), so repro ends a
   beam at `max_model_len` tokens, prompt included, on every backend (`generation.decoding.beam1_searches`);
3. the best unfinished candidate becomes the running beam, unless the best finished score
   is already at least the running one (`early_stopping=False`: the running beam's
   *current* score is its highest attainable one); no unfinished candidate also stops;
4. scores are `cumulative log-prob / length`, where the length counts the prompt and the
   completion, minus one when the last token is the EOS (`Sequence.get_beam_search_score`,
   length_penalty 1.0);
5. the log-probs are those of the sampler *after* temperature scaling: the configured
   temperature (0.9 for Llama 3, 0.7 for Mistral-Base, 0.5 for Gemma) never changes which
   two tokens are proposed, but it does change the scores, and so which finished beam wins
   and when the search stops. It is not "ignored";
6. the output is the best finished sequence's completion, without the prompt and without
   the stop token.

Why today's call is this one and not `LLM.beam_search`: since vLLM 0.6.3 beam search is an
offline loop over one-token requests (`LLM.beam_search`, `BeamSearchParams`), and that loop
differs from rules 2, 3 and 5: it knows no `stop_token_ids` (only the EOS), it never stops
early (every prompt runs to `max_tokens`, and any EOS-terminated prefix seen on the way may
win), and its log-probs are raw (it has no temperature). Its `BeamSearchSequence.text`
also decodes the prompt with the completion. So repro runs the search itself, in one of three
ways that take the same decisions from the same log-probs. In the engine (the default on a
vLLM engine whose worker runs in this process, `beam_in_engine`): a logits processor feeds
each step's top 2 to the request's `Width1` and makes the engine take the token it chose, as
the old engine's own beam search did. One pass (`search_in_rounds`, the default elsewhere on
vLLM and on transformers): the engine decodes greedily, many tokens per call, and each step's
top 2 are fed to `Width1` as they come (below). Step-wise (the oracle, and what a server
backend runs): each step
asks the engine for the top-2 log-probs of every running beam at once (vLLM:
`SamplingParams(max_tokens=1, logprobs=2)` with `logprobs_mode="processed_logprobs"`, the
sampler's temperature-scaled log-probs; transformers: `log_softmax(logits / T)`; a server:
the completions endpoint with `logprobs=2`), and `Width1` applies the old engine's rules. Both
backends therefore run the same search and differ only in the engine's floating point; where
it would part from greedy decoding (the EOS was the most likely token, but the beam that
continues past it scores higher), both part from it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from repro.errors import ReproError

TopTwo = list[tuple[int, float]]  # (token id, log-prob), most likely first


@dataclass
class Width1:
    """One prompt's width-1 beam search (rules above); feed it each step's top-2 candidates."""

    prompt_len: int
    max_tokens: int
    stop_ids: frozenset[int]
    eos_id: int | None
    max_model_len: int | None = None
    tokens: list[int] = field(default_factory=list)  # the running beam's completion
    cumulative: float = 0.0
    best: tuple[list[int], float] | None = None  # the best finished (completion, cumulative log-prob)
    done: bool = False

    def score(self, tokens: list[int], cumulative: float) -> float:
        return self._score(len(tokens), tokens[-1] if tokens else None, cumulative)

    def _score(self, length: int, last: int | None, cumulative: float) -> float:
        """`score` of a completion of `length` tokens ending in `last`."""
        length += self.prompt_len
        if last is not None and self.eos_id is not None and last == self.eos_id:
            length -= 1  # vLLM, like transformers, does not count the EOS
        return cumulative / length

    def _finishes(self, length: int, last: int) -> bool:
        return (
            last == self.eos_id
            or last in self.stop_ids
            or length >= self.max_tokens
            or (self.max_model_len is not None and self.prompt_len + length > self.max_model_len)
        )

    def feed(self, candidates: TopTwo) -> int | None:
        """One step: returns the token the running beam takes next, or None when the search ends.

        The engine's order of ties is kept: it sorted the existing best finished sequence before
        the new ones and each list in candidate order, with a stable sort, so a candidate
        replaces an earlier one only with a strictly higher score. Candidates are scored without
        building their sequences: this runs once per generated token (in the engine, for
        `beam_in_engine`)."""
        if self.done:
            return None
        length = len(self.tokens) + 1
        best_score = self._score(len(self.best[0]), self.best[0][-1], self.best[1]) if self.best else None
        running: tuple[int, float, float] | None = None  # (token, cumulative, score)
        for token, logprob in candidates[:2]:
            cumulative = self.cumulative + logprob
            score = self._score(length, token, cumulative)
            if self._finishes(length, token):
                if best_score is None or score > best_score:
                    self.best, best_score = (self.tokens + [token], cumulative), score
            elif running is None or score > running[2]:
                running = (token, cumulative, score)
        if running is None or (best_score is not None and best_score >= running[2]):
            self.done = True
            return None
        self.tokens.append(running[0])
        self.cumulative = running[1]
        return running[0]

    def completion(self) -> list[int]:
        """The best finished completion without its stop token (empty if nothing finished)."""
        tokens = list(self.best[0]) if self.best else list(self.tokens)
        if tokens and (tokens[-1] == self.eos_id or tokens[-1] in self.stop_ids):
            tokens = tokens[:-1]
        return tokens


# --- the search in a few engine rounds ("one-pass") -------------------------------------------
#
# Width 1 makes the running beam a greedy path: each step it takes the most likely candidate
# unless that one finishes (a stop id), then the runner-up. So an engine can generate the path
# greedily, many tokens per call, with the stop ids as stops and the top-2 log-probs of every
# step, while `Width1` is fed those steps one by one as they arrive. A prompt leaves the round
# when its search ends (the engine may drop it) or when the engine's token is not the one the
# search took (a stop id was the most likely token and the search continues from the runner-up,
# or two tokens tie and the engine's argmax broke the tie otherwise): the next round continues
# it from the search's own running beam. Every decision is `Width1.feed` on the same top-2
# log-probs the step-wise search would get, so both take the same path; only the number of
# engine calls differs (one per stop id the path passed, not one per token).

Step = Callable[[int, int, TopTwo], bool]  # (row, token the engine took, top 2) -> keep going?
Resume = Callable[[int], "tuple[list[int], int] | None"]  # row -> (sequence, budget) to continue
Round = Callable[[list[list[int]], list[int], Step, Resume], None]  # sequences, budgets, step, resume


def search_in_rounds(
    prompt_ids: list[list[int]],
    searches: list[Width1],
    run_round: Round,
    done: Callable[[int, list[int]], None],
) -> list[list[int]]:
    """Run every search to its end in greedy engine rounds; `done(i, completion)` as each ends.

    `run_round(sequences, budgets, step, resume)` generates greedily from each sequence (at
    most its budget of tokens) and calls `step(row, token, top2)` for each generated token in
    order, until `step` returns False or the row ends (the engine may stop at a stop id, at its
    budget or at its length limit). An engine that batches continuously may then call
    `resume(row)` and go on at once from the (sequence, budget) it returns (None: that search
    is over); otherwise the next round does. The budgets are what the search can still use
    (max_tokens, and the model length for engines that would not stop there themselves).
    """
    active = [i for i, s in enumerate(searches) if not s.done]
    while active:
        fed = [0] * len(active)  # steps each row got: an engine must give every row one
        step = _stepper(searches, active, fed, done)

        def resume(row: int, active: list[int] = active) -> tuple[list[int], int] | None:
            i = active[row]
            return None if searches[i].done else continuation(prompt_ids[i], searches[i])

        todo = [continuation(prompt_ids[i], searches[i]) for i in active]
        run_round([sequence for sequence, _ in todo], [budget for _, budget in todo], step, resume)
        if not all(fed):
            raise ReproError("beam1: the engine generated no token for a running search")
        active = [i for i in active if not searches[i].done]
    return [s.completion() for s in searches]


def continuation(prompt: list[int], search: Width1) -> tuple[list[int], int]:
    """Where a search goes on: its prompt and running beam, and the tokens it can still use."""
    budget = search.max_tokens - len(search.tokens)
    if search.max_model_len is not None:  # a candidate finishes once prompt + completion > it
        budget = min(budget, search.max_model_len + 1 - search.prompt_len - len(search.tokens))
    return prompt + search.tokens, budget


def _stepper(
    searches: list[Width1], active: list[int], fed: list[int], done: Callable[[int, list[int]], None]
) -> Step:
    """One round's `step`: feed the row's search; keep going while it takes the engine's token."""

    def step(row: int, token: int, top2: TopTwo) -> bool:
        i = active[row]
        search = searches[i]
        if search.done:
            return False
        fed[row] += 1
        taken = search.feed(top2)
        if taken is None:
            done(i, search.completion())
            return False
        return taken == token  # otherwise the next round continues from the search's own beam

    return step
