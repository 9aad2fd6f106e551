"""One contender of `repro bench train`, in this process: train, time every step, report.

Run by repro.perf.train_speed as a script (`python -P train_worker.py SPEC.json RESULT.json`)
with PYTHONPATH set to the tree under test: the working tree, or a temporary worktree of
another revision (`--against`). This file always comes from the working tree, so both sides
build the same model and data and time the same window; from the tree under test it imports
only the code being measured (repro.train: the trainer, the reference log-probs, and, to say
where a step's time goes, the chunked head and the objectives). It takes the preset as data
(SPEC.json), not by name, so a revision that never had the preset still runs it.
Where a step's time and memory go is measured by repro/perf/step_timing.py, loaded by path
from beside this file: the working tree's too.

`python -P train_worker.py --peak DTYPE RESULT.json` measures the machine's matrix-multiply
peak instead (FLOP/s of large square products, best of several), in a process of its own
with the same threads as the contenders.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any


def _sibling(name: str):
    """The module `name` beside this file, loaded by path: run as a script, this file is the working
    tree's while `repro` on the path may be another revision's (`--against`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"_repro_bench_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __package__:  # imported: `repro bench train` reads the workload and its FLOPs from here
    from repro.perf import step_timing
else:  # the worker script
    step_timing = _sibling("step_timing")

# ---------------------------------------------------------------------------- data


def synthetic_pairs(spec: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """n pairs of token ids with log-normal prompt and response lengths, within the preset's limits."""
    rng = random.Random(seed)
    vocab = spec["model"]["vocab_size"]
    lengths = spec["lengths"]

    def draw(median: float, sigma: float, low: int, high: int) -> int:
        return max(low, min(high, round(rng.lognormvariate(math.log(median), sigma))))

    def tokens(k: int) -> list[int]:
        return [rng.randrange(4, vocab) for _ in range(k)]  # 0-3: pad, bos, eos, unk

    pairs = []
    for _ in range(n):
        p = draw(lengths["prompt_median"], lengths["prompt_sigma"], 2, spec["max_prompt_length"])
        room = spec["max_length"] - p - 1  # the EOS
        c = draw(lengths["response_median"], lengths["response_sigma"], 1, room)
        r = draw(lengths["response_median"], lengths["response_sigma"], 1, room)
        pairs.append({"prompt": tokens(p), "chosen": tokens(c), "rejected": tokens(r)})
    return pairs


def workload_pairs(spec: dict[str, Any]) -> list[dict[str, list[int]]]:
    """The pairs every contender trains on: warm-up and timed steps."""
    return synthetic_pairs(spec, spec["pairs_per_step"] * (spec["warmup_steps"] + spec["steps"]))


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
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3} | {f"w{i}": i for i in range(4, vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tokens_per_step(spec: dict[str, Any], dataset) -> float:
    """Real tokens per step in the contender's own tokenized data (TRL adds its own BOS/EOS)."""
    columns = dataset.column_names
    if "chosen_input_ids" in columns:  # repro, TRL CPOTrainer: whole sequences
        total = sum(len(r) for c in ("chosen_input_ids", "rejected_input_ids") for r in dataset[c])
    else:  # TRL DPOTrainer: the prompt once per sequence
        total = sum(2 * len(r) for r in dataset["prompt_ids"])
        total += sum(len(r) for c in ("chosen_ids", "rejected_ids") for r in dataset[c])
    return total / (len(dataset) / spec["pairs_per_step"])


# ---------------------------------------------------------------------------- model FLOPs


def model_flops(spec: dict[str, Any], pairs: list[dict[str, list[int]]]) -> dict[str, float]:
    """Training FLOPs per step the model needs, by part, averaged over the workload's steps.

    body: 6 x (the decoder layers' weights) per token; attention: the causal score and value
    products, 6 x d_model x L(L+1) per layer and sequence of L tokens (forward 2 d L(L+1)/2 for
    each of QK^T and AV, backward twice that); head: 6 x hidden x vocabulary per scored token
    (the response tokens and EOS whose log-probs the objective uses: a trainer that projects
    prompt tokens through the head too does work the model does not need). Counted on the
    workload's tokens (prompt, response, EOS), the same for every contender.
    """
    m = spec["model"]
    h, layers, inter = m["hidden_size"], m["num_hidden_layers"], m["intermediate_size"]
    heads = m["num_attention_heads"]
    head_dim = m.get("head_dim") or h // heads
    kv = m["num_key_value_heads"] * head_dim
    per_layer = h * heads * head_dim * 2 + 2 * h * kv + 3 * h * inter
    body = attention = head = 0.0
    for pair in pairs:
        for side in ("chosen", "rejected"):
            length = len(pair["prompt"]) + len(pair[side]) + 1
            scored = len(pair[side]) + 1
            body += 6 * layers * per_layer * length
            attention += 6 * layers * heads * head_dim * length * (length + 1)
            head += 6 * h * m["vocab_size"] * scored
    steps = len(pairs) / spec["pairs_per_step"]
    return {"body": body / steps, "attention": attention / steps, "head": head / steps}


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


def run_contender(spec: dict[str, Any], contender: str, workdir: Path) -> dict[str, Any]:
    """Train one contender in this process and return its timings and peak memory."""
    import resource

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback

    cuda = torch.cuda.is_available()
    dtype = getattr(torch, spec["dtype"])
    pairs = workload_pairs(spec)
    torch.manual_seed(0)
    config = LlamaConfig(
        **{"max_position_embeddings": spec["max_length"], **spec["model"]},
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).to(dtype)
    model.config._attn_implementation = spec["attn_implementation"]
    if cuda and not spec["zero3"]:
        model = model.cuda()

    times: list[float] = []
    cpu_times: list[float] = []  # CPU seconds of all the process's threads per step
    memory = None if cuda else step_timing.Memory()
    phases = step_timing.Phases(memory)
    repro = contender.startswith("repro")

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            phases.begin(repro)
            self.cpu = time.process_time()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)
            cpu_times.append(time.process_time() - self.cpu)
            phases.end(times[-1])

    common = dict(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=spec["pairs_per_step"],
        max_steps=spec["warmup_steps"] + spec["steps"],
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=42,
        bf16=spec["dtype"] == "bfloat16",
        use_cpu=not cuda,
        dataloader_num_workers=0,
        deepspeed=_deepspeed_config(spec["pairs_per_step"]) if spec["zero3"] else None,
        gradient_checkpointing=spec.get("gradient_checkpointing", False),
        gradient_checkpointing_kwargs={"use_reentrant": False}
        if spec.get("gradient_checkpointing")
        else None,
    )
    tokenizer = word_tokenizer(spec["model"]["vocab_size"])
    if repro:
        trainer = _repro_trainer(spec, contender, model, tokenizer, pairs, common, workdir)
    else:
        trainer = _trl_trainer(spec, contender, model, tokenizer, pairs, common)
    step_timing.instrument(trainer, phases, repro)
    trainer.add_callback(Timer())
    trainer.train()
    warmup = spec["warmup_steps"]
    timed = times[warmup:]
    if cuda:
        peak, peak_kind = torch.cuda.max_memory_allocated(), "GPU peak allocated"
    else:
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, memory.peak() if memory else 0)
        peak_kind = "peak RSS"
    step = sum(timed) / len(timed)
    tokens = tokens_per_step(spec, trainer.train_dataset)
    result = {
        "contender": contender,
        "step_seconds": step,
        "step_seconds_each": timed,
        # less sensitive to other work on the cores than wall time (but it counts the threads'
        # spinning at parallel regions' barriers, which rises under load too)
        "cpu_seconds_per_step": sum(cpu_times[warmup:]) / len(timed),
        "tokens_per_step": tokens,
        "tokens_per_second": tokens / step,
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "steps_timed": len(timed),
        "engine": type(trainer.model_wrapped).__name__,
        "phases": step_timing.summarize_phases(phases.steps[warmup:]),
        # the warm-up steps' segments too: AdamW's states appear in the first step
        "memory_peaks": dict(memory.peaks) if memory else {},
        "threads": torch.get_num_threads(),
    }
    import repro  # the tree under test: the working tree's, or --against's worktree

    result["repro_path"] = str(Path(repro.__file__).resolve().parent.parent)
    stage = getattr(trainer.model_wrapped, "zero_optimization_stage", None)
    if stage is not None:
        result["zero_stage"] = stage()
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
    return result


def _repro_trainer(spec, contender, model, tokenizer, pairs, common, workdir):
    import copy

    from datasets import Dataset
    from transformers import TrainingArguments

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
                batch_size=spec["pairs_per_step"],
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


def _trl_trainer(spec, contender, model, tokenizer, pairs, common):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset

    data = Dataset.from_list(text_rows(pairs))
    if contender == "trl-cpo-simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(
            **common,
            loss_type="simpo",
            cpo_alpha=0.0,
            beta=2.0,
            simpo_gamma=1.0,
            max_length=spec["max_length"],
        )
        return CPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common, beta=0.1, precompute_ref_log_probs=True, max_length=spec["max_length"])
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)


