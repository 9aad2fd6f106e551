"""An OpenAI-compatible judge on 127.0.0.1 whose answers and self-description are scripted:
`GET /models` lists each model with the fields a real server gives (vLLM: `owned_by`, `root`,
`max_model_len`, a `created` stamped at every call), `POST /chat/completions` answers with
`answer(body)` and counts the calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from repro.evaluation.judge.gateway import chat_response


class JudgeServer:
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], str],
        *,
        models: tuple[str, ...] = ("gpt-4-1106-preview", "gpt-4"),
        root: str = "/models/judge",
        fingerprint: str | None = None,
    ):
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802
                listed = [
                    {"id": m, "object": "model", "created": int(time.time() * 1000), "owned_by": "vllm",
                     "root": root, "max_model_len": 16384,
                     "permission": [{"id": f"modelperm-{time.time_ns()}"}]}
                    for m in models
                ]  # fmt: skip
                self._send({"object": "list", "data": listed})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.calls += 1
                    outer.bodies.append(body)
                response = chat_response(body["model"], answer(body))
                if fingerprint:
                    response["system_fingerprint"] = fingerprint
                self._send(response)

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> JudgeServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def user_text(body: dict[str, Any]) -> str:
    return "\n".join(m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user")


def verdicts(ah: str = "[[A>>B]]", mt: str = "[[9]]") -> Callable[[dict[str, Any]], str]:
    """A judge that follows the formats: Arena-Hard verdict `ah`, MT-Bench rating `mt`."""

    def answer(body: dict[str, Any]) -> str:
        text = user_text(body)
        if "<|User Prompt|>" in text:
            return f"Both are fine.\n\nMy final verdict is: {ah}"
        if "rate the response" in text.lower():
            return f"Rating: {mt}"
        return "OK"

    return answer


def no_verdict(body: dict[str, Any]) -> str:
    """A judge that never gives a verdict or a rating."""
    return "Both answers are interesting."
