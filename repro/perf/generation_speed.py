"""`repro bench generate`: generation throughput of vLLM against transformers, in one run.

Every backend generates the same token-id prompts with the same decodings from the same
checkpoint, each in a fresh process (vLLM lowers torch's thread count for its own serving;
a shared process would slow transformers down). Reported per backend and decoding: the
engine's start-up seconds (once), then per decoding after an untimed warm-up on 4 prompts,
the generation seconds, the completion tokens and tokens
per second; then the vLLM / transformers ratio of tokens per second and whether the two
produced the same completions, and on each engine beam1's tokens per second against greedy's
(the one-pass search's cost over plain greedy decoding; `beam1_in_engine` in the report says
whether vLLM ran it inside the engine or streamed). A decoding named `beam1-stepwise`
runs the step-wise search (the oracle, one engine round per token) for comparison. The load
average before and after is recorded: on a shared machine a busy CPU moves these figures.
Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import paths, tiny
from repro.config import evalconfig
from repro.config.settings import get_setting
from repro.config.validate import read_yaml
from repro.data import alpaca_preferences, tokenizers
from repro.errors import ReproError, unknown
from repro.evaluation import generation
from repro.evaluation.generation import base
from repro.evaluation.generation.decoding import Decoding
from repro.models import catalog
from repro.perf.train_speed import machine
from repro.train.launch import TINY_MODEL

PRESETS = paths.ROOT / "perf" / "generate-presets.yaml"
BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: str
    generation: str  # the generation config whose AlpacaEval template makes the prompts
    prompts: int
    max_new_tokens: int
    decodings: tuple[str, ...]
    transformers_batch_size: int
    backends: tuple[str, ...]
    max_position_embeddings: int | None = None  # the tiny model's 256 positions, unless set
    eos_logit_zero: bool = False  # the EOS's output row zeroed: never a top-2 candidate, no early stop
    # whose instructions fill the template: none (the tiny setting's toy ones), or a setting that
    # holds out AlpacaEval instructions from its training data (smol: real instructions, never trained on)
    instructions: str | None = None


def get_preset(name: str) -> Preset:
    data = read_yaml(PRESETS)
    if name not in data:
        raise unknown("benchmark preset", name, tuple(data))
    spec = dict(data[name])
    preset = Preset(
        name=name,
        decodings=tuple(spec.pop("decodings")),
        backends=tuple(spec.pop("backends")),
        **spec,
    )
    for backend in preset.backends:
        if backend not in BACKENDS:
            raise unknown(f"backend in preset {name}", backend, BACKENDS)
    return preset


def prepare(preset: Preset, folder: Path) -> tuple[Path, list[list[int]]]:
    """The checkpoint and the prompt ids every backend gets: the tiny model built here, or a
    built-in real one (repro:NAME, fetched and imported once per machine)."""
    if catalog.is_builtin(preset.model):  # the cached import is shared: never reshaped
        if preset.max_position_embeddings or preset.eos_logit_zero:
            raise ReproError(f"preset {preset.name}: only the tiny model is reshaped")
        model = Path(catalog.local_path(preset.model))
    elif preset.model == TINY_MODEL:
        model = tiny.save_policy(folder / "model", seed=0)
        if preset.max_position_embeddings or preset.eos_logit_zero:
            reshape(model, preset)
    else:
        raise ReproError(f"preset {preset.name}: model {preset.model} is neither {TINY_MODEL} nor built in")
    template = evalconfig.generation(preset.generation)["alpaca_eval"]["prompt_template"]
    instructions = _instructions(preset)
    texts = [
        template.replace("{instruction}", instructions[i % len(instructions)]) for i in range(preset.prompts)
    ]
    ids = base.encode(tokenizers.load(str(model)), texts, add_special_tokens=False)
    return model, ids


def _instructions(preset: Preset) -> list[str]:
    if preset.instructions is None:
        return tiny.eval_instructions(n=10_000)
    setting = get_setting(preset.instructions)
    folder = alpaca_preferences.default_source()
    if folder is None or not setting.dataset_options:
        raise ReproError(
            f"preset {preset.name}: {preset.instructions}'s held-out AlpacaEval instructions need shared/"
        )
    return alpaca_preferences.heldout_from(folder, alpaca_preferences.Binarization(**setting.dataset_options))


def reshape(model: Path, preset: Preset) -> None:
    """The preset's changes to the tiny checkpoint: more positions, an EOS that never wins."""
    # deferred: torch takes about 2 s to import
    import torch
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(model)
    if preset.max_position_embeddings:
        policy.config.max_position_embeddings = preset.max_position_embeddings  # RoPE: no new weights
    if preset.eos_logit_zero:
        with torch.no_grad():  # logit 0, about the median of a random head's: never in the top 2
            policy.lm_head.weight[policy.config.eos_token_id] = 0.0
    policy.save_pretrained(model)


