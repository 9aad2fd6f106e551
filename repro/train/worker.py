"""The training process: `accelerate launch -m repro.train.worker RUN_DIR/run.json` on every rank.

Reads the run file written by repro.train.launch (resolved recipe + paths), builds the
TrainingArguments first (so ZeRO-3 partitions the model as it loads), tokenizes the data
with the setting's rules, trains, evaluates on the held-out split, saves consolidated
weights that transformers loads, and writes metrics.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from accelerate import PartialState
from transformers import AutoModelForCausalLM, TrainingArguments

from repro import hashing, io, library_warnings
from repro.config.methods import get_method
from repro.config.runconfig import RunFile
from repro.data import preference, tokenizers
from repro.errors import ReproError
from repro.train import checkpoints, lifetime, preemption, reference, trackers
from repro.train.outcome import TrainingOutcome


def shuffled(rows: list[Any], seed: int) -> list[Any]:
    """alignment/data.py shuffles train and test with a hard-coded seed (42) via datasets."""
    order = np.random.default_rng(seed).permutation(len(rows))  # datasets.Dataset.shuffle's generator
    return [rows[i] for i in order]


def tokenize_split(pipeline, rows: list[Any], *, mismatched_pairs: bool) -> tuple[list[dict], dict]:
    examples, stats = pipeline.run(rows)
    out = []
    for i, ex in enumerate(examples):
        item = {"index": i, **ex.as_dict()}
        out.append(item)
    if mismatched_pairs:  # KTO's: prompt i with the chosen completion of example i+1 (TRL's KL pairing)
        for i, item in enumerate(out):
            nxt = out[(i + 1) % len(out)]
            prompt_len = item["chosen_labels"].count(-100)
            completion = [
                t
                for t, label in zip(nxt["chosen_input_ids"], nxt["chosen_labels"], strict=True)
                if label != -100
            ]
            ids = item["chosen_input_ids"][:prompt_len] + completion
            item["kl_input_ids"] = ids[: pipeline.max_length]
            item["kl_labels"] = ([-100] * prompt_len + completion)[: pipeline.max_length]
    return out, stats.as_dict()


def trainer_is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def fix_cpu_deepspeed_state() -> None:
    """accelerate on CPU + DeepSpeed initializes the process group (via deepspeed.comm) but keeps
    backend None, so it reports one process: the sampler would not shard the data and gathers
    would fail. Its state is shared (Borg), so correcting it once fixes every later reader
    (TrainingArguments, Trainer, Accelerator)."""

    state = PartialState()
    if torch.cuda.is_available() or not dist.is_initialized():
        return
    if state.num_processes != dist.get_world_size():
        state.num_processes = dist.get_world_size()
        state.process_index = dist.get_rank()
        state.local_process_index = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        state.backend = dist.get_backend()


def materialize_tiny(run: RunFile) -> None:
    """The tiny model's weights (seeded random init) where `repro train` left its tokenizer:
    rank 0 writes them once, before TrainingArguments registers ZeRO-3 (so they are built as
    a plain model, as they always were), and every rank waits for them."""
    from repro import tiny
    from repro.train.launch import TINY_MODEL

    if run.config.model_name_or_path != TINY_MODEL:
        return
    if trainer_is_main():
        tiny.save_weights(Path(run.paths.model), seed=run.config.seed)
    PartialState().wait_for_everyone()


PHASES = 5  # the start-up before the first step, as the launcher's progress shows it


def phase(number: int, text: str) -> None:
    """Rank 0 says what is starting (`REPRO_PHASE n/N text`: the launcher's start-up bar)."""
    if trainer_is_main():
        print(f"REPRO_PHASE {number}/{PHASES} {text}", flush=True)


def checkpoint_to_resume(trainer_dir: Path, config_hash: str) -> str | None:
    """The last checkpoint of an interrupted run of this exact config, or None for a fresh start.

    Checkpoints written for another config are refused: resuming them would mix two runs.
    """

    stamp = trainer_dir / "config_hash"
    if not trainer_dir.is_dir():
        return None
    last = checkpoints.last_complete(trainer_dir)  # a half-written one (killed mid-write) is not
    if last is None:
        return None
    recorded = stamp.read_text().strip() if stamp.exists() else None
    if recorded != config_hash:
        raise ReproError(
            f"{trainer_dir} holds checkpoints of another config ({(recorded or 'unknown')[:10]}, this run is "
            f"{config_hash[:10]}); use another output directory or delete it"
        )
    return str(last)


def engine_info(trainer) -> dict[str, Any]:
    """What actually trained: the DeepSpeed engine and its ZeRO stage, or plain PyTorch."""
    engine = trainer.model_wrapped
    stage = engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else None
    return {
        "class": type(engine).__name__,
        "deepspeed": trainer.is_deepspeed_enabled,
        "zero_stage": stage,
        "device": str(trainer.args.device),
    }


def training_arguments(run: RunFile, resume: str | None):
    """HF TrainingArguments first, so ZeRO-3 partitions the model as it loads."""
    config, batch = run.config, run.config.batch
    return TrainingArguments(
        output_dir=str(Path(run.paths.output_dir) / "trainer"),
        per_device_train_batch_size=batch.per_device,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=batch.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=float(
            config.warmup_ratio
        ),  # a float in [0, 1) is a ratio (warmup_ratio before transformers 5)
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps or -1,
        optim=config.optim,
        bf16=config.bf16 and torch.cuda.is_available(),
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if run.eval_during_training else "no",
        eval_on_start=resume is None,  # the starting point on the held-out split, through the training engine
        eval_steps=config.eval_steps,
        save_strategy="steps",  # resumable checkpoints (model, optimizer, RNG and data position)
        save_steps=config.checkpoint_steps,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        deepspeed=run.paths.deepspeed_config,
        report_to=config.report_to if trainer_is_main() else [],  # rank 0 reports
        run_name=trackers.run_name(config),
        remove_unused_columns=False,
        disable_tqdm=True,  # the launcher draws one progress bar from ProgressLines
        dataloader_num_workers=0,
        max_grad_norm=1.0,
        accelerator_config={"use_configured_state": True},  # keep the state fix_cpu_deepspeed_state corrected
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
    )


def tokenized_splits(run: RunFile, tokenizer) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Train and held-out splits, shuffled as the original did and tokenized by the setting's rules."""
    config = run.config
    pipeline = preference.Pipeline.for_config(tokenizer, config, config.tokenization)
    mismatched = get_method(config.method).mismatched_pairs  # recipes/methods.yaml's trait
    splits, stats = {}, {}
    for name, split in (("train", config.train_split), ("eval", config.test_split)):
        rows = preference.load_rows(
            config.dataset, split, Path(run.paths.data_dir), revision=config.dataset_commit
        )
        splits[name], stats[name] = tokenize_split(
            pipeline, shuffled(rows, config.data_shuffle_seed), mismatched_pairs=mismatched
        )
        if not splits[name]:
            raise ReproError(f"no valid rows in the {name} split of {config.dataset}")
    return splits, stats


def load_model(run: RunFile):
    config = run.config
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    attention = config.attn_implementation
    if attention == "flash_attention_2" and not torch.cuda.is_available():
        attention = "sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        run.paths.model,
        revision=config.model_hub_revision,  # a local folder ignores it
        dtype=dtype.get(config.torch_dtype or "float32"),
        attn_implementation=attention,
    )
    model.config.use_cache = False
    return model


