"""ZeroEval GSM and MMLU-Redux as the Gemma-2 table ran them (ZeroEval 41d0bfd): items,
prompts, generation and the result files its scorer reads (eval/zeroeval/zeroeval.yaml).

- Items: a local file in ZeroEval's format (JSON list or JSON lines with `id`, `question`
  and `answer` (GSM) or `choices` + `correct_answer` (MMLU-Redux)); ZeroEval's own result
  files qualify. Without one: DIR/<task>.json(l) under --zeroeval-data or
  $REPRO_CACHE/zeroeval/, else the Hub dataset `yuchenlin/zero-eval` (config = task,
  split test) when the Hub is reachable.
- Prompt: the task's template (OEQA for GSM, MCQA with "- (A) choice" lines for
  MMLU-Redux, placeholders replaced with str.replace) as one user turn through the
  model's chat template with the generation prompt: the string ZeroEval stored as
  `model_input`.
- Generation: greedy, top_p 1, 4096 new tokens, stop at <|im_end|>/<|eot_id|> when in the
  vocabulary and at the tokenizer's EOS; outputs cleaned as ZeroEval did.
- BOS: ZeroEval handed the rendered string (whose template may already write BOS) to
  vLLM, which tokenizes with special tokens and may add a second BOS. repro's default
  (`bos="single"`) gives one BOS; `bos="zeroeval"` reproduces vLLM's tokenization. The
  choice and the resulting count go into the result.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError, unknown
from repro.evaluation.scorers import zeroeval as scorer

CONFIG = paths.EVAL / "zeroeval" / "zeroeval.yaml"
BENCHES = {"gsm": "gsm", "mmlu_redux": "mmlu-redux"}  # repro benchmark name -> ZeroEval task
BOS_MODES = ("single", "zeroeval")


@cache
def config() -> dict[str, Any]:
    data = read_yaml(CONFIG)
    for name, template in data["templates"].items():
        if hashlib.sha256(template["text"].encode()).hexdigest() != template["sha256"]:
            raise ReproError(f"{CONFIG}: template {name} differs from ZeroEval's (sha256 mismatch)")
    return data


def template(task: str) -> str:
    scorer.check_task(task)
    cfg = config()
    return cfg["templates"][cfg["tasks"][task]["template"]]["text"]


def choice_lines(choices: list[str]) -> str:
    return "".join(f"- ({chr(65 + i)}) {choice}\n" for i, choice in enumerate(choices))


def user_turn(task: str, item: dict[str, Any]) -> str:
    """The task template filled in, in ZeroEval's order (question first, then choices)."""
    text = template(task).replace("{question}", item["question"])
    if task == "mmlu-redux":
        text = text.replace("{choices}", choice_lines(item["choices"]))
    return text


def prompt(tokenizer, task: str, item: dict[str, Any]) -> str:
    """ZeroEval's `model_input`: one user turn through the chat template, generation prompt on."""
    if not getattr(tokenizer, "chat_template", None):
        raise ReproError("the tokenizer has no chat template (ZeroEval renders prompts with the model's own)")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_turn(task, item)}], tokenize=False, add_generation_prompt=True
    )


# --------------------------------------------------------------------------- items


def _check_items(items: list[dict[str, Any]], task: str, where: str) -> list[dict[str, Any]]:
    needed = config()["tasks"][task]["fields"]
    for index, item in enumerate(items):
        missing = [f for f in needed if f not in item]
        if missing:
            raise ReproError(f"{where}: item {index} lacks {', '.join(missing)} (ZeroEval {task} format)")
    return items


def default_data_dir() -> Path:
    return paths.cache_root() / "zeroeval"


def _hub(task: str) -> list[dict[str, Any]] | None:
    """The Hub dataset, or None when the Hub cannot be reached (offline mode, no network)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return None
    spec = config()["tasks"][task]["dataset"]
    try:
        from datasets import load_dataset

        return [dict(row) for row in load_dataset(spec["path"], spec["name"], split=spec["split"])]
    except Exception:  # noqa: BLE001 - any failure to fetch means: not reachable; the caller says where to put the file
        return None


def load_items(
    task: str, path: Path | None = None, *, data_dir: Path | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """A task's items: `path`, else DATA_DIR/<task>.json(l), else the Hub dataset."""
    scorer.check_task(task)
    if path is not None:
        items, where = scorer.read_items(Path(path)), str(path)
    else:
        folder = Path(data_dir) if data_dir else default_data_dir()
        found = [
            folder / f"{task}{suffix}"
            for suffix in (".json", ".jsonl")
            if (folder / f"{task}{suffix}").exists()
        ]
        if found:
            items, where = scorer.read_items(found[0]), str(found[0])
        else:
            items, where = _hub(task), config()["tasks"][task]["dataset"]["path"]
            if items is None:
                raise ReproError(
                    f"ZeroEval {task} items not found: put the test split of yuchenlin/zero-eval "
                    f"(config {task}) as a JSON list or JSON lines at {folder / (task + '.json')}, "
                    "or pass the file (--input / --zeroeval-data DIR)"
                )
    if not items:
        raise ReproError(f"{where}: no items")
    return _check_items(items, task, where)[:limit]


