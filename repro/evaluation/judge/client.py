"""repro's own judge calls (Arena-Hard, MT-Bench): the openai client, talking to the local gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def chat_function(
    base_url: str,
    model: str,
    *,
    temperature: float = 0.0,
    max_tokens: int = 4096,
    timeout: float = 600.0,
    expect: str | None = None,
) -> Callable[[list[dict[str, Any]]], str]:
    """messages -> the judge's text. The gateway retries upstream, so the client does not.
    `expect`: a regular expression the answer must hold to be stored in the judgment cache
    (the verdict or rating the caller parses); an answer without it is returned, never reused."""
    import openai

    from repro.evaluation.judge.gateway import EXPECT_HEADER

    client = openai.OpenAI(base_url=base_url, api_key="repro-local-gateway", max_retries=0, timeout=timeout)
    headers = {EXPECT_HEADER: expect} if expect else None

    def chat(messages: list[dict[str, Any]]) -> str:
        response = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_headers=headers,
        )
        return response.choices[0].message.content or ""

    return chat
