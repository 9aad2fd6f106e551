"""Chunked log-probs, padding-free packed pairs and the training benchmark.

Oracles and tolerances:
- Chunked vs plain log-probs (repro.train.logprobs: full B x T x V logits, fp32 log_softmax, the
  path checked against TRL and the SimPO repo in test_trainer_parity / test_losses_parity):
  per-sequence sums and every parameter gradient within 1e-5 absolute (fp32), for chunk
  sizes that divide the token count, do not, and exceed it; with Gemma-2's final logit
  softcapping and with a biased head.
- Liger 0.8.5's fused linear SimPO loss (compute_nll_loss=False, compiled=False), an
  independent chunked implementation: the SimPO loss and head/hidden gradients from our
  chunked log-probs match within Liger's own fp32 tolerance (atol 1e-5, rtol 5e-4).
- Packed vs padded rows (attention confined to each sequence by position ids, eager and
  sdpa): the same sums within 1e-5 and gradients within 1e-5.
- The ZeRO-3 path (lm_head partitioned across 2 processes) is covered end to end by
  tests/test_train.py (padded and packed curves equal within 1e-4) and tests/test_trainer_parity.py.
- `repro bench train --preset smoke`: every contender runs and the report holds its ratios;
  speed and memory targets are measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

from repro.perf import train_speed
from repro.train import chunked, losses, packing
from repro.train.logprobs import sequence_logps as plain_logps
from repro.train.trainer import PairCollator

TOL = {"atol": 1e-5, "rtol": 0.0}


# Both test models: 2 layers, hidden 32, vocabulary 300, grouped-query attention.
SHAPE = {
    "vocab_size": 300,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def llama(attn: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**SHAPE, attn_implementation=attn)).float()


def gemma2() -> Gemma2ForCausalLM:
    torch.manual_seed(0)
    cfg = Gemma2Config(**SHAPE, head_dim=8, final_logit_softcapping=5.0, attn_implementation="eager")
    return Gemma2ForCausalLM(cfg).float()


def padded_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 300, (4, 20), generator=g)
    attention = torch.ones_like(ids)
    attention[1, 15:] = 0
    attention[3, 9:] = 0
    labels = ids.masked_fill(attention == 0, -100)
    labels[:, :6] = -100
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def objective(stats) -> torch.Tensor:
    """Any smooth function of the sums: its gradient reaches every chunk with different weights."""
    return (stats.sum * torch.linspace(0.5, 1.5, stats.sum.shape[0])).sum() + 0.01 * (stats.sum**2).sum()


def grads(model, loss) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("build", [llama, gemma2], ids=["llama", "gemma2-softcap"])
@pytest.mark.parametrize("chunk", [1, 7, 16, 10_000])
def test_chunked_matches_full_logits(build, chunk):
    model, batch = build(), padded_batch()
    ours = chunked.sequence_logps(model, batch, chunk=chunk)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    theirs = plain_logps(logits, batch["labels"])
    torch.testing.assert_close(ours.sum, theirs.sum, **TOL)
    assert torch.equal(ours.count, theirs.count)
    for a, b in zip(grads(model, objective(ours)), grads(model, objective(theirs)), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert getattr(model.config, "final_logit_softcapping", None) in (None, 5.0)  # restored after the call


def test_chunked_head_with_bias_matches_autograd():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(13, 8, generator=g, requires_grad=True)
    weight = torch.randn(50, 8, generator=g, requires_grad=True)
    bias = torch.randn(50, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (13,), generator=g)
    upstream = torch.randn(13, generator=g)
    ours = chunked.ChunkedHeadLogps.apply(hidden, weight, bias, targets, 4, 3.0)
    mine = torch.autograd.grad((ours * upstream).sum(), (hidden, weight, bias))
    z = torch.nn.functional.linear(hidden, weight, bias)
    z = torch.tanh(z / 3.0) * 3.0
    theirs = z.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    ref = torch.autograd.grad((theirs * upstream).sum(), (hidden, weight, bias))
    torch.testing.assert_close(ours, theirs, **TOL)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_chunked_head_in_bf16_matches_autograd_within_bf16_resolution():
    """bf16 weights (the GPU path): products in bf16, the weight gradient accumulated in fp32
    across chunks. Oracle: plain autograd on the same bf16 tensors; tolerance one bf16 ulp
    at the gradients' scale (rtol 1e-2, atol 2e-2)."""
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(40, 16, generator=g).bfloat16().requires_grad_()
    weight = torch.randn(100, 16, generator=g).bfloat16().requires_grad_()
    targets = torch.randint(0, 100, (40,), generator=g)
    upstream = torch.randn(40, generator=g)
    ours = chunked.ChunkedHeadLogps.apply(hidden, weight, None, targets, 7, None)
    mine = torch.autograd.grad((ours * upstream).sum(), (hidden, weight))
    theirs = (hidden @ weight.t()).float().log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
    ref = torch.autograd.grad((theirs * upstream).sum(), (hidden, weight))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    for a, b in zip(mine, ref, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=2e-2)


