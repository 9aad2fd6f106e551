"""generation: the run's AlpacaEval answers against the released answers of the same setting and
method, the leaderboard's avg_length, and the decoding the published numbers were produced with.

Per answer: empty; starts with a special token, a role header or the instruction itself;
contains a special token; repeats itself (fewer than half of its word 8-grams distinct);
ends at the token limit (counted with the run's tokenizer). Against released answers, per
instruction: the length ratio (characters). The patterns and thresholds are data
(eval/diagnose.yaml).
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from repro.config import evalconfig
from repro.config.resolution import evaluation_plan
from repro.config.settings import get_setting
from repro.data import tokenizers
from repro.errors import ReproError
from repro.evaluation.generation.decoding import Decoding
from repro.runs.analysis import released
from repro.runs.analysis.diagnosis.base import Check, in_chain, percent, rules, share, unknown
from repro.runs.analysis.diagnosis.inputs import Inputs


def _repeats(text: str, min_words: int, distinct: float) -> bool:
    words = text.split()
    if len(words) < min_words:
        return False
    grams = [tuple(words[i : i + 8]) for i in range(len(words) - 7)]
    return len(set(grams)) / len(grams) < distinct


def answer_flags(outputs: list[dict[str, Any]]) -> dict[str, list[bool]]:
    """One list of booleans per flag, aligned with `outputs`."""
    cfg = rules()["answers"]
    tokens = sorted(cfg["special_tokens"], key=len, reverse=True)
    header = re.compile(cfg["role_header"])
    flags: dict[str, list[bool]] = {
        k: []
        for k in (
            "empty",
            "starts_special",
            "starts_role_header",
            "starts_with_prompt",
            "contains_special",
            "repeated",
        )
    }
    for o in outputs:
        text, instruction = o["output"], o["instruction"].strip()
        body = text.lstrip()
        flags["empty"].append(not body)
        flags["starts_special"].append(any(body.startswith(t) for t in tokens))
        flags["starts_role_header"].append(bool(header.match(text)))
        flags["starts_with_prompt"].append(len(instruction) >= 8 and body.startswith(instruction[:200]))
        flags["contains_special"].append(any(t in text for t in tokens))
        flags["repeated"].append(_repeats(text, cfg["repeated_min_words"], cfg["repeated_distinct_8grams"]))
    return flags


def _token_counts(tokenizer_dir: Path | None, texts: list[str]) -> list[int] | None:
    if tokenizer_dir is None:
        return None
    try:
        tok = tokenizers.load(str(tokenizer_dir))
        return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    except (ReproError, OSError, ValueError):
        return None


def expected_decoding(
    setting: str | None, config: dict[str, Any] | None, tokenizer_dir: Any = None
) -> tuple[dict[str, Any] | None, str]:
    """The decoding the setting's generation config says the published numbers used (for a
    setting whose stop tokens are its model family's, as this run's tokenizer spells them)."""
    try:
        ref = ((config or {}).get("evaluation") or {}).get("generation")
        if ref is None and setting:
            ref = evaluation_plan(get_setting(setting)).generation
        cfg = evalconfig.generation(ref)["alpaca_eval"]
        if cfg.get("stop_token_ids") == "family" and setting and tokenizer_dir:
            from repro.data import tokenizers  # deferred: only a family's stops need the tokenizer

            family = get_setting(setting).family
            cfg = {**cfg, "stop_token_ids": family.stop_ids(tokenizers.load(str(tokenizer_dir)))}
    except (ReproError, KeyError, TypeError, AttributeError, OSError):
        return None, ""
    decoding = Decoding.alpaca_eval(cfg).__dict__
    decoding.pop("seed", None)
    return decoding, str(cfg.get("effective_decoding") or decoding["mode"])


def _decoding_differences(used: dict[str, Any], expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = ["mode", "max_new_tokens"]
    if expected.get("stop_token_ids") != "family":  # a family's stops, with no tokenizer to spell them
        keys.append("stop_token_ids")
    if expected.get("mode") != "greedy":
        keys += ["temperature", "top_p"]
    return {
        k: {"used": used.get(k), "published": expected.get(k)}
        for k in keys
        if k in used and used.get(k) != expected.get(k)
    }


@in_chain("generation", order=5)
def check(inputs: Inputs) -> Check:
    if not inputs.outputs:
        why = inputs.need("eval/alpaca_eval2/model_outputs.json") or "no AlpacaEval answers"
        return unknown("generation", f"cannot check the answers: {why}")

    cfg = rules()["answers"]
    outputs = inputs.outputs
    n = len(outputs)
    result = Check("generation")
    lengths = [len(o["output"]) for o in outputs]
    flags = answer_flags(outputs)
    shares = {k: share(sum(v), n) for k, v in flags.items()}
    evidence: dict[str, Any] = {
        "answers": n,
        "mean_length": round(statistics.fmean(lengths), 1),
        "median_length": statistics.median(lengths),
        "avg_length": int(sum(lengths) / n),  # alpaca-eval's
        "shares": shares,
        "examples": {},
    }
    for key, values in flags.items():
        hits = [i for i, v in enumerate(values) if v][:3]
        if hits:
            evidence["examples"][key] = [outputs[i]["output"][:80] for i in hits]
    # -- the decoding used vs the one the published numbers were produced with
    expected, described = expected_decoding(inputs.setting, inputs.config, inputs.tokenizer_dir)
    evidence["decoding"] = {"used": inputs.decoding, "published": expected, "published_effective": described}
    limit = (inputs.decoding or {}).get("max_new_tokens")
    counts = _token_counts(inputs.tokenizer_dir, [o["output"] for o in outputs]) if limit else None
    at_limit = None
    if counts is not None:
        at_limit = share(sum(c >= cfg["at_limit_fraction"] * limit for c in counts), n)
        evidence["shares"]["at_token_limit"] = at_limit
    if inputs.decoding and expected:
        diff = _decoding_differences(inputs.decoding, expected)
        evidence["decoding"]["differences"] = diff
        if expected.get("stop_token_ids") == "family":
            evidence["decoding"]["note"] = (
                "stop tokens not compared: the setting stops on its model family's tokens, and the "
                "model's tokenizer that spells them as ids is not here"
            )
        cut = diff.pop("max_new_tokens", None)
        if (
            cut
            and cut["used"] is not None
            and cut["published"] is not None
            and cut["used"] < cut["published"]
        ):
            result.differs(
                f"answers cut short: generated with max_new_tokens {cut['used']} where the published "
                f"numbers used {cut['published']}"
                + (f"; {percent(at_limit)} of answers end at the limit" if at_limit is not None else ""),
                80 + 10 * (at_limit or 0),
            )
        elif cut:
            diff["max_new_tokens"] = cut
        if diff:
            listed = ", ".join(f"{k} {v['used']} (published {v['published']})" for k, v in diff.items())
            result.differs(f"decoding is not the published one ({described}): {listed}", 65)
    elif inputs.decoding is None:
        evidence["decoding"]["note"] = "the decoding used is not recorded"
    # -- answers that leaked a template's pieces, empty or degenerate answers
    margin = cfg["share_margin"]
    leak = [k for k in ("starts_role_header", "starts_special") if (shares[k] or 0) > margin]
    if leak:
        worst = max(shares[k] for k in leak)
        what = " and ".join(
            {"starts_role_header": "a role header", "starts_special": "a special token"}[k] for k in leak
        )
        example = evidence["examples"][leak[0]][0]
        result.differs(
            f"{what} leaked into the answers: {percent(worst)} start with one (e.g. {example[:40]!r})",
            70 + 100 * worst,
        )
    for key, label, weight in (
        ("starts_with_prompt", "answers that start by repeating the instruction", 60),
        ("empty", "empty answers", 60),
        ("repeated", "answers that repeat themselves", 50),
    ):
        if (shares[key] or 0) > margin:
            result.differs(f"{percent(shares[key])} {label}", weight + 100 * shares[key])
    # -- against the released answers of the same setting and method
    pair = released.find(inputs.setting, inputs.method) if inputs.setting and inputs.method else None
    if pair is None:
        evidence["released"] = {
            "note": f"the authors released no AlpacaEval answers for {inputs.setting} x {inputs.method}"
            f" (released: {', '.join(f'{s} x {m}' for s, m in released.pairs())})"
        }
    else:
        _against_released(result, evidence, inputs, pair, shares)
    result.evidence = evidence
    if result.status == "ok":
        against = ""
        if "released" in evidence and "mean_length_ratio" in evidence["released"]:
            r = evidence["released"]
            against = (
                f"; length {r['mean_length_ratio']:.2f}x the released answers "
                f"(median per instruction {r['median_ratio']:.2f})"
            )
        decoding = "decoding as published" if inputs.decoding and expected else "decoding not recorded"
        if "note" in evidence["decoding"] and inputs.decoding and expected:
            decoding += " (its stop tokens not compared: no tokenizer here)"
        limit_share = f", {percent(at_limit)} at the token limit" if at_limit is not None else ""
        inside = shares.get("contains_special") or 0
        if inside > margin:  # said as found: without released answers there is nothing to hold it to
            example = evidence["examples"]["contains_special"][0]
            token = next((t for t in cfg["special_tokens"] if t in example), example[:40])
            special = (
                f"a special token inside {percent(inside)} of the answers (e.g. {token!r}; "
                f"no released answers of {inputs.setting} x {inputs.method} to compare with); "
                "no answer starts with a role header or special token"
            )
        else:
            special = "no leaked header or special token"
        result.summary = (
            f"{n} answers, mean {evidence['mean_length']:.0f} characters{limit_share}; {decoding}; "
            f"{special}, empty or repeating answers beyond {percent(margin)}{against}"
        )
    else:
        result.summary = "; ".join(c.summary for c in result.causes)
    return result


def _against_released(
    result: Check, evidence: dict[str, Any], inputs: Inputs, pair: Any, shares: dict
) -> None:
    cfg = rules()["answers"]
    by_sha = pair.by_instruction()
    ratios, matched = [], []
    for o in inputs.outputs or []:
        stat = by_sha.get(released.instruction_sha(o["instruction"]))
        if stat is not None:
            matched.append((len(o["output"]), stat.chars))
            if stat.chars:
                ratios.append(len(o["output"]) / stat.chars)
    n = len(inputs.outputs or [])
    if not matched:
        if inputs.run_dir is None:
            raise ReproError(
                f"{inputs.outputs_path}: none of its {n} instructions is an AlpacaEval instruction "
                f"(another instruction set); the released {pair.generator} answers cover AlpacaEval's 805"
            )
        evidence["released"] = {
            "note": "the run's instructions are not AlpacaEval's: no per-instruction comparison"
        }
        return
    ours = statistics.fmean(c for c, _ in matched)
    theirs = statistics.fmean(c for _, c in matched)
    board = dict(pair.leaderboard)
    rows = inputs.leaderboard or {}
    if pair.generator in rows:
        board = {**board, **{k: v for k, v in rows[pair.generator].items() if v is not None}}
    info: dict[str, Any] = {
        "generator": pair.generator,
        "source": pair.source,
        "matched_instructions": len(matched),
        "mean_length": round(theirs, 1),
        "mean_length_ratio": round(ours / theirs, 3),
        "median_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "under_half_share": share(sum(r < 0.5 for r in ratios), len(ratios)),
        "leaderboard_avg_length": board.get("avg_length"),
        "released_contains_special_share": 0.0,
    }
    if (own := rows.get(str((inputs.outputs or [{}])[0].get("generator") or ""))) and own is not rows.get(
        pair.generator
    ):
        info["outputs_leaderboard_row"] = own
    evidence["released"] = info
    low, high = cfg["length_ratio_band"]
    ratio = info["mean_length_ratio"]
    if ratio < low:
        result.differs(
            f"answers cut short: mean length {ours:.0f} characters against {theirs:.0f} for the released "
            f"{pair.generator} answers (ratio {ratio:.2f}; "
            f"median per instruction {info['median_ratio']:.2f}; "
            f"{percent(info['under_half_share'])} under half the released length)",
            75 + 20 * (low - ratio),
        )
    elif ratio > high:
        result.differs(
            f"answers longer than the released {pair.generator} answers: mean {ours:.0f} against "
            f"{theirs:.0f} characters (ratio {ratio:.2f})",
            55,
        )
    if board.get("avg_length"):
        info["leaderboard_ratio"] = round(
            int(sum(len(o["output"]) for o in inputs.outputs or []) / n) / board["avg_length"], 3
        )
    # the released answers hold no special token: any share above the margin leaked
    if (shares["contains_special"] or 0) > cfg["share_margin"] and not any(
        c.summary.startswith(("a role header", "a special token")) for c in result.causes
    ):
        result.differs(
            f"a special token leaked into the answers: {percent(shares['contains_special'])} contain one "
            f"(the released answers: none)",
            70 + 100 * shares["contains_special"],
        )
