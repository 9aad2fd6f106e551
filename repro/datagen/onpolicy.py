"""On-policy preference data: sample from the starting model, score with a reward model, binarize.

The recipe behind princeton-nlp/gemma2-ultrafeedback-armorm and the Llama-3-Instruct v0.2
data (SimPO repo, on_policy_data_gen/): every unique UltraFeedback prompt, one sample per
seed (13, 21, 42, 79, 100) at temperature 0.8 / top-p 0.95, prompts whose samples are all
identical dropped, every sample scored by a reward model (ArmoRM), chosen = the best and
rejected = the worst, ties to the earlier sample. What differs from the original, on purpose:
- prompt order is deterministic by construction (unique, sorted) - before a fix the original
  zipped seeds' outputs by an order that varied between processes;
- prompts carry exactly one BOS (the BOS guard; vLLM added a second to Gemma's template);
- the reward model scores in batches (the original: one sample at a time; equal scores,
  tested), and an optional minimum margin drops near-ties;
- a train/test split with a recorded seed and fraction (the original wrote a single split);
- every stage is resumable: a killed run continues where it stopped.

Layout of the output directory: work/ (prompts, per-seed generations, scores: JSON lines,
appended batch by batch), manifest.json, and the dataset (datasets.DatasetDict.save_to_disk:
train/, test/), which `repro train --dataset DIR` and a setting's `dataset:` accept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro import hashing, hub, io, pauses
from repro.config.settings import get_setting
from repro.data import tokenizers
from repro.datagen import prompts as prompt_set
from repro.datagen import reward
from repro.errors import ReproError
from repro.evaluation import generation
from repro.evaluation.generation.base import Backend
from repro.evaluation.generation.decoding import Decoding
from repro.progress import Progress

SEEDS = (13, 21, 42, 79, 100)
DEFAULT_PROMPTS = "HuggingFaceH4/ultrafeedback_binarized:train_prefs"


@dataclass
class Options:
    model: str
    reward_model: str
    output: Path
    prompts: str = DEFAULT_PROMPTS
    seeds: tuple[int, ...] = SEEDS
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 4096
    backend: str = "auto"
    batch_size: int = 8
    rm_batch_size: int = 8
    min_margin: float = 0.0
    test_fraction: float = 0.03  # released gemma2-ultrafeedback-armorm: 1,941 of 61,510 rows
    split_seed: int = 42
    limit: int | None = None
    trust_remote_code: bool = False
    allow_double_bos: bool = False

    def identity(self) -> dict[str, Any]:
        """What determines the outputs: a resumed run must match it."""
        keys = ("model", "reward_model", "prompts", "seeds", "temperature", "top_p", "max_tokens", "limit")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k in keys}


# ---------------------------------------------------------------------------- sampling


def batch_seed(seed: int, start: int) -> int:
    """Each batch gets its own seed, so a resumed run samples exactly what an unbroken one would."""
    return (seed * 1_000_003 + start) % (2**31)


def generate_seed(
    backend, texts: list[str], seed: int, options: Options, path: Path, progress: Progress | None = None
) -> list[str]:
    """One sample per prompt for `seed`, appended to `path` batch by batch; resumes from it."""
    done = io.read_jsonl(path, bad="stop")
    if [d["i"] for d in done] != list(range(len(done))):
        raise ReproError(f"{path}: generations out of order; delete it to regenerate this seed")
    # vLLM samples the whole set in one call; transformers batch by batch, each with its own seed
    size = len(texts) if getattr(backend, "whole_set", False) else options.batch_size
    start = len(done) - len(done) % size  # resume at a batch boundary: its seed is known
    io.rewrite_jsonl(path, done[:start])
    outputs = [d["text"] for d in done[:start]]
    while start < len(texts):
        chunk = texts[start : start + size]
        decoding = Decoding(
            mode="sample",
            temperature=options.temperature,
            top_p=options.top_p,
            max_new_tokens=options.max_tokens,
            seed=batch_seed(seed, start),
        )
        new = backend.generate(chunk, decoding)
        io.append_jsonl(path, [{"i": start + k, "text": t} for k, t in enumerate(new)])
        pauses.pause("onpolicy.batch")  # kill-and-resume tests only: time to kill mid-seed
        outputs += new
        start += len(chunk)
        if progress:
            progress(f"sampling, seed {seed}", start, len(texts))
    return outputs


# ---------------------------------------------------------------------------- binarizing


def collect(prompts: list[str], per_seed: list[list[str]]) -> tuple[list[dict[str, Any]], int]:
    """Each prompt with its samples in seed order; prompts whose samples are all identical dropped."""
    rows, identical = [], 0
    for i, prompt in enumerate(prompts):
        responses = [outputs[i] for outputs in per_seed]
        if len(set(responses)) == 1:
            identical += 1
            continue
        rows.append({"prompt": prompt, "all_generated_responses": responses})
    return rows, identical


def binarize(scores: list[float]) -> tuple[int, int]:
    """(chosen, rejected) = (first highest, first lowest): ties go to the earlier sample."""
    chosen = max(range(len(scores)), key=lambda i: (scores[i], -i))
    rejected = min(range(len(scores)), key=lambda i: (scores[i], i))
    return chosen, rejected


def records(
    rows: list[dict[str, Any]], scores: list[list[float]], min_margin: float
) -> tuple[list[dict[str, Any]], int]:
    out, below = [], 0
    for row, row_scores in zip(rows, scores, strict=True):
        c, r = binarize(row_scores)
        if row_scores[c] - row_scores[r] < min_margin:
            below += 1
            continue
        user = {"role": "user", "content": row["prompt"]}
        responses = row["all_generated_responses"]
        out.append(
            {
                "prompt_id": hashlib.sha256(row["prompt"].encode()).hexdigest(),
                "prompt": [user],
                "chosen": [user, {"role": "assistant", "content": responses[c]}],
                "rejected": [user, {"role": "assistant", "content": responses[r]}],
                "all_generated_responses": responses,
                "all_rm_scores": row_scores,
            }
        )
    return out, below


# ---------------------------------------------------------------------------- the pipeline


def _auto_backend() -> str:
    """`--backend auto`: vLLM when it is installed and a GPU is there, else transformers."""
    import torch  # deferred: torch takes about 2 s to import

    try:
        import vllm  # noqa: F401  (deferred: present on GPU installs only)
    except ImportError:
        return "transformers"
    return "vllm" if torch.cuda.is_available() else "transformers"


def _backend(options: Options, tokenizer, add_special_tokens: bool) -> tuple[str, Backend]:
    """The sampling engine, built by evaluation's chooser (`generation.backend`)."""
    name = _auto_backend() if options.backend == "auto" else options.backend
    # Only the transformers backend batches; vLLM is handed the whole set at once.
    kwargs: dict[str, Any] = {"batch_size": options.batch_size} if name == "transformers" else {}
    engine = generation.backend(
        name, options.model, tokenizer=tokenizer, add_special_tokens=add_special_tokens, **kwargs
    )
    return name, engine