def test_chunked_simpo_matches_liger_fused_loss():
    liger = pytest.importorskip("liger_kernel.chunked_loss")
    model, batch = llama(), padded_batch(seed=3)
    beta, gamma = 2.0, 1.0
    # Ours: chunked log-probs through the model, SimPO on per-token means.
    stats = chunked.sequence_logps(model, batch, chunk=7)
    half = stats.sum.shape[0] // 2
    mean = stats.sum / stats.count
    ours = losses.simpo_loss(mean[:half], mean[half:], beta=beta, gamma_beta_ratio=gamma / beta).mean()
    # Liger: the same last hidden states and head weight through its fused SimPO loss.
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    fused = liger.LigerFusedLinearSimPOLoss(beta=beta, gamma=gamma, compute_nll_loss=False, compiled=False)
    theirs = fused(model.lm_head.weight, hidden[:, :-1], batch["labels"][:, 1:])[0]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=5e-4)
    for a, b in zip(grads(model, ours), grads(model, theirs), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=5e-4)


def features(seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i, (lc, lr) in enumerate([(8, 15), (11, 13), (17, 6)]):
        c = torch.randint(0, 300, (lc,), generator=g).tolist()
        r = torch.randint(0, 300, (lr,), generator=g).tolist()
        rows.append(
            {
                "index": i,
                "chosen_input_ids": c,
                "rejected_input_ids": r,
                "chosen_labels": [-100] * 4 + c[4:],
                "rejected_labels": [-100] * 3 + r[3:],
            }
        )
    return rows


@pytest.mark.parametrize("attn", ["eager", "sdpa", "gemma2"])
def test_packed_pairs_match_padded(attn):
    """Llama switches to repro_varlen attention; Gemma 2 (attention softcapping) keeps
    transformers' block-diagonal mask over the packed row."""
    model, rows = (gemma2() if attn == "gemma2" else llama(attn)), features()
    used = packing.use_for_packed_rows(model)
    assert used == ("eager" if attn == "gemma2" else packing.NAME)
    packed_batch = PairCollator(0, padding_free=True)(rows)
    assert packed_batch["input_ids"].shape[0] == 1 and "attention_mask" not in packed_batch
    assert packed_batch["input_ids"].shape[1] == sum(
        len(r["chosen_input_ids"]) + len(r["rejected_input_ids"]) for r in rows
    )
    packed = chunked.sequence_logps(model, packed_batch, chunk=9)
    padded = chunked.sequence_logps(model, PairCollator(0)(rows), chunk=9)
    torch.testing.assert_close(packed.sum, padded.sum, **TOL)
    assert torch.equal(packed.count, padded.count)
    for a, b in zip(grads(model, objective(packed)), grads(model, objective(padded)), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_varlen_attention_on_right_padded_rows_matches_the_masked_model():
    """KTO's mismatched pairs stay padded under --padding-free: several right-padded rows
    through repro_varlen (causal, no padding mask) give the real tokens what sdpa with the
    padding mask gives them."""
    batch = padded_batch(seed=4)
    masked = chunked.sequence_logps(llama("sdpa"), batch)
    varlen_model = llama("sdpa")
    packing.use_for_packed_rows(varlen_model)
    varlen = chunked.sequence_logps(varlen_model, batch)
    torch.testing.assert_close(varlen.sum, masked.sum, **TOL)


def test_packing_refuses_a_labelled_first_token():
    rows = features()
    rows[1]["rejected_labels"][0] = rows[1]["rejected_input_ids"][0]
    with pytest.raises(ValueError, match="unlabelled"):
        PairCollator(0, padding_free=True)(rows)


@pytest.mark.e2e
def test_bench_train_smoke(cli, tmp_path):
    out = tmp_path / "bench.json"
    proc = cli("bench", "train", "--preset", "smoke", "--output", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    assert set(report["results"]) == set(train_speed.CONTENDERS)  # every contender
    for result in report["results"].values():
        assert result["steps_timed"] == 2
        assert result["tokens_per_second"] > 0 and result["peak_memory_bytes"] > 100 * 2**20
    assert len(report["ratios"]) == 4
    assert all(r["throughput_ratio"] > 0 and r["memory_ratio"] > 0 for r in report["ratios"])
    # the machine's load around every contender, read by the parent (issue 23, section 3)
    readings = report["load"]["readings"]
    assert sorted(r["contender"] for r in readings) == sorted(train_speed.CONTENDERS)  # one round
    assert all(len(r["before"]) == 3 and len(r["after"]) == 3 for r in readings)
    assert isinstance(report["load"]["busy"], bool) and report["load"]["cores"] == os.cpu_count()
    assert all(len(r["load_before"]) == 3 for r in report["results"].values())


@pytest.mark.e2e
def test_bench_train_zero3_path(cli, tmp_path):
    """The GPU preset's path (DeepSpeed ZeRO-3 in one process, tied head) on CPU."""
    out = tmp_path / "bench.json"
    proc = cli("bench", "train", "--preset", "smoke-zero3", "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert len(report["results"]) == 4
    for result in report["results"].values():
        assert (result["engine"], result["zero_stage"]) == ("DeepSpeedEngine", 3)
    assert "ZeRO-3" in proc.stdout and "ratios" in proc.stdout


def test_bench_load_summary_says_when_the_machine_was_busy(monkeypatch):
    """Hand-chosen readings on a pretend 2-core machine: quiet below 1.0 before the first
    measurement and 2.5 at any reading (QUIET_START, QUIET_PEAK per core), busy otherwise."""
    from repro.perf import load

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    quiet = [
        {"before": [0.4, 0.3, 0.2], "after": [1.9, 0.9, 0.4]},
        {"before": [1.7, 1, 0.5], "after": [2.1, 1, 1]},
    ]
    summary = load.summary(quiet)
    assert (summary["busy"], summary["note"], summary["max_1min"]) == (False, None, 2.1)
    started_busy = [{"before": [1.2, 1, 1], "after": [2.0, 1, 1]}]
    assert (
        load.summary(started_busy)["busy"] and "1.20 before the first" in load.summary(started_busy)["note"]
    )
    peaked = [{"before": [0.2, 0, 0], "after": [2.6, 1, 1]}]
    assert load.summary(peaked)["busy"] and "up to 2.60" in load.summary(peaked)["note"]
    assert load.summary([])["busy"] is False  # no readings (a platform without load averages)


def test_bench_train_unknown_preset_is_one_line(cli):
    proc = cli("bench", "train", "--preset", "cpu-smal")
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "cpu-smal" in proc.stderr and "cpu-small" in proc.stderr
    if not torch.cuda.is_available():
        gpu = cli("bench", "train", "--preset", "gpu-1b")
        assert gpu.returncode != 0 and gpu.stderr.strip().count("\n") == 0 and "GPU" in gpu.stderr