# ---------------------------------------------------------------------------- matmul peak


def matmul_peak(dtype_name: str) -> dict[str, Any]:
    """FLOP/s of square products (best of several sizes and repeats) in this dtype."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = getattr(torch, dtype_name)
    sizes = (4096, 8192) if cuda else (1024, 2048)
    best: dict[str, float] = {}
    per_cpu_second = 0.0  # FLOPs per CPU second of all threads (CPU only): what other work cannot take
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up
        fastest = cpu = float("inf")
        for _ in range(5):
            if cuda:
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            torch.mm(a, b, out=out)
            if cuda:
                torch.cuda.synchronize()
            fastest = min(fastest, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - start_cpu)
        best[str(n)] = 2 * n**3 / fastest
        if not cuda and cpu > 0:
            per_cpu_second = max(per_cpu_second, 2 * n**3 / cpu)
    return {
        "flops": max(best.values()),
        "by_size": best,
        "flops_per_cpu_second": per_cpu_second or None,
        "dtype": dtype_name,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


def main(argv: list[str]) -> int:
    if argv[0] == "--peak":
        _, dtype_name, out = argv
        Path(out).write_text(json.dumps(matmul_peak(dtype_name)))
        return 0
    spec_path, out = argv
    job = json.loads(Path(spec_path).read_text())
    spec = job["preset"]
    if spec["zero3"]:  # one-process "distributed" group for DeepSpeed
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    result = run_contender(spec, job["contender"], Path(job["workdir"]))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
