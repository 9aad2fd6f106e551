"""DPO, IPO and KTO against TRL 1.16's own trainers on a real tiny model (fp32, CPU).

Oracle: `trl.DPOTrainer._compute_loss` (loss_type sigmoid and ipo) and
`trl.KTOTrainer._compute_loss`, built offline with repro's tiny Llama and tokenizer, a
reference model perturbed away from the policy (so the loss is not ln 2), and TRL's own
collated batch. repro recomputes the loss from that batch with its own log-probs
(repro.train.logprobs: full logits, fp32 log_softmax; and repro.train.chunked, the trainer's path, which
never materializes them) and objectives; TRL goes through its fused, chunked LM head.
Conventions: TRL DPO rows are [chosen..., rejected...] with summed
log-probs; TRL IPO divides each log-ratio by the completion length (our IPO takes mean
log-probs, the same thing); TRL KTO is unpaired, so the dataset interleaves each pair's
chosen (label True) and rejected (label False) and the batch holds two of each, where the
mean over examples equals our mean over pairs; its KL point is mean(policy - reference)
over the mismatched rows, clamped at 0. Tolerance: loss 1e-5; every parameter gradient
atol 1e-5, rtol 1e-4.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from repro import tiny
from repro.data import tokenizers
from repro.train import chunked, objectives
from repro.train.head_tiles import Tile
from repro.train.logprobs import sequence_logps, split_pairs
from repro.train.objectives import Inputs, SequenceLogps

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

LOSS_TOL = {"atol": 1e-5, "rtol": 1e-5}
GRAD_TOL = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def setup():
    tok = tokenizers.adjust(tokenizers.build_tiny())
    model = tiny.build_model(len(tok), seed=0)
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return tok, model, ref, tiny.make_pairs(8, seed=3)


def common(tmp_path) -> dict:
    return {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "report_to": [],
        "max_length": 64,
    }


def trl_batch(trainer_cls, config, model, ref, tok, dataset):
    """TRL's trainer built offline on the tiny model, and its first collated (unshuffled) batch."""
    trainer = trainer_cls(
        model=model,
        ref_model=ref,
        args=config,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tok,
    )
    return trainer, next(iter(trainer.get_eval_dataloader()))


def grads_of(model, loss) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.detach().clone() for p in model.parameters()]


def logps(model, ids, attention, completion_mask, *, grad: bool, path: str = "plain") -> SequenceLogps:
    labels = ids.masked_fill(completion_mask == 0, -100)
    with torch.set_grad_enabled(grad):
        if path == "chunked":  # tiles of 5 tokens x 32 entries: several of each, the last ones partial
            batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}
            return chunked.sequence_logps(model, batch, chunk=Tile(5, 32))
        return sequence_logps(model(input_ids=ids, attention_mask=attention, use_cache=False).logits, labels)


def assert_same(model, ours, theirs):
    torch.testing.assert_close(ours.detach(), theirs.detach(), **LOSS_TOL)
    for g_ours, g_theirs in zip(grads_of(model, ours), grads_of(model, theirs), strict=True):
        torch.testing.assert_close(g_ours, g_theirs, **GRAD_TOL)


@pytest.mark.parametrize(
    ("loss_type", "method", "hp"),
    [
        ("sigmoid", "dpo", {"beta": 0.1}),
        ("sigmoid", "dpo", {"beta": 0.01}),
        ("ipo", "ipo", {"tau": 0.1, "log_probs": "mean"}),
    ],
)
@pytest.mark.parametrize("path", ["plain", "chunked"])
def test_dpo_family_matches_trl_dpo_trainer(setup, tmp_path, loss_type, method, hp, path):
    tok, model, ref, rows = setup
    dataset = datasets.Dataset.from_list(
        [
            {"prompt": r["chosen"][:-1], "chosen": r["chosen"][-1:], "rejected": r["rejected"][-1:]}
            for r in rows
        ]
    )
    beta = hp.get("beta", hp.get("tau"))
    args = trl.DPOConfig(**common(tmp_path), beta=beta, loss_type=[loss_type])
    trainer, batch = trl_batch(trl.DPOTrainer, args, model, ref, tok, dataset)
    model.train()
    theirs = trainer._compute_loss(trainer.model, batch, False)

    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    chosen, rejected = split_pairs(logps(model, ids, attention, completion, grad=True, path=path))
    ref_chosen, ref_rejected = split_pairs(logps(ref, ids, attention, completion, grad=False, path=path))
    ours = objectives.compute(method, Inputs(chosen, rejected, ref_chosen, ref_rejected), hp).loss
    assert abs(ours.item() - 0.6931) > 1e-3  # not the trivial step-0 value
    assert_same(model, ours, theirs)


def test_kto_matches_trl_kto_trainer(setup, tmp_path):
    tok, model, ref, rows = setup
    examples = []
    for r in rows:  # one desirable and one undesirable example per pair, interleaved
        examples.append({"prompt": r["chosen"][:-1], "completion": r["chosen"][-1:], "label": True})
        examples.append({"prompt": r["chosen"][:-1], "completion": r["rejected"][-1:], "label": False})
    dataset = datasets.Dataset.from_list(examples)
    args = trl.KTOConfig(**common(tmp_path), beta=0.1)
    trainer, batch = trl_batch(trl.KTOTrainer, args, model, ref, tok, dataset)
    labels = batch["label"].bool() if torch.is_tensor(batch["label"]) else torch.tensor(batch["label"])
    assert labels.sum().item() == len(labels) // 2
    model.train()
    theirs = trainer._compute_loss(trainer.model, batch, False)

    def select(stats: SequenceLogps, mask: torch.Tensor) -> SequenceLogps:
        return SequenceLogps(stats.sum[mask], stats.count[mask])

    ids, attention, completion = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    policy = logps(model, ids, attention, completion, grad=True)
    reference = logps(ref, ids, attention, completion, grad=False)
    kl_args = batch["KL_input_ids"], batch["KL_attention_mask"], batch["KL_completion_mask"]
    inputs = Inputs(
        select(policy, labels),
        select(policy, ~labels),
        select(reference, labels),
        select(reference, ~labels),
        kl_policy=logps(model, *kl_args, grad=False),
        kl_reference=logps(ref, *kl_args, grad=False),
    )
    out = objectives.compute("kto", inputs, {"beta": 0.1, "lambda_w": 1.0, "lambda_l": 1.0})
    assert out.metrics["kl"].item() >= 0
    assert_same(model, out.loss, theirs)
