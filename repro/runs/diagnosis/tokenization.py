"""tokenization: BOS counts of training sequences and generation prompts, template, tokenizer revision."""

from __future__ import annotations

from typing import Any

from repro.runs.diagnosis.base import Check, unknown
from repro.runs.diagnosis.inputs import Inputs


def _recorded(inputs: Inputs) -> dict[str, Any]:
    checks = (inputs.manifest or {}).get("tokenizer_checks") or (inputs.result or {}).get("bos_check") or {}
    return {stage: v for stage, v in checks.items() if isinstance(v, dict)}


def check(inputs: Inputs) -> Check:
    recorded = _recorded(inputs)
    if not recorded:
        if inputs.run_dir is None:
            return unknown(
                "tokenization",
                "cannot count BOS: model_outputs.json holds no prompt token ids "
                "(run `repro check-tokenizer` on the tokenizer that generated them)",
            )
        why = inputs.need("manifest.json", "result.json") or "the run recorded no BOS checks"
        return unknown("tokenization", f"cannot count BOS: {why}")
    result = Check("tokenization")
    counts: list[dict[str, Any]] = []
    seen: set[str] = set()
    # the evaluation's checks are the ones its prompts went in with; training's come first
    for stage in ("train", "eval"):
        entry = recorded.get(stage) or {}
        if entry.get("status") == "skipped":
            counts.append({"stage": stage, "status": "skipped", "reason": entry.get("reason")})
            continue
        for c in entry.get("checks") or []:
            counts.append(
                {"stage": stage, **{k: c.get(k) for k in ("what", "bos_count", "expected", "status")}}
            )
            key = f"{c.get('what')}|{c.get('bos_count')}|{c.get('expected')}"
            if c.get("status") in ("error", "warning") and key not in seen:
                seen.add(key)
                what = str(c.get("what"))
                generation = what.startswith("generation")
                count, expected = c.get("bos_count"), c.get("expected")
                word = {0: "no", 1: "one", 2: "two", 3: "three"}.get(count, str(count))
                where = "generation prompt" if generation else "training sequences"
                weight = (90 if generation else 85) if (count or 0) > (expected or 0) else 55
                result.differs(
                    f"{word} BOS in the {where} ({what}: {count} where {expected} expected): "
                    f"{c.get('message', '')}",
                    weight,
                )
    config = inputs.config or {}
    generation_config = _generation_config(config)
    result.evidence = {
        "bos": counts,
        "tokenization": config.get("tokenization"),
        "tokenizer_revision": config.get("tokenizer_revision"),
        "model_revision": config.get("model_revision"),
        "chat_template": config.get("chat_template"),
        "alpaca_eval_template_source": generation_config.get("prompt_template_source"),
        "expected_generation_bos": generation_config.get("expected_bos", 1),
    }
    if result.status == "ok":
        parts = sorted({f"{c['what']}: {c['bos_count']}" for c in counts if c.get("bos_count") is not None})
        result.summary = "BOS as the published numbers had them (" + "; ".join(parts) + ")"
    else:
        result.summary = "; ".join(c.summary.split(":")[0] for c in result.causes)
    return result


def _generation_config(config: dict[str, Any]) -> dict[str, Any]:
    from repro.config import evalconfig
    from repro.errors import ReproError

    ref = (config.get("evaluation") or {}).get("generation")
    if not ref:
        return {}
    try:
        return evalconfig.generation(ref).get("alpaca_eval") or {}
    except ReproError:
        return {}
