"""What answers behind the judge gateway: a real endpoint, a replay of recorded judgments, a rule judge."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from typing import Any

from repro.evaluation.judge.gateway import JudgeError, chat_response
from repro.evaluation.judge.judged_by import Said

# ---------------------------------------------------------------------------- endpoint


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a judge's base URL (http(s), a host, a port that parses), or None."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return f"--judge-url {url!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--judge-url {url!r} is not an http(s) URL with a host (e.g. https://api.openai.com/v1)"
    return None


class OpenAIEndpoint:
    """Forwards to any OpenAI-compatible endpoint: bounded concurrency, retries with capped
    exponential backoff (honouring Retry-After), timeouts. The key is read from the
    environment at call time and only ever placed in the Authorization header."""

    RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}
    # Requests in a row that exhausted their retries without reaching the server: after these,
    # the judge is taken as gone and every further request fails at once (counted, not retried).
    GIVE_UP_AFTER = 3

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_concurrency: int = 8,
        require_key: bool = True,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.require_key = require_key
        self._unreachable = 0
        # an endpoint is known by the model it is asked for (in each request, or this override)
        # and by what the server says of that model (`learn`), not by its URL: the same judge
        # behind a proxy or on another port answers the same
        self.identity = {"kind": "endpoint", "model": model}
        self.said: Said | None = None
        if require_key and not os.environ.get(api_key_env):
            from repro.errors import ReproError

            raise ReproError(f"judge API key missing: set the environment variable {api_key_env}")

    def learn(self, said: Said) -> None:
        """What the server said of itself at the identity check (repro.evaluation.judge.identity.probe)."""
        self.said = said

    def identity_for(self, request: dict[str, Any]) -> dict[str, Any]:
        """Who answers `request`: the model it goes to, and what the server said of that model
        (its /models entry, the name it answered as, its fingerprint). Two servers under one
        model name that describe themselves differently never answer for each other."""
        model = self.model or request.get("model")
        said = self.said.of_model(model) if self.said and model else None
        return {**self.identity, "server": said}

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return min(self.backoff * 2**attempt, self.max_backoff)

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        """(status, text, headers); raises TimeoutError or OSError for transport failures."""
        import urllib.error
        import urllib.request

        try:
            req = urllib.request.Request(
                f"{self.base_url}/chat/completions",
                data=json.dumps(body).encode(),
                headers=headers,
                method="POST",
            )
        except ValueError as exc:  # not a URL: no retry will fix it
            raise JudgeError(f"bad judge URL {self.base_url!r}: {exc}", status=400) from None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310 - user's judge URL
                return response.status, response.read().decode("utf-8", "replace"), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace"), dict(exc.headers or {})

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        import urllib.error

        body = dict(request)
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        reason, retry_after = "no attempt", None
        if self._unreachable >= self.GIVE_UP_AFTER:
            raise JudgeError(f"judge unreachable: {self._unreachable} requests in a row got no answer")
        with self._slots:
            for attempt in range(self.max_retries + 1):
                if attempt:
                    time.sleep(self._delay(attempt - 1, retry_after))
                retry_after = None
                try:
                    status, text, response_headers = self._post(body, headers)
                except TimeoutError:
                    reason = "timeout"
                    continue
                except (urllib.error.URLError, ConnectionError, OSError) as exc:
                    reason = f"connection error ({type(exc).__name__})"
                    continue
                if status in self.RETRYABLE:
                    reason = f"HTTP {status}"
                    retry_after = response_headers.get("Retry-After")
                    continue
                if status >= 400:
                    raise JudgeError(f"HTTP {status}: {text[:200]}", status=502)
                try:
                    data = json.loads(text)
                except json.JSONDecodeError:
                    reason = "malformed JSON"
                    continue
                problem = validate(data, request)
                if problem:
                    reason = problem
                    continue
                self._unreachable = 0
                return data
        if reason.startswith(("connection error", "timeout")):
            self._unreachable += 1  # a server that is gone: the remaining requests fail at once
        raise JudgeError(f"{reason}: gave up after {self.max_retries + 1} attempts")


def validate(data: Any, request: dict[str, Any]) -> str | None:
    """Why a 200 response is unusable (it is then retried, never cached), or None."""
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return "malformed response (no choices[0].message.content)"
    if not isinstance(content, str):
        return "malformed response (content is not a string)"
    logprobs = (choice.get("logprobs") or {}).get("content")
    if request.get("logprobs") and not logprobs:
        return "missing log-probs"
    if request.get("logprobs") and request.get("max_tokens") == 1 and _is_alpaca_eval(request):
        top = {t.get("token") for t in (logprobs[0].get("top_logprobs") or [])}
        if not top & {"m", "M"}:  # alpaca-eval would turn this into a silent NaN preference
            return "unexpected tokens (neither 'm' nor 'M' among the top log-probs)"
    return None


def _is_alpaca_eval(request: dict[str, Any]) -> bool:
    return "## Best Model Identifier" in _user_text(request)


# ---------------------------------------------------------------------------- prompts

_AE_INSTRUCTION = re.compile(r'"instruction": """(.*?)""",\n}\n\n## Model Outputs', re.S)
_AE_OUTPUTS = re.compile(r'"model_identifier": "(m|M)",\n {8}"output": """(.*?)"""\n {4}}', re.S)
_AH = re.compile(
    r"<\|User Prompt\|>\n(.*?)\n\n<\|The Start of Assistant A's Answer\|>\n(.*?)\n"
    r"<\|The End of Assistant A's Answer\|>\n\n<\|The Start of Assistant B's Answer\|>\n(.*?)\n"
    r"<\|The End of Assistant B's Answer\|>",
    re.S,
)
_MT_QUESTION = re.compile(r"\[Question\]\n+(.*?)\n\n\[The Start of", re.S)
_MT_ANSWER = re.compile(
    r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S
)


def _user_text(request: dict[str, Any]) -> str:
    return "\n".join(m.get("content", "") for m in request.get("messages", []) if m.get("role") == "user")


def alpaca_eval_parts(prompt: str) -> tuple[str, dict[str, str]] | None:
    """(instruction, {"m": output_1, "M": output_2}) from alpaca-eval's judge prompt."""
    instruction = _AE_INSTRUCTION.search(prompt)
    outputs = dict(_AE_OUTPUTS.findall(prompt))
    if not instruction or set(outputs) != {"m", "M"}:
        return None
    return instruction.group(1), outputs


