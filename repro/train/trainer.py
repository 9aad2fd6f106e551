"""The preference trainer: one transformers.Trainer for all nine methods.

Per micro-batch: chosen rows stacked over rejected rows, one forward, per-sequence
log-probs of the response tokens, the method's objective (repro.train.objectives). Reference
log-probs (DPO family) are computed once, before the first optimizer step, through the
same (ZeRO-3) engine while the policy still equals the reference, and cached on disk by
a content key (repro.train.reference). Metrics are the SimPO trainer's, averaged over every
rank (the original logged rank 0 only).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import rotate_checkpoints

from repro import pauses
from repro.train import checkpoints, chunked, logprobs, objectives, packing
from repro.train.logprobs import IGNORE_INDEX, split_pairs
from repro.train.objectives import Inputs, SequenceLogps


def _pad(rows: list[list[int]], value: int, length: int) -> torch.Tensor:
    return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)


class PairCollator:
    """Stacks a micro-batch's chosen sequences over its rejected ones, padded or packed.

    Padded (the original's layout): rows right-padded to the longest sequence. Packed
    (`padding_free`): every sequence in one row with no padding; `position_ids` restart at
    each sequence (transformers then confines attention to it: FlashAttention varlen on GPU,
    a block-diagonal mask elsewhere) and `sequence_ids` say which sequence a token is in.
    """

    def __init__(self, pad_token_id: int, padding_free: bool = False):
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features]
        labels = [f["chosen_labels"] for f in features] + [f["rejected_labels"] for f in features]
        batch = self._pack(ids, labels) if self.padding_free else self._pad(ids, labels)
        batch["index"] = torch.tensor([f["index"] for f in features], dtype=torch.long)
        if "kl_input_ids" in features[0]:  # KTO: mismatched (prompt, completion) pairs, padded
            kl = self._pad([f["kl_input_ids"] for f in features], [f["kl_labels"] for f in features])
            batch.update({f"kl_{k}": v for k, v in kl.items()})
        return batch

    def _pad(self, ids: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
        length = max(len(r) for r in ids)
        return {
            "input_ids": _pad(ids, self.pad_token_id, length),
            "attention_mask": _pad([[1] * len(r) for r in ids], 0, length),
            "labels": _pad(labels, IGNORE_INDEX, length),
        }

    @staticmethod
    def _pack(ids: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
        # A sequence's first token must be unlabelled: the position before it (the previous
        # sequence's last token) would otherwise be scored on predicting it.
        if any(row[0] != IGNORE_INDEX for row in labels):
            raise ValueError("padding-free packing needs every sequence to start with an unlabelled token")
        flat = lambda rows: torch.tensor([t for r in rows for t in r], dtype=torch.long)[None]  # noqa: E731
        return {
            "input_ids": flat(ids),
            "position_ids": flat([list(range(len(r))) for r in ids]),
            "labels": flat(labels),
            "sequence_ids": flat([[i] * len(r) for i, r in enumerate(ids)]),
            "num_sequences": torch.tensor(len(ids)),
        }


def forward_logps(
    model, batch: dict[str, torch.Tensor], prefix: str = "", chunked_head: bool = True
) -> SequenceLogps:
    """Per-sequence response log-probs of a collated batch: chunked through the LM head, or
    (padded rows only) from the full logits as the original computed them."""
    if chunked_head or f"{prefix}sequence_ids" in batch:
        return chunked.sequence_logps(model, batch, prefix=prefix)
    out = model(
        input_ids=batch[f"{prefix}input_ids"],
        attention_mask=batch[f"{prefix}attention_mask"],
        use_cache=False,
    )
    return logprobs.sequence_logps(out.logits, batch[f"{prefix}labels"])


class ProgressLines(TrainerCallback):
    """One "REPRO_STEP n/total" line per optimizer step on rank 0, for the launcher's progress bar."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(f"REPRO_STEP {state.global_step}/{state.max_steps}", flush=True)
        pauses.pause("train.step")  # kill-and-resume tests only (repro.pauses)


class PreferenceTrainer(Trainer):
    """transformers.Trainer with a preference objective; `reference` supplies pi_ref log-probs."""

    def __init__(
        self,
        *args,
        method: str,
        hyperparameters: dict[str, Any],
        reference=None,
        chunked_logprobs: bool = True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.chunked_logprobs = chunked_logprobs
        self.method = method
        self.hp = objectives.with_defaults(method, hyperparameters)
        self.reference = reference  # repro.train.reference.ReferenceLogps, or None for reference-free methods
        self._stored: dict[str, dict[str, list[torch.Tensor]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        # Our loss is a mean over the micro-batch's pairs: Trainer must scale it by the
        # accumulation steps itself instead of expecting a sum over num_items_in_batch.
        self.model_accepts_loss_kwargs = False
        if getattr(self.data_collator, "padding_free", False):  # attention per packed sequence
            packing.use_for_packed_rows(self.model)

    # -------------------------------------------------------------------- loss

    def _inputs(self, model, batch: dict[str, torch.Tensor], split: str) -> Inputs:
        stats = forward_logps(model, batch, chunked_head=self.chunked_logprobs)
        chosen, rejected = split_pairs(stats)
        ref_chosen = ref_rejected = kl_policy = kl_reference = None
        if self.reference is not None:
            ref = self.reference.for_batch(self, model, split, batch)
            ref_chosen = SequenceLogps(ref["chosen"].to(chosen.sum), chosen.count)
            ref_rejected = SequenceLogps(ref["rejected"].to(rejected.sum), rejected.count)
            if "kl_input_ids" in batch:
                with torch.no_grad():
                    kl_policy = forward_logps(model, batch, prefix="kl_", chunked_head=self.chunked_logprobs)
                kl_reference = SequenceLogps(ref["kl"].to(kl_policy.sum), kl_policy.count)
        return Inputs(chosen, rejected, ref_chosen, ref_rejected, kl_policy, kl_reference)

    def _kl(self, inputs: Inputs) -> torch.Tensor | None:
        """KTO's reference point, averaged over every rank (as TRL gathers it)."""
        if inputs.kl_policy is None or inputs.kl_reference is None:
            return None
        how = self.hp["log_probs"]
        local = (inputs.kl_policy.aggregate(how) - inputs.kl_reference.aggregate(how)).mean().detach()
        return self.accelerator.gather(local.reshape(1)).mean()

    def _loss(self, model, batch, split: str):
        inputs = self._inputs(model, batch, split)
        kl = self._kl(inputs)
        if kl is not None:
            inputs = Inputs(inputs.chosen, inputs.rejected, inputs.ref_chosen, inputs.ref_rejected, kl=kl)
        out = objectives.compute(self.method, inputs, self.hp)
        for name, value in objectives.metrics(out, inputs, self.hp["log_probs"]).items():
            self._stored[split][name].append(value.detach().cpu())
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = self._loss(model, inputs, "train" if model.training else "eval")
        return (out.loss, {"losses": out.losses}) if return_outputs else out.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            out = self._loss(model, inputs, "eval")
        return out.loss.detach(), None, None

    # -------------------------------------------------------------------- checkpoints

    def _save_checkpoint(self, model, trial) -> None:
        """Write checkpoint-N aside (trainer/.staging/) and publish it in one rename once every
        rank wrote its part, so a kill never leaves a half-written checkpoint-N (see
        repro.train.checkpoints); older ones are rotated only after it is in place."""
        run_dir = Path(self._get_output_dir(trial=trial))
        staging = run_dir / checkpoints.STAGING
        name = f"checkpoint-{self.state.global_step}"
        self._get_output_dir = lambda trial=None: str(staging)  # the Trainer writes under staging/
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir
        pauses.kill_at("state", self.state.global_step)  # kill-and-resume tests only
        self.accelerator.wait_for_everyone()  # every rank's shards are written
        if self.args.should_save:
            checkpoints.publish(staging / name, run_dir / name)
            with contextlib.suppress(OSError):
                staging.rmdir()  # empty now: a staging folder that remains was left by a kill
            pauses.kill_at("published", self.state.global_step)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
            )
        self.accelerator.wait_for_everyone()

    def _save_optimizer_and_scheduler(self, output_dir) -> None:
        pauses.kill_at("model", self.state.global_step)  # the weights are written
        super()._save_optimizer_and_scheduler(output_dir)

    def _save_rng_state(self, output_dir) -> None:
        pauses.kill_at("optimizer", self.state.global_step)  # the optimizer too
        super()._save_rng_state(output_dir)

    # -------------------------------------------------------------------- metrics

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        # evaluate(metric_key_prefix=P) logs P_loss: our eval metrics take the same prefix
        eval_prefix = next(
            (k[: -len("loss")] for k in logs if k.endswith("_loss") and k != "train_loss"), None
        )
        split = "train" if eval_prefix is None else "eval"
        prefix = eval_prefix or ""
        stored = self._stored[split]
        if stored:
            names = sorted(stored)
            local = torch.stack([torch.stack(stored[n]).mean() for n in names]).to(self.accelerator.device)
            averaged = self.accelerator.gather(local.unsqueeze(0)).mean(dim=0)  # every rank, not rank 0 only
            for name, value in zip(names, averaged.tolist(), strict=True):
                if name != "loss":
                    logs[f"{prefix}{name}"] = value
            stored.clear()
        super().log(logs, *args, **kwargs)
