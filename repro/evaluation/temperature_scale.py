"""A vLLM logits processor that divides a request's logits by its beam1 temperature.

Why: beam1's scores are the sampler's temperature-scaled log-probs (`repro.evaluation.beam`).
vLLM computes those only for requests that sample (temperature > 0, `logprobs_mode=
"processed_logprobs"`), and a sampling request does not follow the most likely token, which
the one-pass search needs. So the one-pass search asks for greedy requests and this processor
divides their logits by the temperature before the sampler: the argmax is unchanged, and the
greedy path's processed log-probs become `log_softmax(logits / T)` in float32, the same
division and the same `log_softmax` the sampler applies to a sampling request at temperature
T (`Sampler.apply_temperature`, then the top-k/top-p sampler's `log_softmax`). Requests
without the key in `SamplingParams.extra_args` are left alone.

It is not argmax-invariant as far as vLLM knows: argmax-invariant processors run only for
sampling requests, and this one must run for greedy ones.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

KEY = "repro_beam1_temperature"  # SamplingParams.extra_args key: the temperature to divide by


class TemperatureScale(LogitsProcessor):
    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        self.device = device
        self.temperatures: dict[int, float] = {}  # batch row -> temperature
        self.rows = torch.empty(0, dtype=torch.long, device=device)
        self.values = torch.empty(0, 1, dtype=torch.float32, device=device)

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        value = (sampling_params.extra_args or {}).get(KEY)
        if value is not None and not (isinstance(value, float | int) and value > 0):
            raise ValueError(f"{KEY} must be a positive number, got {value!r}")

    def is_argmax_invariant(self) -> bool:
        return False  # see the module docstring: it must run for greedy requests

    @staticmethod
    def _temperature(params, _prompt_ids, _output_ids) -> float | None:
        return (params.extra_args or {}).get(KEY)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if process_dict_updates(self.temperatures, batch_update, self._temperature):
            rows = sorted(self.temperatures)
            self.rows = torch.tensor(rows, dtype=torch.long, device=self.device)
            # float32, as the sampler's temperature tensor: the same rounding in the division
            temps = [self.temperatures[r] for r in rows]
            self.values = torch.tensor(temps, dtype=torch.float32, device=self.device).unsqueeze(1)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.temperatures:
            return logits
        logits[self.rows] = logits[self.rows] / self.values
        return logits