def reference_logps(run: RunFile, splits: dict[str, list[dict]], collator):
    """The DPO family's reference log-probs, computed once and cached by content."""
    config = run.config
    if not config.reference_model:
        return None
    key, meta = reference.cache_key(
        fingerprints={k: reference.dataset_fingerprint(v) for k, v in splits.items()},
        tokenization={
            "mode": config.tokenization,
            "max_length": config.max_length,
            "max_prompt_length": config.max_prompt_length,
            "kl_pairs": get_method(config.method).mismatched_pairs,
        },
        weights=hashing.weights_sha256(run.paths.model),
    )
    cache = Path(run.paths.reference_cache or Path(run.paths.cache_dir) / f"reference-{key[:16]}.pt")
    return reference.ReferenceLogps(
        splits, collator, key=key, meta=meta, path=cache, batch_size=config.per_device_eval_batch_size
    )


def final_evaluation(trainer) -> dict[str, Any]:
    """The trained weights' held-out metrics. When the periodic evaluation ran at the last step
    it measured these same weights: its entry is taken (less its step) instead of a second pass
    over the held-out split, which gives the same numbers and costs as much as the first; else
    a pass now."""
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry:
            if entry.get("step") == trainer.state.global_step > 0:
                return {k: v for k, v in entry.items() if k != "step"}
            break
    return trainer.evaluate()


def write_metrics(
    trainer, out_dir: Path, result, evaluation, seconds, data_stats, ref, resume, tracked
) -> None:
    history = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    before = next((h for h in trainer.state.log_history if "eval_loss" in h), {})
    TrainingOutcome(
        train=dict(history[-1]) if history else {},
        train_summary=result.metrics,
        eval=evaluation,
        eval_before_training=before,
        steps=trainer.state.global_step,
        train_seconds=round(seconds, 2),
        world_size=trainer.accelerator.num_processes,
        engine=engine_info(trainer),
        data=data_stats,
        reference={"key": ref.key, "source": ref.source} if ref else None,
        resumed_from=resume,
        log_history=trainer.state.log_history,
        trackers=tracked,
    ).write(out_dir)


