"""Reference log-probs for the DPO family: computed once, cached by content, never reused stale.

The cache key hashes what determines the values: the tokenized datasets (their exact ids),
the tokenization settings, the log-prob aggregation inputs, and the SHA-256 of the
reference weights on disk. A cache file whose recorded key differs from the run's key is
refused with an error (never silently reused); a missing one is computed before the first
optimizer step through the training engine itself (under ZeRO-3 every rank takes part).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from repro.errors import ReproError
from repro.train import packing
from repro.train.logprobs import split_pairs


def dataset_fingerprint(rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the tokenized rows exactly as training sees them."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True).encode())
    return digest.hexdigest()


def cache_key(
    *, fingerprints: dict[str, str], tokenization: dict[str, Any], weights: str
) -> tuple[str, dict]:
    meta = {"datasets": fingerprints, "tokenization": tokenization, "reference_weights_sha256": weights}
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest(), meta


class ReferenceLogps:
    """Per-example reference log-prob sums for each split, looked up by example index."""

    def __init__(
        self, datasets: dict[str, Any], collator, *, key: str, meta: dict, path: Path, batch_size: int
    ):
        self.datasets = datasets
        self.collator = collator
        self.key = key
        self.meta = meta
        self.path = Path(path)
        self.batch_size = batch_size
        self.table: dict[str, dict[str, torch.Tensor]] | None = None
        self.source = "unset"

    # -------------------------------------------------------------------- cache

    def load(self) -> bool:
        """Load the cache file if there is one; refuse it when its key is not this run's."""
        if not self.path.exists():
            return False
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file is not a cache we can trust
            raise ReproError(
                f"{self.path}: unreadable reference cache ({type(exc).__name__}); delete it"
            ) from None
        if saved.get("key") != self.key:
            raise ReproError(
                f"{self.path}: stale reference log-probs (computed for key {str(saved.get('key'))[:12]}, "
                f"this run needs {self.key[:12]}: different data, tokenization or reference weights); "
                "delete the file or point --reference-cache elsewhere"
            )
        self.table = saved["table"]
        self.source = f"cache {self.path}"
        return True

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"key": self.key, "meta": self.meta, "table": self.table}, tmp)
        os.replace(tmp, self.path)  # atomic: a killed run leaves no torn cache

    # -------------------------------------------------------------------- compute

    def ensure(self, trainer, model) -> None:
        """Load or compute the table; every rank must call this at the same point."""
        if self.table is not None:
            return
        accelerator = trainer.accelerator
        if self.load():
            return
        # deferred: repro.train.trainer imports transformers and datasets
        from repro.train.trainer import forward_logps

        was_training = model.training
        model.eval()
        table: dict[str, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            for split, dataset in self.datasets.items():
                loader = accelerator.prepare_data_loader(
                    DataLoader(dataset, batch_size=self.batch_size, collate_fn=self.collator, shuffle=False)
                )
                parts: dict[str, list[torch.Tensor]] = {"index": [], "chosen": [], "rejected": [], "kl": []}
                for batch in loader:
                    chosen, rejected = split_pairs(
                        forward_logps(model, batch, chunked_head=trainer.chunked_logprobs)
                    )
                    values = {"index": batch["index"], "chosen": chosen.sum, "rejected": rejected.sum}
                    if "kl_input_ids" in batch:
                        values["kl"] = forward_logps(
                            model, batch, prefix="kl_", chunked_head=trainer.chunked_logprobs
                        ).sum
                    gathered = accelerator.gather_for_metrics(values)
                    for name, value in gathered.items():
                        parts[name].append(value.detach().float().cpu())
                index = torch.cat(parts["index"]).long()
                size = len(dataset)
                columns = {}
                for name in ("chosen", "rejected", "kl"):
                    if parts[name]:
                        column = torch.full((size,), float("nan"))
                        column[index] = torch.cat(parts[name])
                        columns[name] = column
                if torch.isnan(columns["chosen"]).any():
                    raise ReproError(f"reference log-probs missing for some {split} examples")
                table[split] = columns
        model.train(was_training)
        self.table = table
        self.source = "computed"
        if accelerator.is_main_process:
            self.save()
        accelerator.wait_for_everyone()

    def lookup(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.table is not None
        columns = self.table[split]
        idx = index.cpu()
        return {name: column[idx] for name, column in columns.items()}

    def for_batch(
        self, trainer, model, split: str, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        self.ensure(trainer, model)
        return self.lookup(split, batch["index"])


class LiveReference:
    """A resident frozen reference model run on every batch, as vanilla DPO trainers do.

    Not what `repro train` uses (it precomputes); kept so that `repro bench train` measures
    what precomputation saves, on the same trainer.
    """

    def __init__(self, model: torch.nn.Module, padding_free: bool = False):
        self.model = model.eval().requires_grad_(False)
        if padding_free:
            packing.use_for_packed_rows(self.model)
        self.key, self.source = None, "live"

    def for_batch(
        self, trainer, model, split: str, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        # deferred: repro.train.trainer imports transformers and datasets
        from repro.train.trainer import forward_logps

        with torch.no_grad():
            chosen, rejected = split_pairs(forward_logps(self.model, batch))
            values = {"chosen": chosen.sum, "rejected": rejected.sum}
            if "kl_input_ids" in batch:
                values["kl"] = forward_logps(self.model, batch, prefix="kl_").sum
        return values
