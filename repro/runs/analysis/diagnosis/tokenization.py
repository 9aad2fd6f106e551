"""tokenization: BOS counts of training sequences and generation prompts, template, tokenizer revision."""

from __future__ import annotations

from typing import Any

from repro import hashing
from repro.config import evalconfig
from repro.data.bosguard import Report
from repro.errors import ReproError
from repro.runs.analysis.diagnosis import recipe
from repro.runs.analysis.diagnosis.base import Check, in_chain, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs


def _recorded(inputs: Inputs) -> dict[str, Report]:
    """The recorded BOS reports by stage: the manifest's, else the result's (a checkpoint's
    `repro eval` writes no manifest)."""
    stages = (inputs.manifest.tokenizer_checks if inputs.manifest else None) or (
        inputs.result.bos_check if inputs.result else None
    )
    return dict(stages.items()) if stages else {}


@in_chain("tokenization", order=3)
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
    for stage, report in recorded.items():
        if report.status == "skipped":
            counts.append({"stage": stage, "status": "skipped", "reason": report.reason})
            continue
        for c in report.checks:
            shown = ("what", "bos_count", "expected", "status")
            counts.append({"stage": stage, **{k: getattr(c, k) for k in shown}})
            key = f"{c.what}|{c.bos_count}|{c.expected}"
            if c.status in ("error", "warning") and key not in seen:
                seen.add(key)
                what = str(c.what)
                generation = what.startswith("generation")
                count, expected = c.bos_count, c.expected
                word = {0: "no", 1: "one", 2: "two", 3: "three"}.get(count, str(count))
                where = "generation prompt" if generation else "training sequences"
                weight = (90 if generation else 85) if (count or 0) > (expected or 0) else 55
                result.differs(
                    f"{word} BOS in the {where} ({what}: {count} where {expected} expected): {c.message}",
                    weight,
                )
    config = inputs.config or {}
    generation_config = _generation_config(config)
    revision = _revision(result, config)
    template = _template(result, inputs, config)
    result.evidence = {
        "bos": counts,
        "tokenization": config.get("tokenization"),
        "tokenizer_revision": config.get("tokenizer_revision"),
        "published_tokenizer_revision": revision,
        "generation_config": template,
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


def _revision(result: Check, config: dict[str, Any]) -> str | None:
    """The tokenizer revision the setting's recipe names (the published one); a run on another
    differs (the post-update Llama 3 tokenizer adds a BOS of its own)."""
    if not config:
        return None
    try:
        published = recipe.published_config(config)
    except (ReproError, KeyError):
        return None
    ours = config.get("tokenizer_revision")
    if ours != published.tokenizer_revision:
        source = (published.sources or {}).get("tokenizer_revision", "the setting's recipe")
        run_revision = ours or f"of the model ({config.get('model_revision')})"
        wanted = published.tokenizer_revision or "the model's own"
        result.differs(
            f"tokenizer revision {run_revision} where the published numbers used {wanted} ({source})", 75
        )
    return published.tokenizer_revision


def _template(result: Check, inputs: Inputs, config: dict[str, Any]) -> dict[str, Any] | None:
    """The generation config (AlpacaEval prompt template, decoding) the run used, by hash, against
    the setting's as it is now."""
    used = ((inputs.evaluation.key if inputs.evaluation else None) or {}).get("generation_config_sha256")
    ref = (config.get("evaluation") or {}).get("generation")
    if not used or not ref:
        return None
    try:
        now = hashing.file_sha256_or_none(evalconfig.locate(ref))
    except ReproError:
        return None
    if now and used != now:
        result.differs(
            f"the run's generation config (AlpacaEval prompt template and decoding, sha256 {used[:12]}) "
            f"is not the setting's {ref} config (sha256 {now[:12]})",
            60,
        )
    return {"config": ref, "run_sha256": used, "setting_sha256": now}


def _generation_config(config: dict[str, Any]) -> dict[str, Any]:
    ref = (config.get("evaluation") or {}).get("generation")
    if not ref:
        return {}
    try:
        return evalconfig.generation(ref).get("alpaca_eval") or {}
    except ReproError:
        return {}
