"""Who judged: the judge's identity, checked before any judging is paid for.

`probe()` asks an endpoint judge up front what it is: the model names it serves and each
one's entry (`GET /models`, free), and one answer from every model the benchmarks will ask
for: for AlpacaEval 2 a request shaped exactly as alpaca-eval 0.6.2's weighted annotator
sends it (its real prompt, `max_tokens` 1, `logprobs` with `top_logprobs` 5), for the others
a one-token request. A judge that does not serve the model asked for, answers as another
model, or answers without the log-probs the weighted annotator computes its preference
from, is named in one line (ReproError) before the benchmarks' judge calls.

What the server said of each model (`Said.models`: its `/models` entry without the fields that
change on every call, the name it answered as, and the `system_fingerprint` where the server
gives one) is the judge's identity in the judgment cache (upstream.OpenAIEndpoint.identity_for):
two servers that answer to the same model name are one judge only when they say the same of
themselves. The record of who judged is repro.evaluation.judge.judged_by.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from repro.errors import ReproError
from repro.evaluation.judge.judged_by import Said, ServedModel, answered_as, is_local

WEIGHTED_HINT = (
    "AlpacaEval 2's weighted annotator needs `logprobs` with `top_logprobs` 5 on a one-token answer, "
    "with 'm' or 'M' among them (vLLM: `repro judge serve MODEL`)"
)


def _request(url: str, key_env: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key := os.environ.get(key_env):
        headers["Authorization"] = f"Bearer {key}"  # never logged, never returned
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - the user's judge URL
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def weighted_request(model: str) -> dict[str, Any]:
    """One judge request exactly as alpaca-eval's weighted annotator builds it (its prompt
    template and chat conversion, its decoding), on a made-up instruction."""
    from alpaca_eval.utils import prompt_to_chatml

    from repro.evaluation.scorers.alpaca_eval import weighted_annotator

    config, template = weighted_annotator()
    prompt = template.replace("{instruction}", "What is 2 + 2?")
    prompt = prompt.replace("{output_1}", "4").replace("{output_2}", "2 + 2 is 5.")
    kwargs = config["completions_kwargs"]
    return {
        "model": model,
        "messages": prompt_to_chatml(prompt),
        "max_tokens": kwargs["max_tokens"],
        "temperature": kwargs["temperature"],
        "logprobs": kwargs["logprobs"],
        "top_logprobs": kwargs["top_logprobs"],
    }


# /models fields that change from one call to the next (vLLM stamps `created` with the time of
# the request and gives every permission a random id): not part of what a judge says it is
VOLATILE = ("created", "permission")


def served_entry(entry: Any) -> dict[str, Any] | None:
    """A `/models` entry without its volatile fields."""
    if not isinstance(entry, dict):
        return None
    return {k: v for k, v in sorted(entry.items()) if k not in VOLATILE}


def short_request(model: str) -> dict[str, Any]:
    """The cheapest request that makes a server say which model answered (one token)."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with OK."}],
        "max_tokens": 1,
        "temperature": 0,
    }


def _ask(
    url: str, key_env: str, body: dict[str, Any], timeout: float, why: str, *, required: bool = True
) -> dict[str, Any]:
    """The judge's answer to `body`. Refused: one line, or (not `required`) an empty answer: a
    judge may turn down a request that is not one of its formats and still judge."""
    base = url.rstrip("/")
    name = body["model"]
    try:
        status, data = _request(f"{base}/chat/completions", key_env, body, timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise ReproError(f"judge at {url} did not answer ({type(exc).__name__})") from None
    if status != 200 or not isinstance(data, dict):
        if not required and status < 500:
            return {}
        detail = (data.get("error") or {}).get("message") if isinstance(data, dict) else str(data)
        if status == 200:  # it answered, with a body that is no JSON object
            raise ReproError(
                f"judge at {url} ({name}) answered {why} with no JSON object: {str(detail)[:160]}"
            )
        raise ReproError(f"judge at {url} ({name}) refused {why}: HTTP {status}: {str(detail)[:160]}")
    answered = data.get("model")
    if not answered_as(answered, name):
        raise ReproError(
            f"judge at {url} answered as '{answered}', not the '{name}' asked for "
            f"(pass --judge-model {answered} if that is the judge you mean)"
        )
    return data


def probe(url: str, *, asked: dict[str, str], key_env: str, timeout: float = 300.0) -> Said:
    """Check an endpoint judge before any judging; returns what it said about itself. `asked`:
    the model each judged benchmark will ask for (--judge-model, or the benchmark's published judge).

    Raises ReproError (one line) when it does not serve a model asked for, answers as another
    model, or answers the weighted annotator without usable log-probs. A server without
    `GET /models` (some proxies) skips that check; what it said then has no served models."""
    base = url.rstrip("/")
    served: list[str] | None = None
    entries: dict[str, Any] = {}
    try:
        status, data = _request(f"{base}/models", key_env, None, timeout=min(timeout, 30.0))
    except (urllib.error.URLError, OSError) as exc:
        raise ReproError(f"judge at {url} is not reachable ({type(exc).__name__})") from None
    if status == 200 and isinstance(data, dict) and isinstance(data.get("data"), list):
        served = [m.get("id") for m in data["data"] if isinstance(m, dict)]
        entries = {m.get("id"): served_entry(m) for m in data["data"] if isinstance(m, dict)}
        missing = sorted({name for name in asked.values() if name not in served})
        if missing:
            hint = (
                f"pass --judge-model {served[0]}"
                if len(served) == 1
                else f"it serves {', '.join(served[:5])}"
            )
            raise ReproError(f"judge at {url} does not serve {', '.join(map(repr, missing))} ({hint})")
    models: dict[str, ServedModel] = {}
    logprobs = False
    weighted = asked.get("alpaca_eval2")
    for name in sorted(set(asked.values()), key=lambda n: n != weighted):  # AlpacaEval's model first
        if name == weighted:
            data = _ask(url, key_env, weighted_request(name), timeout, "AlpacaEval's request")
            _check_logprobs(url, name, data)
            logprobs = True
        else:
            data = _ask(url, key_env, short_request(name), timeout, "a one-token request", required=False)
        models[name] = ServedModel(entries.get(name), data.get("model"), data.get("system_fingerprint"))
    first = weighted if weighted in models else next(iter(models), None)
    return Said(
        local=is_local(url),
        served_models=served,
        answered_as=models[first].answered_as if first else None,
        logprobs=logprobs,
        models=models or None,
    )


def _check_logprobs(url: str, name: str, data: dict[str, Any]) -> None:
    try:
        top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        top = None
    if not top:
        raise ReproError(f"judge at {url} ({name}) answered without log-probs: {WEIGHTED_HINT}")
    tokens = {t.get("token") for t in top if isinstance(t, dict)}
    if not tokens & {"m", "M"}:
        raise ReproError(
            f"judge at {url} ({name}) gave neither 'm' nor 'M' among its top log-probs "
            f"({', '.join(map(repr, sorted(tokens, key=str)[:5]))}): {WEIGHTED_HINT}"
        )