# ---------------------------------------------------------------------------- replay


class Replay:
    """Answers alpaca-eval judge prompts with the raw completions recorded in an annotations file."""

    def __init__(self, annotations: list[dict[str, Any]]):
        self.by_instruction: dict[str, dict[str, Any]] = {}
        for row in annotations:
            raw = row.get("raw_completion")
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError:
                    raw = None
            if isinstance(raw, dict):
                self.by_instruction[row["instruction"]] = raw
        recorded = json.dumps(self.by_instruction, sort_keys=True, ensure_ascii=False).encode()
        # another annotations file is another judge
        self.identity = {"kind": "replay", "recorded_sha256": hashlib.sha256(recorded).hexdigest()}

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        parts = alpaca_eval_parts(_user_text(request))
        if parts is None:
            raise JudgeError("replay: not an alpaca-eval judge prompt", status=400)
        raw = self.by_instruction.get(parts[0])
        if raw is None:
            raise JudgeError("replay: no recorded judgment for this instruction", status=404)
        logprobs = (raw.get("logprobs") or {}).get("content")
        content = (raw.get("message") or {}).get("content", raw.get("text", ""))
        return chat_response(request.get("model", "replay"), content, logprobs=logprobs)


# ---------------------------------------------------------------------------- rule judge


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _rule_code() -> str:
    """SHA-256 of the code the rule judge answers with: repro.tiny (its rule) and this module
    (how it reads each benchmark's prompt and writes its verdict). Verdicts cached from another
    version of either are another judge's (the cache is shared by every run on the machine)."""
    from pathlib import Path

    from repro import hashing

    here = Path(__file__).resolve()
    files = (here.parents[2] / "tiny.py", here)
    return hashlib.sha256("".join(hashing.file_sha256(f) for f in files).encode()).hexdigest()


