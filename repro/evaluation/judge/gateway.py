"""The judge gateway: an OpenAI-compatible HTTP server on 127.0.0.1 in front of a judge backend.

POST /v1/chat/completions: cache hit -> the cached response; otherwise the backend is
asked and only a successful answer is stored. Backend failures reach the client as HTTP
errors with a one-line reason, and are counted. The gateway never sees or logs the
upstream API key: backends read it from the environment.

A caller that parses the answer names what it must hold (`EXPECT_HEADER`: a regular
expression, e.g. Arena-Hard's `[[A>B]]` verdict): an answer without it reaches the caller
(which counts it) but is never stored, and a stored one without it is not served but asked
again, so an answer that failed to parse is never final. `refresh` (--refresh-judgments)
asks the judge again for every request whose stored answer is older than the gateway.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from repro.evaluation.judge.cache import JudgmentCache, request_key


class JudgeError(Exception):
    """A judge call that failed for good (after the backend's own retries)."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


Backend = Callable[[dict[str, Any]], dict[str, Any]]
# the header in which a caller names the pattern an answer must hold to be stored (and reused)
EXPECT_HEADER = "X-Repro-Expect"


def chat_response(
    model: str, content: str, *, logprobs: list[dict] | None = None, prompt_tokens: int = 0
) -> dict[str, Any]:
    """A chat.completion object as OpenAI returns it."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
        "logprobs": {"content": logprobs} if logprobs is not None else None,
    }
    completion_tokens = max(1, len(content.split()))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class Stats:
    requests: int = 0
    cache_hits: int = 0
    backend_calls: int = 0
    unparsed: int = 0  # answers without the pattern the caller expects: returned, never stored
    failures: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "backend_calls": self.backend_calls,
            "unparsed": self.unparsed,
            "failures": dict(self.failures),
        }


def identity(backend: Backend) -> dict[str, Any]:
    """Who answers: the backend's own `identity` (kind, endpoint, model), or its class for others."""
    declared = getattr(backend, "identity", None)
    if isinstance(declared, dict):
        return declared
    kind = getattr(backend, "__qualname__", None) or type(backend).__qualname__
    return {"kind": f"{getattr(backend, '__module__', '')}.{kind}"}


def content(response: dict[str, Any]) -> str | None:
    try:
        text = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def holds(response: dict[str, Any], expect: re.Pattern | None) -> bool:
    """Whether an answer holds what its caller parses out of it (always, without a pattern)."""
    if expect is None:
        return True
    text = content(response)
    return text is not None and expect.search(text) is not None


class Gateway:
    def __init__(self, backend: Backend, cache: JudgmentCache | None = None, *, refresh: bool = False):
        self.backend = backend
        self.cache = cache
        self.identity = identity(backend)  # part of every cache key: one judge never answers for another
        self.models: tuple[str, ...] = ("repro-judge",)
        self.stats = Stats()
        # --refresh-judgments: stored answers older than this gateway are asked again
        self.fresh_after = time.time() if refresh else None

    def identity_for(self, request: dict[str, Any]) -> dict[str, Any]:
        """The judge of one request: an endpoint adds what its server said of the model asked for."""
        per_request = getattr(self.backend, "identity_for", None)
        return per_request(request) if callable(per_request) else self.identity

    def _stored(self, key: str, expect: re.Pattern | None) -> dict[str, Any] | None:
        """A stored answer that may be served: recent enough and holding the expected pattern."""
        hit = self.cache.get(key, newer_than=self.fresh_after) if self.cache is not None else None
        return hit if hit is not None and holds(hit, expect) else None

    def handle(self, request: dict[str, Any], expect: re.Pattern | None = None) -> dict[str, Any]:
        with self.stats.lock:
            self.stats.requests += 1
        judge = self.identity_for(request)
        key = request_key(request, judge)
        token = None
        while self.cache is not None:
            # a judgment is paid once: the caller that claims the key asks, the others wait for it
            hit = self._stored(key, expect)
            if hit is not None:
                with self.stats.lock:
                    self.stats.cache_hits += 1
                return hit
            token = self.cache.claim(key, replace_before=self._replace_before(key, expect))
            if token is not None:
                break
            self.cache.wait(key)  # another caller is asking: take its answer, or claim after it
        with self.stats.lock:
            self.stats.backend_calls += 1
        try:
            response = self.backend(request)
        except BaseException as exc:
            if self.cache is not None and token is not None:
                self.cache.release(key, token)  # the next caller asks again
            if isinstance(exc, JudgeError):
                with self.stats.lock:
                    self.stats.failures[str(exc).split(":")[0]] += 1
                raise
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit
            # a backend bug is a counted failure, not a traceback from the server's thread
            with self.stats.lock:
                self.stats.failures[type(exc).__name__] += 1
            raise JudgeError(f"{type(exc).__name__}: {exc}") from None
        if not holds(response, expect):
            # the caller counts it as unparsed; stored, it would be served as final next time
            with self.stats.lock:
                self.stats.unparsed += 1
            if self.cache is not None and token is not None:
                self.cache.release(key, token)
            return response
        if self.cache is not None:
            self.cache.put(key, request, response, token=token, judge=judge)
        return response

    def _replace_before(self, key: str, expect: re.Pattern | None) -> float | None:
        """Stored answers of `key` made before this time may be asked again and replaced: all of
        them when the stored one lacks the expected pattern, those older than a refresh, else none."""
        stored = self.cache.get(key) if self.cache is not None else None
        if stored is not None and not holds(stored, expect):
            return float("inf")
        return self.fresh_after


def _handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # no request logging (and no headers in logs)
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/models"):
                listed = [{"id": name, "object": "model"} for name in gateway.models]
                self._send(200, {"object": "list", "data": listed})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"unsupported path {self.path}"}})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
            except (ValueError, json.JSONDecodeError):
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            pattern = self.headers.get(EXPECT_HEADER)
            try:
                expect = re.compile(pattern) if pattern else None
            except re.error as exc:
                self._send(400, {"error": {"message": f"{EXPECT_HEADER} is not a pattern: {exc}"}})
                return
            try:
                self._send(200, gateway.handle(request, expect))
            except JudgeError as exc:
                self._send(exc.status, {"error": {"message": str(exc), "type": "judge_error"}})

    return Handler


@contextmanager
def serve(
    backend: Backend,
    cache: JudgmentCache | None = None,
    *,
    models: tuple[str, ...] = ("repro-judge",),
    refresh: bool = False,
) -> Iterator[tuple[str, Gateway]]:
    """Run a gateway on 127.0.0.1 (an ephemeral port) for the duration of the block; yields its
    base URL. `models`: what it lists at GET /models (a test judge may pose as a named one);
    `refresh`: ask the judge again for answers stored before it started."""
    gateway = Gateway(backend, cache, refresh=refresh)
    gateway.models = models
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gateway))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="repro-judge-gateway", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", gateway
    finally:
        server.shutdown()
        server.server_close()