def check_resume(options: Options, work: Path, versions: dict[str, str | None] | None = None) -> None:
    """A directory holding another configuration's work is refused, not mixed: other options, or
    other weights behind the same model names (`versions`, see repro.hub.Pinned; a directory started by an
    older repro recorded none, and is not held to them)."""
    path = work / "options.json"
    identity = options.identity() | ({"versions": versions} if versions is not None else {})
    if path.exists():
        previous = io.read_json(path)
        if not isinstance(previous, dict):
            raise ReproError(
                f"{path}: unreadable (not a JSON object): {options.output} cannot be resumed; "
                "choose another --output or delete it"
            )
        diff = sorted(k for k in options.identity() if previous.get(k) != identity[k])
        started = previous.get("versions")
        if versions is not None and started is not None:
            started = started if isinstance(started, dict) else {}  # unreadable: not the same
            moved = [k.replace("_", " ") for k in versions if started.get(k) != versions[k]]
            if moved and not diff:
                raise ReproError(
                    f"{options.output} was started from other weights of the {' and the '.join(moved)} "
                    "(another hub commit, or a local folder that changed); choose another --output or "
                    "delete it"
                )
        if diff:
            raise ReproError(
                f"{options.output} holds a run with other options ({', '.join(diff)} differ); "
                "choose another --output or delete it"
            )
    else:
        io.write_json(path, identity)  # atomic: a killed start leaves no torn file


