"""Generation behind one interface: transformers `generate` (`transformers_backend`), a vLLM
engine in this process (`vllm_backend`), or an OpenAI-compatible server (`server_backend`),
each a `Backend` (`base`) that takes prompts as token ids and decodes as `decoding` says.

Prompts go in as token ids (`base.encode`), so every backend sees the same ids, and the BOS
guard (`bos.check_bos`) checks those ids right before they are generated from. Completions
come back without the prompt and cut before the first stop token; every backend decodes them
with the same tokenizer, so equal ids give equal text.

This module chooses an engine by name (`backend`); the server backend is built from a URL.
"""

from __future__ import annotations

from typing import Any

from repro.evaluation.generation.base import Backend

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
        from repro.evaluation.generation.transformers_backend import TransformersBackend

        return TransformersBackend(model_path, **kwargs)
    if name == "vllm":
        from repro.evaluation.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model_path, **kwargs)
    check_backend(name)
    raise AssertionError(name)  # unreachable: every name check_backend lets through is built above
