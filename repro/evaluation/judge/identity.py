"""Who judged: the judge's identity, checked before any judging is paid for.

`probe()` asks an endpoint judge up front what it is: the model names it serves and each
one's entry (`GET /models`, free), and one answer from every model the benchmarks will ask
for: for AlpacaEval 2 a request shaped exactly as alpaca-eval 0.6.2's weighted annotator
sends it (its real prompt, `max_tokens` 1, `logprobs` with `top_logprobs` 5), for the others
a one-token request. A judge that does not serve the model asked for, answers as another
model, or answers without the log-probs the weighted annotator computes its preference
from, is named in one line (ReproError) before the benchmarks' judge calls.

What the server said of each model (`models`: its `/models` entry without the fields that
change on every call, the name it answered as, and the `system_fingerprint` where the server
gives one) is the judge's identity in the judgment cache (backends.OpenAIEndpoint.identity_for): two servers
that answer to the same model name are one judge only when they say the same of themselves.

`published_note()` says when a score was judged by something other than the judge behind
the published numbers (GPT-4 Turbo for AlpacaEval 2 and Arena-Hard, GPT-4 for MT-Bench),
so `repro compare` never sets a local judge's score beside a GPT-4 number silently.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from repro.errors import ReproError

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind address
WEIGHTED_HINT = (
    "AlpacaEval 2's weighted annotator needs `logprobs` with `top_logprobs` 5 on a one-token answer, "
    "with 'm' or 'M' among them (vLLM: `repro judge serve MODEL`)"
)


def is_local(url: str | None) -> bool:
    """A judge on this machine (a server you run yourself), by its URL's host."""
    return bool(url) and (urlparse(url).hostname or "") in LOOPBACK


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


def _answered_as(answered: str | None, asked: str) -> bool:
    # OpenAI answers an alias with its dated name (gpt-4 -> gpt-4-0613, gpt-4-turbo ->
    # gpt-4-turbo-2024-04-09); gpt-4-1106-preview is not gpt-4
    dated = re.escape(asked) + r"-\d{4}(-\d{2}-\d{2})?"
    return answered is not None and (answered == asked or re.fullmatch(dated, answered) is not None)


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
        raise ReproError(f"judge at {url} ({name}) refused {why}: HTTP {status}: {str(detail)[:160]}")
    answered = data.get("model")
    if not _answered_as(answered, name):
        raise ReproError(
            f"judge at {url} answered as '{answered}', not the '{name}' asked for "
            f"(pass --judge-model {answered} if that is the judge you mean)"
        )
    return data


def probe(url: str, *, asked: dict[str, str], key_env: str, timeout: float = 300.0) -> dict[str, Any]:
    """Check an endpoint judge before any judging; returns what it said about itself. `asked`:
    the model each judged benchmark will ask for (--judge-model, or the benchmark's published judge).

    Raises ReproError (one line) when it does not serve a model asked for, answers as another
    model, or answers the weighted annotator without usable log-probs. A server without
    `GET /models` (some proxies) skips that check; the identity then says so."""
    base = url.rstrip("/")
    identity: dict[str, Any] = {"local": is_local(url), "served_models": None, "answered_as": None}
    entries: dict[str, Any] = {}
    try:
        status, data = _request(f"{base}/models", key_env, None, timeout=min(timeout, 30.0))
    except (urllib.error.URLError, OSError) as exc:
        raise ReproError(f"judge at {url} is not reachable ({type(exc).__name__})") from None
    if status == 200 and isinstance(data, dict) and isinstance(data.get("data"), list):
        served = [m.get("id") for m in data["data"] if isinstance(m, dict)]
        entries = {m.get("id"): served_entry(m) for m in data["data"] if isinstance(m, dict)}
        identity["served_models"] = served
        missing = sorted({name for name in asked.values() if name not in served})
        if missing:
            hint = (
                f"pass --judge-model {served[0]}"
                if len(served) == 1
                else f"it serves {', '.join(served[:5])}"
            )
            raise ReproError(f"judge at {url} does not serve {', '.join(map(repr, missing))} ({hint})")
    models: dict[str, dict[str, Any]] = {}
    weighted = asked.get("alpaca_eval2")
    for name in sorted(set(asked.values()), key=lambda n: n != weighted):  # AlpacaEval's model first
        if name == weighted:
            data = _ask(url, key_env, weighted_request(name), timeout, "AlpacaEval's request")
            _check_logprobs(url, name, data)
            identity["logprobs"] = True
        else:
            data = _ask(url, key_env, short_request(name), timeout, "a one-token request", required=False)
        models[name] = {
            "served": entries.get(name),
            "answered_as": data.get("model"),
            "fingerprint": data.get("system_fingerprint"),
        }
    if models:
        first = weighted if weighted in models else next(iter(models))
        identity["answered_as"] = models[first]["answered_as"]
        identity["models"] = models
    return identity


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


def label(judge: dict[str, Any] | None) -> str:
    """The judge in a few words, for tables and notes."""
    judge = judge or {}
    if judge.get("kind") == "rule":
        return "the rule judge"
    name = judge.get("answered_as") or judge.get("model") or "each benchmark's published judge"
    where = "a local server" if judge.get("local", is_local(judge.get("url"))) else judge.get("url")
    return f"{name} at {where}"


def published_note(judge: dict[str, Any] | None, wanted: str | None) -> str | None:
    """Why a score whose published number was judged by `wanted` (None: no judge behind it) was
    not judged that way, or None when it was (an endpoint that is not on this machine, asking
    for the published judge's model)."""
    if wanted is None or not judge:
        return None
    local = judge.get("local", is_local(judge.get("url")))
    model = judge.get("answered_as") or judge.get("model") or wanted
    if judge.get("kind") == "endpoint" and not local and _answered_as(model, wanted):
        return None
    return f"judged by {label(judge)}, not the published {wanted}"
