"""`repro bench train`: training speed and memory of repro against TRL 1.16, in one run.

Each contender trains a Llama-shaped random-init model for a preset's steps in a fresh
process (so peak memory is its own: RSS on CPU, peak allocated on GPU), on the same
synthetic pairs whose lengths are log-normal like UltraFeedback's. Contenders run in an
order that alternates between rounds, and every ratio compares two contenders of the same
run on the same machine. Throughput counts real (non-padding) tokens: prompt and response
of chosen and rejected.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import paths
from repro.config.validate import read_yaml
from repro.errors import ReproError, unknown
from repro.perf import load

PRESETS = paths.ROOT / "perf" / "train-presets.yaml"
CONTENDERS = (
    "repro-simpo",
    "trl-cpo-simpo",
    "repro-simpo-packed",
    "repro-dpo-precomputed",
    "trl-dpo-precomputed",
    "repro-dpo-live",
)
# (name, numerator, denominator, what the issue asks of it)
RATIOS = (
    ("SimPO: repro vs TRL CPOTrainer(simpo)", "repro-simpo", "trl-cpo-simpo"),
    ("DPO, precomputed reference: repro vs TRL DPOTrainer", "repro-dpo-precomputed", "trl-dpo-precomputed"),
    ("repro SimPO: packed vs padded", "repro-simpo-packed", "repro-simpo"),
    ("repro: SimPO vs DPO with a live reference", "repro-simpo", "repro-dpo-live"),
)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: dict[str, Any]
    dtype: str
    attn_implementation: str
    max_length: int
    max_prompt_length: int
    pairs_per_step: int
    warmup_steps: int
    steps: int
    zero3: bool
    contenders: tuple[str, ...]
    lengths: dict[str, float]
    requires_gpu: bool = False


def load_presets(path: Path = PRESETS) -> dict[str, Preset]:
    data = read_yaml(path)
    lengths = data.pop("lengths")
    presets = {}
    for name, spec in data.items():
        spec = dict(spec)
        contenders = tuple(spec.pop("contenders"))
        for c in contenders:
            if c not in CONTENDERS:
                raise unknown(f"contender in preset {name}", c, CONTENDERS)
        presets[name] = Preset(name=name, contenders=contenders, lengths=lengths, **spec)
    return presets


def get_preset(name: str) -> Preset:
    presets = load_presets()
    if name not in presets:
        raise unknown("benchmark preset", name, tuple(presets))
    return presets[name]


# ---------------------------------------------------------------------------- data


def synthetic_pairs(preset: Preset, n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """n pairs of token ids with log-normal prompt and response lengths, within the preset's limits."""
    rng = random.Random(seed)
    vocab = preset.model["vocab_size"]
    spec = preset.lengths

    def draw(median: float, sigma: float, low: int, high: int) -> int:
        return max(low, min(high, round(rng.lognormvariate(math.log(median), sigma))))

    def tokens(k: int) -> list[int]:
        return [rng.randrange(4, vocab) for _ in range(k)]  # 0-3: pad, bos, eos, unk

    pairs = []
    for _ in range(n):
        p = draw(spec["prompt_median"], spec["prompt_sigma"], 2, preset.max_prompt_length)
        room = preset.max_length - p - 1  # the EOS
        c = draw(spec["response_median"], spec["response_sigma"], 1, room)
        r = draw(spec["response_median"], spec["response_sigma"], 1, room)
        pairs.append({"prompt": tokens(p), "chosen": tokens(c), "rejected": tokens(r)})
    return pairs


def repro_rows(pairs: list[dict[str, list[int]]], eos: int = 2) -> list[dict[str, Any]]:
    rows = []
    for i, pair in enumerate(pairs):
        row: dict[str, Any] = {"index": i}
        for side in ("chosen", "rejected"):
            ids = pair["prompt"] + pair[side] + [eos]
            row[f"{side}_input_ids"] = ids
            row[f"{side}_labels"] = [-100] * len(pair["prompt"]) + ids[len(pair["prompt"]) :]
        rows.append(row)
    return rows


def text_rows(pairs: list[dict[str, list[int]]]) -> list[dict[str, str]]:
    """The same pairs as text for TRL's own tokenization (one word per token id)."""
    words = lambda ids: " ".join(f"w{t}" for t in ids)  # noqa: E731
    return [
        {
            "prompt": words(p["prompt"]),
            "chosen": " " + words(p["chosen"]),
            "rejected": " " + words(p["rejected"]),
        }
        for p in pairs
    ]