def decoding_of(name: str, max_new_tokens: int) -> tuple[Any, str]:
    """A preset's decoding name: a mode, or `beam1-stepwise` (the oracle search)."""
    mode, _, search = name.partition("-")
    return Decoding(mode=mode, max_new_tokens=max_new_tokens), search or "one-pass"


def run_backend(
    preset: Preset, backend_name: str, model: Path, prompt_ids: list[list[int]]
) -> dict[str, Any]:
    """One backend in this process: start-up once, then every decoding."""
    start = time.perf_counter()
    kwargs: dict[str, Any] = (
        {"batch_size": preset.transformers_batch_size} if backend_name == "transformers" else {}
    )
    backend = generation.backend(backend_name, str(model), **kwargs)
    result: dict[str, Any] = {
        "backend": backend_name,
        "startup_seconds": time.perf_counter() - start,
        # vLLM: whether the one-pass beam1 ran inside the engine (beam_in_engine) or streamed
        "beam1_in_engine": getattr(backend, "beam1_in_engine", None),
        "runs": {},
    }
    for mode in preset.decodings:
        decoding, backend.beam1_search = decoding_of(mode, preset.max_new_tokens)
        # a short untimed run first: one-time costs (vLLM compiles its log-prob kernels on first
        # use) belong to start-up, not to the decoding measured after
        warm, _ = decoding_of(mode, min(8, preset.max_new_tokens))
        backend.complete(prompt_ids[:4], warm, lambda i, ids: None)
        start = time.perf_counter()
        completions = backend.complete(prompt_ids, decoding, lambda i, ids: None)
        seconds = time.perf_counter() - start
        tokens = sum(len(c) + 1 for c in completions)  # + the stop token, where one ended it
        tokens -= sum(1 for c in completions if len(c) >= preset.max_new_tokens)
        result["runs"][mode] = {
            "seconds": seconds,
            "completion_tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds else float("nan"),
            "completions": completions,
        }
    backend.close()
    return result


def run(preset: Preset, progress=None) -> dict[str, Any]:
    """Every backend of the preset in its own process; the report with ratios."""
    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="repro-genbench-") as tmp:
        folder = Path(tmp)
        model, ids = prepare(preset, folder)
        (folder / "prompts.json").write_text(json.dumps(ids))
        for k, backend in enumerate(preset.backends):
            if progress:
                progress(k, len(preset.backends), backend)
            out = folder / f"{backend}.json"
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            cmd = [
                sys.executable,
                "-m",
                "repro.perf.generation_speed",
                preset.name,
                backend,
                str(model),
                str(folder),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0 or not out.exists():
                tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
                raise ReproError(f"bench generate: the {backend} backend failed: {tail}")
            results[backend] = json.loads(out.read_text())
        if progress:
            progress(len(preset.backends), len(preset.backends), "")
    ratios = []
    if {"vllm", "transformers"} <= set(results):
        for mode in preset.decodings:
            a, b = results["vllm"]["runs"][mode], results["transformers"]["runs"][mode]
            ratios.append(
                {
                    "decoding": mode,
                    "vllm_over_transformers": a["tokens_per_second"] / b["tokens_per_second"],
                    "same_completions": sum(
                        x == y for x, y in zip(a["completions"], b["completions"], strict=True)
                    ),
                    "prompts": len(a["completions"]),
                }
            )
    beam_over_greedy = [
        {
            "backend": name,
            "decoding": mode,
            "over_greedy": r["runs"][mode]["tokens_per_second"] / r["runs"]["greedy"]["tokens_per_second"],
        }
        for name, r in results.items()
        for mode in preset.decodings
        if mode.startswith("beam1") and "greedy" in r["runs"]
    ]
    for r in results.values():  # the ids are for the comparison, not the report
        for run_ in r["runs"].values():
            run_.pop("completions")
    return {
        "preset": preset.name,
        "description": preset.description,
        "prompts": preset.prompts,
        "max_new_tokens": preset.max_new_tokens,
        "machine": machine(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "results": results,
        "ratios": ratios,
        "beam1_over_greedy": beam_over_greedy,
    }


def _main(argv: list[str]) -> int:
    """`python -m repro.perf.generation_speed PRESET BACKEND MODEL FOLDER`: one backend's measurements."""
    preset_name, backend, model, folder = argv
    preset = get_preset(preset_name)
    ids = json.loads((Path(folder) / "prompts.json").read_text())
    result = run_backend(preset, backend, Path(model), ids)
    (Path(folder) / f"{backend}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