# --------------------------------------------------------------------------- generation


def stop_token_ids(tokenizer) -> list[int]:
    """ZeroEval's stop ids: <|im_end|> / <|eot_id|> when in the vocabulary, then EOS."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[t] for t in config()["decoding"]["stop_tokens_if_in_vocab"] if t in vocab]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def clear_output(text: str) -> str:
    return text.replace("<|endoftext|>", " ").strip()


def bos_plan(tokenizer, prompts: list[str], mode: str = "single") -> dict[str, Any]:
    """How prompts are tokenized for generation, and the leading BOS count that results.

    vLLM tokenizes a prompt string with add_special_tokens=True: a template that writes
    BOS itself then gets a second one. `single` turns special tokens off in that case.
    """
    from repro.data import bosguard

    if mode not in BOS_MODES:
        raise unknown("BOS mode", mode, BOS_MODES)
    bos = tokenizer.bos_token_id
    if not prompts or bos is None:
        return {
            "mode": mode,
            "add_special_tokens": True,
            "bos_count": 0,
            "zeroeval_bos_count": 0,
            "note": "the tokenizer has no BOS token" if bos is None else "no prompts",
        }
    with_special = bosguard.leading(list(tokenizer(prompts[0], add_special_tokens=True)["input_ids"]), bos)
    without = bosguard.leading(list(tokenizer(prompts[0], add_special_tokens=False)["input_ids"]), bos)
    add = True if mode == "zeroeval" else without == 0
    count = with_special if add else without
    note = f"{count} BOS when generating ({mode}); ZeroEval's vLLM call gave {with_special}" + (
        " (the chat template writes BOS, vLLM added another)" if with_special > without > 0 else ""
    )
    return {
        "mode": mode,
        "add_special_tokens": add,
        "bos_count": count,
        "zeroeval_bos_count": with_special,
        "note": note,
    }


def result_items(
    items: list[dict[str, Any]],
    prompts: list[str],
    outputs: list[str],
    *,
    task: str,
    generator: str,
    max_tokens: int,
    engine: str,
) -> list[dict[str, Any]]:
    """Items in ZeroEval's result format (what its scorer and `repro zeroeval score` read)."""
    decoding = config()["decoding"]
    records = []
    for item, model_input, output in zip(items, prompts, outputs, strict=True):
        record = {
            "session_id": item["id"],
            "chat_history": [user_turn(task, item)],
            "model_input": model_input,
            "output": [clear_output(output)],
            "generator": generator,
            "configs": {
                "engine": engine,
                "repetition_penalty": decoding["repetition_penalty"],
                "temperature": decoding["temperature"],
                "top_p": decoding["top_p"],
                "max_tokens": max_tokens,
            },
            "dataset": task,
        }
        for key, value in item.items():
            record.setdefault(key, value)
        records.append(record)
    return records


def generate(
    generator,
    tokenizer,
    task: str,
    items: list[dict[str, Any]],
    *,
    model_name: str,
    engine: str = "transformers",
    max_new_tokens: int | None = None,
    bos: str = "single",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate every item's answer with `generator` (repro.evaluation.generation); returns the ZeroEval
    result items and the generation record (decoding, BOS plan)."""
    from repro.evaluation.generation.decoding import Decoding

    prompts = [prompt(tokenizer, task, item) for item in items]
    plan = bos_plan(tokenizer, prompts, bos)
    decoding = Decoding(
        mode="greedy",
        max_new_tokens=max_new_tokens or config()["decoding"]["max_tokens"],
        temperature=0.0,
        top_p=config()["decoding"]["top_p"],
        stop_token_ids=stop_token_ids(tokenizer),
    )
    previous = getattr(generator, "add_special_tokens", True)
    generator.add_special_tokens = plan["add_special_tokens"]
    try:
        outputs = generator.generate(prompts, decoding)
    finally:
        generator.add_special_tokens = previous
    records = result_items(
        items,
        prompts,
        outputs,
        task=task,
        generator=model_name,
        max_tokens=decoding.max_new_tokens,
        engine=engine,
    )
    return records, {"decoding": decoding.__dict__, "bos": plan}


def write_results(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
    return path
