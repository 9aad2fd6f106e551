"""The prompts of on-policy data: read from a dataset or a JSON lines file, made unique and
sorted (one order for every seed and process), and chat-templated with exactly one BOS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.data import bosguard, preference
from repro.errors import ReproError


def parse_source(spec: str) -> tuple[str, str]:
    """DATASET[:split] -> (dataset, split); the split defaults to train_prefs (UltraFeedback's)."""
    if ":" in spec and not Path(spec).exists():
        source, split = spec.rsplit(":", 1)
        return source, split or "train_prefs"
    return spec, "train_prefs"


def prompt_text(row: Any) -> str | None:
    """A row's user prompt: a `prompt` string, or the first user message of prompt/messages/chosen."""
    if not isinstance(row, dict):
        return None
    value = row.get("prompt")
    if isinstance(value, str):
        return value
    for key in ("prompt", "messages", "chosen"):
        messages = row.get(key)
        if isinstance(messages, list):
            for m in messages:
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                    return m["content"]
    return None


def unique_prompts(rows: list[Any]) -> tuple[list[str], dict[str, int]]:
    """Unique non-empty prompts, sorted (so every seed and every process sees one order)."""
    texts = [prompt_text(r) for r in rows]
    unusable = sum(1 for t in texts if not t or not t.strip())
    kept = [t for t in texts if t and t.strip()]
    unique = sorted(set(kept))
    return unique, {"rows": len(rows), "unusable": unusable, "duplicates": len(kept) - len(unique)}


def load(spec: str, limit: int | None) -> tuple[list[str], dict[str, Any]]:
    """The first `limit` unique prompts of DATASET[:split] or a JSON lines file, with their counts."""
    source, split = parse_source(spec)
    path = Path(source)
    rows = preference.read_jsonl(path) if path.is_file() else preference.load_rows(source, split)
    prompts, stats = unique_prompts(rows)
    if not prompts:
        raise ReproError(f"{spec}: no prompts found (rows need a 'prompt' string or user messages)")
    if limit:
        prompts = prompts[:limit]
    return prompts, {"source": source, "split": split, **stats, "prompts": len(prompts)}


# ---------------------------------------------------------------------------- formatting and BOS


def format_for(tokenizer, prompts: list[str], allow_double_bos: bool = False) -> tuple[list[str], bool, dict]:
    """Chat-template each prompt; choose add_special_tokens so the model sees exactly one BOS.

    The templates of Gemma and Llama 3 write the BOS themselves; tokenizing their output with
    special tokens (vLLM's default) gives two. Returns the texts, the add_special_tokens to
    use, and the BOS check for the manifest.
    """
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    bos = tokenizer.bos_token_id
    probe = texts[0]
    with_special = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    add_special = bos is None or bosguard.leading(with_special, bos) <= 1
    ids = list(tokenizer(probe, add_special_tokens=add_special)["input_ids"])
    expected = 0 if bos is None else 1
    check = (
        bosguard._check("on-policy generation prompt", ids, tokenizer, expected) if bos is not None else None
    )
    report = {
        "add_special_tokens": add_special,
        "bos_count": 0 if bos is None else bosguard.leading(ids, bos),
        "status": check.status if check else "ok",
        "message": check.message if check else "the tokenizer has no BOS token",
    }
    if check and check.status == "error" and not allow_double_bos:
        raise ReproError(f"BOS check failed for the generation prompts: {check.message}")
    return texts, add_special, report
