"""Generation from an OpenAI-compatible server (`repro eval --server URL`), e.g. `vllm serve`.

The SimPO authors generated Arena-Hard answers from a vLLM server. repro renders the prompt
itself (the same served template, `repro.data.served_templates`) and sends token ids to the
completions endpoint (`/v1/completions` accepts a list of ids as the prompt), so the server
sees exactly the ids the other backends see. Requests use vLLM's extensions where they exist:
`stop_token_ids`, `return_token_ids` (the completion's ids; without it the text is
re-tokenized), and, for `beam1`, `return_tokens_as_token_ids` with `logprobs=2`: each step
of the width-1 beam search (`repro.evaluation.beam`) asks for the top-2 next tokens of every
running beam in one request. Start vLLM with `--logprobs-mode processed_logprobs` so those
log-probs are temperature-scaled as the old engine's were; repro checks this before a beam1
run whose temperature is not 0 or 1, and refuses a server that returns raw log-probs.

The key, if the server wants one, is read from the environment variable named by
`--server-key-env` and is never written anywhere.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from repro.errors import ReproError
from repro.evaluation import beam
from repro.evaluation.generation.base import Backend
from repro.evaluation.generation.decoding import Decoding, cut_at_stop, prompt_seed, run_beam1


class ServerBackend(Backend):
    whole_set = True
    name = "server"

    def __init__(
        self,
        url: str,
        *,
        tokenizer,
        model: str | None = None,
        key_env: str | None = None,
        concurrency: int = 16,
        timeout: float = 600.0,
        add_special_tokens: bool = True,
    ):
        super().__init__(tokenizer, add_special_tokens)
        self.headers = {}
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise ReproError(f"--server-key-env {key_env}: the variable is not set")
            self.headers["Authorization"] = f"Bearer {key}"  # held in memory only
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.concurrency = concurrency
        self.model = model or self._first_model()
        self.fingerprint = f"{self.url} {self.model}"  # whose answers these are (answer files)
        self._checked_temperatures: set[float] = set()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import requests  # deferred: only a served model needs HTTP (0.3 s to import)

        try:
            response = requests.request(
                method, self.url + path, json=body, headers=self.headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise ReproError(f"generation server {self.url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            text = " ".join(response.text.split())[:300]
            raise ReproError(f"generation server {self.url}{path}: HTTP {response.status_code}: {text}")
        return response.json()

    def _first_model(self) -> str:
        models = self._request("GET", "/models").get("data") or []
        if not models:
            raise ReproError(f"generation server {self.url} serves no model (GET /models is empty)")
        return models[0]["id"]

    def _completion_ids(self, choice: dict[str, Any]) -> list[int]:
        if choice.get("token_ids") is not None:
            return [int(t) for t in choice["token_ids"]]
        # a server without vLLM's return_token_ids: the text, tokenized again
        return list(self.tokenizer(choice.get("text") or "", add_special_tokens=False)["input_ids"])

    def complete(self, prompt_ids, decoding: Decoding, done):
        eos = self.tokenizer.eos_token_id
        stops = decoding.stops(eos)
        if decoding.mode == "beam1":
            return run_beam1(prompt_ids, decoding, eos, self._top2(decoding), done)
        sample = decoding.mode == "sample"

        def one(i: int) -> list[int]:
            body = {
                "model": self.model,
                "prompt": prompt_ids[i],
                "max_tokens": decoding.max_new_tokens,
                "temperature": decoding.temperature if sample else 0.0,
                "top_p": decoding.top_p if sample else 1.0,
                "seed": prompt_seed(decoding.seed, prompt_ids[i]),
                "stop_token_ids": sorted(stops),
                "return_token_ids": True,
                "skip_special_tokens": False,
            }
            choice = self._request("POST", "/completions", body)["choices"][0]
            return cut_at_stop(self._completion_ids(choice), stops)

        results: list[list[int] | None] = [None] * len(prompt_ids)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(one, i): i for i in range(len(prompt_ids))}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                done(i, results[i])
        return [r or [] for r in results]

    def _top2_request(self, sequences: list[list[int]], temperature: float, seed: int) -> list[beam.TopTwo]:
        body = {
            "model": self.model,
            "prompt": sequences,
            "max_tokens": 1,
            "logprobs": 2,
            "temperature": temperature,
            "seed": seed,
            "return_tokens_as_token_ids": True,
        }
        choices = sorted(self._request("POST", "/completions", body)["choices"], key=lambda c: c["index"])
        result = []
        for choice in choices:
            top = (choice.get("logprobs") or {}).get("top_logprobs") or [None]
            if not top[0]:
                raise ReproError(f"generation server {self.url} returned no top log-probs (logprobs=2)")
            ranked = sorted(top[0].items(), key=lambda kv: -kv[1])[:2]
            result.append([(int(token.split(":", 1)[1]), float(lp)) for token, lp in ranked])
        return result

    def _top2(self, decoding: Decoding):
        temperature = decoding.temperature if decoding.temperature > 1e-5 else 0.0
        if temperature and abs(temperature - 1.0) > 1e-6 and temperature not in self._checked_temperatures:
            self._check_processed_logprobs(temperature)
            self._checked_temperatures.add(temperature)

        def top2(sequences: list[list[int]]) -> list[beam.TopTwo]:
            return self._top2_request(sequences, temperature, decoding.seed)

        return top2

    def _check_processed_logprobs(self, temperature: float) -> None:
        """Raw log-probs do not change with the temperature; the sampler's processed ones do."""
        probe = [self.tokenizer.bos_token_id or 0]
        raw = self._top2_request([probe], 0.0, 0)[0][0][1]
        scaled = self._top2_request([probe], temperature, 0)[0][0][1]
        if abs(raw - scaled) < 1e-6:
            raise ReproError(
                f"generation server {self.url} returns raw log-probs: beam1 scores need temperature-"
                "scaled ones; start vLLM with --logprobs-mode processed_logprobs"
            )