def word_tokenizer(vocab_size: int):
    # deferred: transformers takes about 1 s to import
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3} | {f"w{i}": i for i in range(4, vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tokens_per_step(preset: Preset, dataset) -> float:
    """Real tokens per step in the contender's own tokenized data (TRL adds its own BOS/EOS)."""
    columns = dataset.column_names
    if "chosen_input_ids" in columns:  # repro, TRL CPOTrainer: whole sequences
        total = sum(len(r) for c in ("chosen_input_ids", "rejected_input_ids") for r in dataset[c])
    else:  # TRL DPOTrainer: the prompt once per sequence
        total = sum(2 * len(r) for r in dataset["prompt_ids"])
        total += sum(len(r) for c in ("chosen_ids", "rejected_ids") for r in dataset[c])
    return total / (len(dataset) / preset.pairs_per_step)


def model_flops_per_token(preset: Preset, mean_length: float) -> float:
    """Training FLOPs per token, 6N with the LM head counted, plus causal attention scores."""
    m = preset.model
    h, layers, inter = m["hidden_size"], m["num_hidden_layers"], m["intermediate_size"]
    kv = h * m["num_key_value_heads"] // m["num_attention_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter
    head = h * m["vocab_size"]
    attention = layers * 2 * h * mean_length  # QK^T and AV over half the context on average, x2 flops
    return 6 * (layers * per_layer + head) + 3 * attention


# ---------------------------------------------------------------------------- one contender


def _deepspeed_config(pairs: int) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": pairs,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": False,
            "stage3_gather_16bit_weights_on_model_save": False,
        },
        "bf16": {"enabled": "auto"},
        "gradient_clipping": "auto",
    }


def run_contender(preset: Preset, contender: str, workdir: Path) -> dict[str, Any]:
    """Train one contender in this process and return its timings and peak memory."""
    import resource

    # deferred: torch takes about 2 s to import
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

    cuda = torch.cuda.is_available()
    dtype = getattr(torch, preset.dtype)
    n_pairs = preset.pairs_per_step * (preset.warmup_steps + preset.steps)
    pairs = synthetic_pairs(preset, n_pairs)
    torch.manual_seed(0)
    config = LlamaConfig(
        **preset.model,
        max_position_embeddings=preset.max_length,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.config._attn_implementation = preset.attn_implementation
    if cuda and not preset.zero3:
        model = model.cuda()

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)

    common = dict(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=preset.pairs_per_step,
        max_steps=preset.warmup_steps + preset.steps,
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=42,
        bf16=preset.dtype == "bfloat16",
        use_cpu=not cuda,
        dataloader_num_workers=0,
        deepspeed=_deepspeed_config(preset.pairs_per_step) if preset.zero3 else None,
    )
    tokenizer = word_tokenizer(preset.model["vocab_size"])
    if contender.startswith("repro"):
        trainer = _repro_trainer(preset, contender, model, tokenizer, pairs, common, workdir)
    else:
        trainer = _trl_trainer(preset, contender, model, tokenizer, pairs, common)
    trainer.add_callback(Timer())
    trainer.train()
    timed = times[preset.warmup_steps :]
    if cuda:
        peak, peak_kind = torch.cuda.max_memory_allocated(), "GPU peak allocated"
    else:
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak RSS"
    step = sum(timed) / len(timed)
    tokens = tokens_per_step(preset, trainer.train_dataset)
    result = {
        "contender": contender,
        "step_seconds": step,
        "tokens_per_step": tokens,
        "tokens_per_second": tokens / step,
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "steps_timed": len(timed),
        "engine": type(trainer.model_wrapped).__name__,
    }
    stage = getattr(trainer.model_wrapped, "zero_optimization_stage", None)
    if stage is not None:
        result["zero_stage"] = stage()
    if cuda:
        name = torch.cuda.get_device_name()
        peak_tflops = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        mean_len = tokens / (2 * preset.pairs_per_step)
        if peak_tflops:
            result["mfu"] = tokens / step * model_flops_per_token(preset, mean_len) / (peak_tflops * 1e12)
    return result


def _repro_trainer(preset, contender, model, tokenizer, pairs, common, workdir):
    import copy

    # deferred: datasets takes about 1 s to import
    from datasets import Dataset
    from transformers import TrainingArguments

    # deferred: repro.train.reference imports torch (seconds)
    from repro.train import reference
    from repro.train.trainer import PairCollator, PreferenceTrainer

    rows = repro_rows(pairs)
    collator = PairCollator(0, padding_free=contender.endswith("packed"))
    method, hp, ref = "simpo", {"beta": 2.0, "gamma_beta_ratio": 0.5, "log_probs": "mean"}, None
    if contender.startswith("repro-dpo"):
        method, hp = "dpo", {"beta": 0.1, "log_probs": "sum"}
        if contender.endswith("live"):
            ref = reference.LiveReference(copy.deepcopy(model), padding_free=collator.padding_free)
        else:
            ref = reference.ReferenceLogps(
                {"train": rows},
                collator,
                key="bench",
                meta={},
                path=workdir / "ref.pt",
                batch_size=preset.pairs_per_step,
            )
    args = TrainingArguments(**common, remove_unused_columns=False)
    return PreferenceTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        method=method,
        hyperparameters=hp,
        reference=ref,
    )