def run(options: Options, progress: Progress | None = None) -> dict[str, Any]:
    """Prompts -> samples per seed -> reward scores -> pairs -> dataset + manifest."""
    if len(set(options.seeds)) != len(options.seeds) or len(options.seeds) < 2:
        raise ReproError("--seeds needs at least two distinct seeds (one sample each)")
    if not 0.0 <= options.test_fraction < 1.0:
        raise ReproError(f"--test-fraction must be in [0, 1), not {options.test_fraction}")
    if not math.isfinite(options.min_margin):  # every comparison with nan is False: nothing dropped
        raise ReproError(f"--min-margin must be a finite number, not {options.min_margin}")
    work = options.output / "work"
    work.mkdir(parents=True, exist_ok=True)
    model, reward_model = hub.pinned(options.model), hub.pinned(options.reward_model)
    check_resume(options, work, versions={"model": model.version, "reward_model": reward_model.version})
    started = time.time()
    _quiet_library_bars()
    for what, name in (("model", model.folder), ("reward model", reward_model.folder)):
        preflight(what, name, options.trust_remote_code)  # before hours of sampling, not after
    options = dataclasses.replace(options, model=model.folder)  # what the sampling engine loads

    prompts, prompt_stats = prompt_set.load(options.prompts, options.limit)
    (work / "prompts.json").write_text(json.dumps(prompts))
    tokenizer = tokenizers.load(model.folder)
    texts, add_special, bos = prompt_set.format_for(tokenizer, prompts, options.allow_double_bos)

    backend_name, backend = None, None
    samples: dict[int, list[str]] = {}
    for seed in options.seeds:
        path = work / f"generations-seed{seed}.jsonl"
        existing = io.read_jsonl(path, bad="stop")
        if len(existing) == len(texts):  # this seed is finished
            samples[seed] = [d["text"] for d in existing]
            continue
        if backend is None:
            backend_name, backend = _backend(options, tokenizer, add_special)
        samples[seed] = generate_seed(backend, texts, seed, options, path, progress)
    del backend

    rows, identical = collect(prompts, [samples[seed] for seed in options.seeds])
    if not rows:
        raise ReproError("every prompt's samples were identical: nothing to binarize")

    rm = reward.RewardModel(reward_model.folder, trust_remote_code=options.trust_remote_code)
    scores = reward.score_all(rm, rows, options.rm_batch_size, work / "scores.jsonl", progress)
    rm_batch = options.rm_batch_size if rm.batched else 1
    del rm
    pairs, below = records(rows, scores, options.min_margin)
    if not pairs:
        raise ReproError(f"no pair reaches the minimum margin {options.min_margin}")
    sizes = write_dataset(pairs, options.output, options.test_fraction, options.split_seed)

    manifest = {
        "model": model.name,
        "reward_model": reward_model.name,
        "weights_sha256": {
            "model": _weights_sha(model.folder),
            "reward_model": _weights_sha(reward_model.folder),
        },
        # the hub commit each was loaded at (None: a local folder, its weights' hash above says it)
        "commits": {"model": model.commit, "reward_model": reward_model.commit},
        "prompts": prompt_stats,
        "sampling": {
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
            "seeds": list(options.seeds),
            "samples_per_prompt": len(options.seeds),
            "backend": backend_name or "(all seeds resumed from disk)",
            "batch_seed": "seed * 1000003 + first prompt index of the batch (transformers backend)",
        },
        "bos": bos,
        "binarize": {
            "chosen": "highest reward (ties: earlier sample)",
            "rejected": "lowest reward (ties: earlier sample)",
            "min_margin": options.min_margin,
            "reward_batch_size": rm_batch,  # 1: the reward model has no pad token
        },
        "counts": {
            "prompts": len(prompts),
            "dropped_identical_samples": identical,
            "dropped_below_margin": below,
            "pairs": len(pairs),
            **sizes,
        },
        "split": {"test_fraction": options.test_fraction, "seed": options.split_seed},
        "seconds": round(time.time() - started, 1),
    }
    io.write_json(options.output / "manifest.json", manifest)
    return manifest


