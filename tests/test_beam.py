"""The width-1 beam search rules of the vLLM engine alpaca-eval 0.6.2 drove (repro.evaluation.beam).

Oracle: hand-worked steps of vLLM's `SingleStepOutputProcessor._process_sequence_group_outputs`
and `_check_beam_search_early_stopping` (early_stopping=False, length_penalty 1.0) with
`Sequence.get_beam_search_score` (cumulative log-prob / (prompt + completion length), minus
one for a trailing EOS). Each case below lists the scores the engine compares; exact floats.
"""

from __future__ import annotations

from repro.evaluation.beam import Width1

EOS, STOP = 3, 9


def search(max_tokens: int = 8, prompt_len: int = 4) -> Width1:
    return Width1(prompt_len, max_tokens, frozenset({STOP, EOS}), EOS)


def test_a_finished_beam_that_scores_higher_ends_the_search():
    s = search()
    # finished [EOS]: -0.1 / (4 + 1 - 1) = -0.025; running [5]: -2.0 / 5 = -0.4 -> stop
    assert s.feed([(EOS, -0.1), (5, -2.0)]) is None
    assert s.done and s.completion() == []


def test_the_beam_continues_past_an_eos_that_greedy_decoding_would_take():
    s = search()
    # step 1: finished [EOS] -1.0 / 4 = -0.25; running [5] -1.1 / 5 = -0.22 > -0.25 -> continue
    assert s.feed([(EOS, -1.0), (5, -1.1)]) == 5
    # step 2: running [5, 6] -1.11 / 6 = -0.185 > -0.25 -> continue
    assert s.feed([(6, -0.01), (7, -4.0)]) == 6
    # step 3: finished [5, 6, EOS] -1.12 / 6 = -0.1867 beats -0.25; running [5, 6, 8] -6.11 / 7 -> stop
    assert s.feed([(EOS, -0.01), (8, -5.0)]) is None
    assert s.completion() == [5, 6]  # greedy decoding would have answered nothing


def test_a_stop_id_that_is_not_the_eos_counts_in_the_length():
    s = search()
    # finished [STOP] -0.5 / 5 = -0.1 (no EOS adjustment); running [5] -0.6 / 5 = -0.12 -> stop
    assert s.feed([(STOP, -0.5), (5, -0.6)]) is None
    assert s.completion() == []


def test_max_tokens_finishes_every_candidate():
    s = search(max_tokens=2)
    assert s.feed([(5, -0.1), (6, -0.2)]) == 5
    assert s.feed([(7, -0.1), (8, -0.2)]) is None  # both children reach 2 tokens: finished
    assert s.completion() == [5, 7]


def test_two_stop_candidates_leave_nothing_running():
    s = search()
    # [STOP] -0.2 / 5 = -0.04; [EOS] -0.1 / 4 = -0.025: the EOS one wins, nothing is left running
    assert s.feed([(STOP, -0.2), (EOS, -0.1)]) is None
    assert s.best == ([EOS], -0.1) and s.completion() == []


def test_an_earlier_finished_beam_keeps_its_place_on_a_tie():
    s = search()
    assert s.feed([(EOS, -1.0), (5, -1.0)]) == 5  # finished -0.25, running -0.2
    # a new finished [5, EOS] -1.25 / 5 = -0.25 ties the old one: the old one stays (stable sort);
    # running [5, 6] -1.3 / 6 = -0.217 is still better: continue
    assert s.feed([(EOS, -0.25), (6, -0.3)]) == 6
    assert s.best == ([EOS], -1.0)


def test_the_running_beam_takes_the_better_of_two_running_candidates():
    s = search()
    assert s.feed([(5, -0.5), (6, -0.7)]) == 5
    assert s.tokens == [5] and s.cumulative == -0.5 and s.best is None


class LiteralWidth1(Width1):
    """The engine's step as it was written (vLLM 0.4-0.5, and repro's first `Width1.feed`):
    build each child sequence, pool the existing best with the new finished ones, stable-sort
    both lists by score. `Width1.feed` scores candidates without building them (it runs once
    per generated token inside the engine); this is its oracle."""

    def feed(self, candidates):
        if self.done:
            return None
        finished, running = [], []
        for token, logprob in candidates[:2]:
            child = (self.tokens + [token], self.cumulative + logprob)
            n, last = len(child[0]), child[0][-1]
            ends = (
                last == self.eos_id
                or last in self.stop_ids
                or n >= self.max_tokens
                or (self.max_model_len is not None and self.prompt_len + n > self.max_model_len)
            )
            (finished if ends else running).append(child)
        pool = ([self.best] if self.best else []) + finished
        if pool:
            self.best = sorted(pool, key=lambda c: self.score(*c), reverse=True)[0]
        running.sort(key=lambda c: self.score(*c), reverse=True)
        if not running or (self.best and self.score(*self.best) >= self.score(*running[0])):
            self.done = True
            return None
        self.tokens, self.cumulative = running[0]
        return self.tokens[-1]


def test_feed_takes_the_literal_engine_steps_decisions():
    """Random streams over 6 tokens with log-probs on a coarse grid (ties between candidates,
    between finished beams and between a finished and the running beam), the EOS and a second
    stop id among them, short max_tokens and model lengths: the same token (or end) at every
    step and the same completion and best score as the literal step. Tolerance: none."""
    import random

    rng = random.Random(0)
    steps = 0
    for case in range(4000):
        prompt_len = rng.randrange(1, 12)
        stops = frozenset({STOP, EOS}) if case % 2 else frozenset({EOS})
        args = (prompt_len, rng.randrange(1, 14), stops, EOS)
        limit = prompt_len + rng.randrange(1, 14) if case % 3 == 0 else None
        ours, literal = Width1(*args, max_model_len=limit), LiteralWidth1(*args, max_model_len=limit)
        while not literal.done:
            first = rng.choice([EOS, STOP, 4, 5, 6, 7])
            second = rng.choice([t for t in (EOS, STOP, 4, 5, 6, 7) if t != first])
            high = -rng.randrange(0, 12) / 4
            candidates = [(first, high), (second, high - rng.randrange(0, 6) / 4)]
            assert ours.feed(candidates) == literal.feed(candidates), (case, candidates)
            steps += 1
        assert ours.done
        assert ours.completion() == literal.completion()
        assert ours.best == literal.best and ours.tokens == literal.tokens
    assert steps > 10_000  # about 11,300