def _trl_trainer(preset, contender, model, tokenizer, pairs, common):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    # deferred: datasets takes about 1 s to import
    from datasets import Dataset

    data = Dataset.from_list(text_rows(pairs))
    if contender == "trl-cpo-simpo":
        # deferred: TRL imports torch and transformers
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(
            **common,
            loss_type="simpo",
            cpo_alpha=0.0,
            beta=2.0,
            simpo_gamma=1.0,
            max_length=preset.max_length,
        )
        return CPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    # deferred: TRL imports torch and transformers
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common, beta=0.1, precompute_ref_log_probs=True, max_length=preset.max_length)
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)


# ---------------------------------------------------------------------------- the whole run


def order(contenders: tuple[str, ...], rounds: int) -> list[str]:
    """Round r runs the contenders forwards when r is even, backwards when odd."""
    out: list[str] = []
    for r in range(rounds):
        out += list(contenders if r % 2 == 0 else reversed(contenders))
    return out


def check_device(preset: Preset) -> None:
    if preset.requires_gpu:
        # deferred: torch takes about 2 s to import
        import torch

        if not torch.cuda.is_available():
            raise ReproError(f"preset {preset.name} needs a CUDA GPU (this machine has none); try cpu-small")


def run(preset: Preset, *, rounds: int = 1, contenders: tuple[str, ...] | None = None, progress=None) -> dict:
    """Every contender in a fresh process, alternating; returns the report (results and ratios)."""
    chosen = contenders or preset.contenders
    check_device(preset)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in chosen}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(paths.ROOT), os.environ.get("PYTHONPATH", "")]),
        # glibc: serve allocations over 1 MiB by mmap, so freed tensors go back to the OS and
        # peak RSS tracks live memory, not the allocator's cache. The same for every contender.
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "1048576"),
    }
    schedule = order(chosen, rounds)
    readings: list[dict[str, Any]] = []  # load averages around each contender, read here
    for i, contender in enumerate(schedule):
        if progress:
            progress(i, len(schedule), contender)
        with tempfile.TemporaryDirectory(prefix="repro-bench-") as tmp:
            out = Path(tmp) / "result.json"
            cmd = [sys.executable, "-m", "repro.perf.train_speed", preset.name, contender, tmp, str(out)]
            before = load.averages()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            readings.append({"contender": contender, "before": before, "after": load.averages()})
            if proc.returncode != 0 or not out.exists():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise ReproError(f"benchmark contender {contender} failed: {last}")
            measured = json.loads(out.read_text())
            measured["load_before"], measured["load_after"] = readings[-1]["before"], readings[-1]["after"]
            runs[contender].append(measured)
    if progress:
        progress(len(schedule), len(schedule), "")
    return report(preset, runs, readings)


def report(
    preset: Preset, runs: dict[str, list[dict[str, Any]]], readings: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    results = {}
    for name, items in runs.items():
        best = min(items, key=lambda r: r["step_seconds"])  # the least-disturbed round
        results[name] = {
            **best,
            "rounds": len(items),
            "peak_memory_bytes": max(r["peak_memory_bytes"] for r in items),
        }
    ratios = []
    for label, a, b in RATIOS:
        if a in results and b in results:
            ra, rb = results[a], results[b]
            ratios.append(
                {
                    "comparison": label,
                    "a": a,
                    "b": b,
                    "throughput_ratio": ra["tokens_per_second"] / rb["tokens_per_second"],
                    "memory_ratio": ra["peak_memory_bytes"] / rb["peak_memory_bytes"],
                }
            )
    return {
        "preset": preset.name,
        "description": preset.description,
        "machine": machine(),
        "load": load.summary(readings or []),
        "results": results,
        "ratios": ratios,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def machine() -> dict[str, Any]:
    import platform

    # deferred: torch takes about 2 s to import
    import torch

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str]) -> int:
    """Worker: python -m repro.perf.train_speed PRESET CONTENDER WORKDIR RESULT_JSON."""
    preset_name, contender, workdir, out = argv
    preset = get_preset(preset_name)
    if preset.zero3:  # one-process "distributed" group for DeepSpeed
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    result = run_contender(preset, contender, Path(workdir))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