def preflight(what: str, name: str, trust_remote_code: bool) -> None:
    """Fail now, in one line, if a model's config cannot be read (wrong path, no hub access)."""
    # deferred: transformers takes about 1 s to import
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any loader failure is the user's input
        raise ReproError(f"cannot load {what} '{name}': {str(exc).splitlines()[0]}") from None


def _weights_sha(name: str) -> str | None:
    """SHA-256 of the weights a model was loaded from: a local folder's, or a hub model's commit
    folder in the cache (None: no folder, nothing loaded from disk here)."""
    return hashing.weights_sha256(name) if Path(name).is_dir() else None


def _quiet_library_bars() -> None:
    """Our progress bars only: datasets' and transformers' own would interleave with them."""
    # deferred: datasets takes about 1 s to import
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def write_dataset(
    pairs: list[dict[str, Any]], output: Path, test_fraction: float, seed: int
) -> dict[str, int]:
    """train/test DatasetDict saved to `output` (load_from_disk(output / split) reads a split)."""
    # deferred: datasets takes about 1 s to import
    from datasets import Dataset, DatasetDict

    full = Dataset.from_list(pairs)
    if test_fraction > 0 and len(pairs) >= 2:
        split = full.train_test_split(test_size=test_fraction, seed=seed)
        data = DatasetDict({"train": split["train"], "test": split["test"]})
    else:
        data = DatasetDict({"train": full, "test": full.select([])})
    for name in ("train", "test"):  # a rerun replaces the dataset, never the work/ files
        target = output / name
        if target.exists():
            import shutil

            shutil.rmtree(target)
    data.save_to_disk(str(output))
    return {"train": len(data["train"]), "test": len(data["test"])}


# ---------------------------------------------------------------------------- options


def choose_seeds(seeds: str | None, samples: int | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if seeds:
        try:
            chosen = tuple(int(s) for s in seeds.split(",") if s.strip())
        except ValueError:
            raise ReproError(f"--seeds must be comma-separated integers, not '{seeds}'") from None
    else:
        chosen = default
    if samples is not None:
        if seeds and samples != len(chosen):
            raise ReproError(
                f"--samples {samples} but --seeds lists {len(chosen)} seeds (one sample per seed)"
            )
        if samples > len(chosen):
            raise ReproError(f"--samples {samples}: give {samples} seeds with --seeds")
        chosen = chosen[:samples]
    return chosen


def resolve_options(
    setting: str | None,
    *,
    output: Path,
    model: str | None = None,
    reward_model: str | None = None,
    prompts: str | None = None,
    samples: int | None = None,
    seeds: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    trust_remote_code: bool | None = None,
    **rest: Any,
) -> Options:
    """Options from the command line over the setting's on_policy recipe over Options' defaults."""
    recipe: dict[str, Any] = {}
    if setting:
        recipe = get_setting(setting).on_policy or {}
        if not recipe:
            raise ReproError(f"setting '{setting}' has no on_policy recipe; give --model and --reward-model")
    model = model or recipe.get("model")
    reward_model = reward_model or recipe.get("reward_model")
    if not model or not reward_model:
        raise ReproError("give --model and --reward-model (or --setting with an on_policy recipe)")

    defaults = {f.name: f.default for f in dataclasses.fields(Options)}

    def pick(given: Any, key: str) -> Any:
        return given if given is not None else recipe.get(key, defaults[key])

    return Options(
        model=model,
        reward_model=reward_model,
        output=Path(output).resolve(),
        prompts=prompts or recipe.get("prompts", DEFAULT_PROMPTS),
        seeds=choose_seeds(seeds, samples, tuple(recipe.get("seeds", SEEDS))),
        temperature=pick(temperature, "temperature"),
        top_p=pick(top_p, "top_p"),
        max_tokens=pick(max_tokens, "max_tokens"),
        trust_remote_code=pick(trust_remote_code, "trust_remote_code"),
        **rest,
    )