class RuleJudge:
    """A deterministic judge for the tiny setting: repro.tiny.judge_score decides, in each
    benchmark's own answer format (alpaca-eval m/M log-probs, Arena-Hard [[A>B]] verdicts,
    MT-Bench [[rating]]). Any other prompt goes to the `rules` of the judged plugins being
    evaluated (Benchmark.rule: {name: (rule, the plugin's identity)}); a prompt none of them
    answers is refused (HTTP 400), as a real judge cannot follow a format it was never given."""

    identity = {"kind": "rule", "judge": "repro.tiny.judge_score", "code": _rule_code()}

    def __init__(self, rules: dict[str, tuple[Any, str | None]] | None = None):
        self.rules = dict(rules or {})

    def identity_for(self, request: dict[str, Any]) -> dict[str, Any]:
        """A plugin's prompt is answered by the plugin's rule: its code is part of who answers."""
        if self._built_in(request) or not self.rules:
            return self.identity
        return {**self.identity, "rules": {name: source for name, (_, source) in sorted(self.rules.items())}}

    @staticmethod
    def _built_in(request: dict[str, Any]) -> bool:
        text = _user_text(request)
        return bool(alpaca_eval_parts(text) or _AH.search(text) or _MT_ANSWER.search(text))

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        from repro.tiny import judge_score

        model = request.get("model", "rule")
        text = _user_text(request)
        if not self._built_in(request):
            for name, (rule, _) in sorted(self.rules.items()):
                try:
                    answer = rule(request.get("messages", []))
                except Exception as exc:  # a plugin's bug: a counted failure naming it
                    raise JudgeError(
                        f"rule judge: {name}'s rule failed: {type(exc).__name__}: {exc}"
                    ) from None
                if answer is not None:
                    return chat_response(model, str(answer))
        if parts := alpaca_eval_parts(text):
            instruction, outputs = parts
            diff = judge_score(instruction, outputs["M"]) - judge_score(instruction, outputs["m"])
            p_big = 1 / (1 + math.exp(-diff))  # P(M better)
            lp_big, lp_small = math.log(max(p_big, 1e-12)), math.log(max(1 - p_big, 1e-12))
            best = "M" if lp_big >= lp_small else "m"
            top = sorted([_token("M", lp_big), _token("m", lp_small)], key=lambda t: -t["logprob"])
            return chat_response(
                model, best, logprobs=[{**_token(best, max(lp_big, lp_small)), "top_logprobs": top}]
            )
        if match := _AH.search(text):
            question, answer_a, answer_b = match.groups()
            diff = judge_score(question, answer_a) - judge_score(question, answer_b)
            label = (
                "A>>B"
                if diff >= 3
                else "A>B"
                if diff > 0
                else "A=B"
                if diff == 0
                else "B>A"
                if diff > -3
                else "B>>A"
            )
            return chat_response(
                model, f"Comparing both answers to the prompt.\n\nMy final verdict is: [[{label}]]"
            )
        system = " ".join(
            m.get("content", "") for m in request.get("messages", []) if m.get("role") == "system"
        )
        answers = _MT_ANSWER.findall(text)
        if answers and ("rate the response" in (system + text).lower()):
            questions = _MT_QUESTION.findall(text) or [""]
            score = judge_score(questions[-1], answers[-1])
            rating = max(1, min(10, 5 + score))
            return chat_response(model, f"The answer is judged by the rule.\n\nRating: [[{rating}]]")
        raise JudgeError(
            "rule judge: unrecognized judge prompt (it answers AlpacaEval, Arena-Hard and MT-Bench "
            "prompts, and a plugin's through the plugin's `rule`)",
            status=400,
        )