def _finish_processes() -> None:
    if dist.is_initialized():  # without this, gloo threads can abort the interpreter at exit
        dist.barrier()
        dist.destroy_process_group()


def _preempted(trainer, out_dir: Path, step: int) -> int:
    """Stopped on request with a checkpoint at `step`: say so, leave no model, exit 0 (the job
    script requeues; a failure exit would be read as a real failure)."""
    if trainer.accelerator.is_main_process:
        io.write_json(
            out_dir / preemption.MARKER,
            {"step": step, "checkpoint": f"checkpoint-{step}", "stop_file": str(preemption.stop_file())},
        )
        print(f"REPRO_PREEMPTED {step}", flush=True)
    trainer.accelerator.wait_for_everyone()
    _finish_processes()
    return 0


def main(run_file: str) -> int:
    """setup (arguments, data, model, reference) -> train -> evaluate -> save."""
    # deferred: datasets, and repro.train.trainer which imports it, take about 1 s to import
    from datasets import Dataset

    from repro.train.trainer import PairCollator, PreferenceTrainer, ProgressLines

    lifetime.die_with_parent()  # a killed launcher takes every rank with it
    library_warnings.silence()  # train.log holds what the run says, not 200 deprecation notes
    phase(1, "processes started: reading the run file and the tokenizer")
    run = RunFile.read(Path(run_file))
    config, out_dir = run.config, Path(run.paths.output_dir)
    lifetime.hold_workers_lock(out_dir)  # the next launcher waits for this process to be gone
    resume = checkpoint_to_resume(out_dir / "trainer", config.config_hash)
    fix_cpu_deepspeed_state()
    materialize_tiny(run)
    args = training_arguments(run, resume)
    tokenizer = tokenizers.load(run.paths.tokenizer, revision=config.tokenizer_hub_revision)
    phase(2, "tokenizing the data")
    splits, data_stats = tokenized_splits(run, tokenizer)
    phase(3, "loading the model (ZeRO-3 partitions it)")
    model = load_model(run)
    collator = PairCollator(tokenizer.pad_token_id, padding_free=config.padding_free)
    if config.reference_model:
        phase(4, "reference log-probs (computed once, cached)")
    ref = reference_logps(run, splits, collator)

    if trainer_is_main():
        (out_dir / "trainer").mkdir(parents=True, exist_ok=True)
        (out_dir / "trainer" / "config_hash").write_text(config.config_hash)
        (out_dir / preemption.MARKER).unlink(missing_ok=True)
        for path in checkpoints.remove_leftovers(out_dir / "trainer"):
            print(f"repro: removed {path.name}, an incomplete checkpoint (the run was killed writing it)")
        print(f"REPRO_RESUMED_FROM {Path(resume).name if resume else 'none'}", flush=True)
    callbacks = [ProgressLines()]
    stop = preemption.stop_file()
    if stop is not None:  # a SLURM job: its warning signal asks for a checkpoint and a requeue
        callbacks.append(preemption.StopOnRequest(stop))
    phase(5, "building the DeepSpeed engine")
    trainer = PreferenceTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=Dataset.from_list(splits["train"]),
        eval_dataset=Dataset.from_list(splits["eval"]),
        processing_class=tokenizer,
        method=config.method,
        hyperparameters=config.hyperparameters,
        reference=ref,
        chunked_logprobs=config.chunked_logprobs,
        callbacks=callbacks,
    )
    start = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - start
    if stop is not None and callbacks[-1].preempted:
        return _preempted(trainer, out_dir, callbacks[-1].stopped_at)
    evaluation = final_evaluation(trainer)
    trainer.save_model(str(out_dir / "model"))  # ZeRO-3: consolidated 16-bit (fp32 on CPU) weights

    if trainer.accelerator.is_main_process:
        tracked = trackers.finish(trainer)
        tokenizer.save_pretrained(out_dir / "model")
        write_metrics(trainer, out_dir, result, evaluation, seconds, data_stats, ref, resume, tracked)
    trainer.accelerator.wait_for_everyone()
    _finish_processes()
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1])
    except ReproError as exc:
        sys.stderr.write(f"repro: error: {exc}\n")
        code = 1
    # Every output is written and closed by now. Leave without the interpreter's teardown:
    # on CPU, gloo/DeepSpeed worker threads can still be joinable there and abort the
    # process ("terminate called without an active exception"), failing a finished run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
