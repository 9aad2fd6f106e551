"""The one-pass width-1 beam search equals the step-wise one (repro.evaluation.beam).

Oracle: the step-wise search (`beam1_search="stepwise"`: the engine's top 2 for every running
beam, one round per token; tests/test_beam.py checks its rules by hand). The one-pass search
(`beam.search_in_rounds`, the default) generates greedily in rounds and decides from the same
per-step log-probs. Tolerance: none, identical token ids on every case.

- a scripted language model in pure Python (hash-based log-probs over 8 tokens, with ties and
  stop ids among the likeliest): 2,000 searches through the driver alone, in milliseconds;
- the transformers backend on the tiny model and a Llama-3-vocabulary model
  (tests/beam_cases.py): the grid of temperatures x stop-id sets x max_tokens x prompts,
  720 cases (504 on the tiny model), with the edge cases counted (a stop id top-1, both top-2
  stop ids, ties, max_tokens, the model length); the fast tier runs a sixth of it (168 cases),
  the e2e tier all of it. tests/test_beam_one_pass_vllm.py runs the same grid on vLLM.
"""

from __future__ import annotations

import hashlib

import pytest
from beam_cases import Coverage, compare, llama3_vocab_model, tiny_model

from repro.evaluation import beam, generation
from repro.evaluation.generation.decoding import Decoding, beam1_searches, run_beam1

VOCAB, EOS = 8, 3


def scripted_top2(sequence: list[int]) -> beam.TopTwo:
    """Deterministic log-probs from the sequence; values on a coarse grid, so ties happen."""
    digest = hashlib.sha256(repr(sequence).encode()).digest()
    values = [-(digest[t] % 12) / 4.0 - 0.05 for t in range(VOCAB)]
    ranked = sorted(range(VOCAB), key=lambda t: -values[t])  # stable: ties keep id order
    return [(t, values[t]) for t in ranked[:2]]


def scripted_round(sequences, budgets, step, resume):
    """A greedy engine on the scripted model: argmax by the engine's own tie rule (highest id
    first, unlike `scripted_top2`'s order), stopping at the stop ids like vLLM."""
    for row, (sequence, budget) in enumerate(zip(sequences, budgets, strict=True)):
        sequence = list(sequence)
        for _ in range(budget):
            top2 = scripted_top2(sequence)
            best = max(lp for _, lp in top2)
            token = max(t for t, lp in top2 if lp == best)
            if not step(row, token, top2) or token in STOPS:
                break
            sequence.append(token)


STOPS = {EOS, 5}


def test_the_driver_equals_the_step_wise_search_on_a_scripted_model():
    decoding = Decoding("beam1", 0, stop_token_ids=[5])
    cases = 0
    for seed in range(200):
        prompts = [[seed, k] * (1 + k % 3) for k in range(10)]
        decoding.max_new_tokens = 1 + seed % 17
        limit = None if seed % 4 else 9
        oracle = run_beam1(
            prompts, decoding, EOS, lambda seqs: [scripted_top2(s) for s in seqs], lambda i, c: None, limit
        )
        searches = beam1_searches(prompts, decoding, EOS, limit)
        ours = beam.search_in_rounds(prompts, searches, scripted_round, lambda i, c: None)
        assert ours == oracle, seed
        cases += len(prompts)
    assert cases == 2000


def test_one_pass_equals_step_wise_on_transformers_quick(tmp_path_factory):
    """The fast tier's share of the grid: the tiny model, 2 temperatures, 3 stop-id sets."""
    model = tiny_model(tmp_path_factory.mktemp("beam-models"))
    backend = generation.backend("transformers", str(model.folder), add_special_tokens=False, batch_size=32)
    result = compare(backend, model, quick=True)
    assert not result.mismatches, f"{len(result.mismatches)}/{result.cases} differ:\n" + "\n".join(
        result.mismatches[:10]
    )
    assert result.cases == 6 * len(model.prompt_ids)
    assert result.temperature_decided, "the temperature must decide some of the cases"


@pytest.mark.e2e  # the whole grid: about a minute of CPU
@pytest.mark.parametrize("build", [tiny_model, llama3_vocab_model], ids=["tiny", "llama3-vocab"])
def test_one_pass_equals_step_wise_on_transformers(build, tmp_path_factory, monkeypatch):
    model = build(tmp_path_factory.mktemp("beam-models"))
    backend = generation.backend("transformers", str(model.folder), add_special_tokens=False, batch_size=32)
    coverage = Coverage()
    coverage.install(monkeypatch)
    result = compare(backend, model)
    assert not result.mismatches, f"{len(result.mismatches)}/{result.cases} differ:\n" + "\n".join(
        result.mismatches[:10]
    )
    assert result.cases >= 200
    assert not coverage.missing(model.name), coverage.counts
    if model.name == "tiny":  # its peaked head (beam_cases.SHARPNESS)
        assert result.temperature_decided, "the temperature must decide some of the cases"
