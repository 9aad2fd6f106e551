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
