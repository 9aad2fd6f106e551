"""The width-1 beam search inside the vLLM engine, as the old engine ran it: a logits processor.

Why: the one-pass search streamed with `logprobs=2`
(`generation.vllm_backend.VLLMBackend._streamed_round`) makes greedy's number of engine steps,
but every step still pays vLLM's log-prob machinery (a top-k gather in the sampler, a
`Logprob` object per token in the output processor, a streamed output per request), about
0.7x of plain greedy on a small model. Here the engine decodes
greedily without log-probs, and this processor, which sees every step's logits before the
sampler, runs each request's `beam.Width1` itself:

1. it scales the row's logits by the beam1 temperature and takes `log_softmax` in float32, the
   same division and the same `log_softmax` the sampler applies to a sampling request at that
   temperature with `logprobs_mode="processed_logprobs"` (what the step-wise oracle reads), and
   their top 2 (`torch.topk`, the sampler's `gather_logprobs` order);
2. it feeds them to the request's `Width1`, which decides the token the running beam takes;
3. it masks the row so that greedy sampling takes exactly that token: the runner-up where the
   most likely token is a stop id, or a stop id once the search has ended (the request then
   stops there, as a stop-token request does).

The search state lives in this process (`JOBS`), so this works only when the engine's worker
runs here: vLLM's in-process engine core with one worker (`VLLM_ENABLE_V1_MULTIPROCESSING=0`,
what repro uses on a CPU). `created_since` tells the backend whether the engine it just built
made a processor here; where not (a multiprocess engine on a GPU), the backend streams the
top-2 log-probs instead. The backend checks afterwards that each request's tokens are the ones
this processor forced, so a processor that did not run cannot pass unnoticed.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from repro.evaluation.beam import Width1

KEY = "repro_beam1_job"  # SamplingParams.extra_args key: the request's job name in JOBS


@dataclass
class Job:
    """One request's share of a search: the search, its scale and the stop id that ends it."""

    search: Width1
    temperature: float  # 1.0: unscaled (a division by 1.0 is exact)
    stop: int  # an engine stop id: forced once the search has ended, so the request stops
    forced: list[int] = field(default_factory=list)  # the tokens this processor made the engine take

    def step(self, top2: list[tuple[int, float]]) -> int:
        taken = self.search.feed(top2)
        token = self.stop if taken is None else taken
        self.forced.append(token)
        return token


JOBS: dict[str, Job] = {}  # job name -> job; the backend adds them before submitting
_CREATED: list[weakref.ref] = []  # every processor built in this process, oldest first


def created() -> int:
    """How many processors this process has built so far (a mark for `created_since`)."""
    return len(_CREATED)


def created_since(mark: int) -> bool:
    """Whether an engine built after `mark` made its processor in this process."""
    return any(ref() is not None for ref in _CREATED[mark:])


class Width1InEngine(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        self.rows: dict[int, Job] = {}  # batch row -> its job
        self.jobs: list[Job] = []  # in row order, with `index` and `scales`
        self.index = torch.empty(0, dtype=torch.long, device=device)
        self.scales = torch.empty(0, 1, dtype=torch.float32, device=device)
        _CREATED.append(weakref.ref(self))

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        name = (sampling_params.extra_args or {}).get(KEY)
        if name is not None and name not in JOBS:
            raise ValueError(f"{KEY}: no beam1 job named {name!r} in this process")

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the greedy token

    @staticmethod
    def _job(params, _prompt_ids, _output_ids) -> Job | None:
        name = (params.extra_args or {}).get(KEY)
        return None if name is None else JOBS[name]

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if process_dict_updates(self.rows, batch_update, self._job):
            rows = sorted(self.rows)
            self.jobs = [self.rows[r] for r in rows]
            self.index = torch.tensor(rows, dtype=torch.long, device=self.device)
            # float32, as the sampler's temperature tensor: the same rounding in the division
            scales = [job.temperature for job in self.jobs]
            self.scales = torch.tensor(scales, dtype=torch.float32, device=self.device).unsqueeze(1)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.jobs:
            return logits
        # the sampler divides in place, so its result has the logits' dtype: round the same way
        scaled = (logits[self.index] / self.scales).to(logits.dtype)
        values, tokens = scaled.log_softmax(dim=-1, dtype=torch.float32).topk(2, dim=-1)
        forced = [
            job.step(list(zip(top, lps, strict=True)))
            for job, top, lps in zip(self.jobs, tokens.tolist(), values.tolist(), strict=True)
        ]
        logits[self.index] = float("-inf")
        logits[self.index, torch.tensor(forced, dtype=torch.long, device=self.device)] = 0.0
        return logits
