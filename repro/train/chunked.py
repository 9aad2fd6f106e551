"""Per-sequence log-probs through the LM head in chunks, never materializing B x T x V logits.

Memory in preference training is dominated by the logits: 4 sequences x 512 tokens x
128,256 vocabulary entries is 1 GiB in fp32, and the plain path (repro.train.logprobs) keeps
several such tensors for backward. Here only the positions whose label counts (response
tokens) go through the head, `chunk` tokens at a time; forward keeps each token's
log-sum-exp, backward recomputes that chunk's logits from the saved hidden states:

    log p(y_t) = z_t[y_t] - logsumexp(z_t),        z_t = W h_t   (softcapped: c tanh(z_t / c))
    dL/dz_t    = g_t (onehot(y_t) - softmax(z_t))

The head is called as a module, once per forward, so DeepSpeed ZeRO-3 gathers its
partitioned weight around the call (and again for backward, since gradient flows into the
module's output) exactly as it does for the plain head; every rank makes the same calls.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from repro.train.logprobs import IGNORE_INDEX
from repro.train.objectives import SequenceLogps

# Logits per chunk: chunk tokens = budget // vocabulary. 16 MiB in fp32 on CPU (32 tokens at
# Llama 3's 128,256 entries: as fast as 65 or more, measured by `repro bench train`; the head's
# backward, where a step's memory peaks, holds one chunk beside the head's gradient), 512 MiB
# on GPU, where larger matrix products keep the device busy.
LOGIT_BUDGET = {"cpu": 2**22, "cuda": 2**27}


def chunk_tokens(vocab_size: int, requested: int | None = None, device: str = "cpu") -> int:
    """Tokens per chunk: the requested number, or as many as fit the device's logit budget."""
    return requested if requested else max(16, LOGIT_BUDGET.get(device, LOGIT_BUDGET["cpu"]) // vocab_size)


def _logits(hidden: Tensor, weight: Tensor, bias: Tensor | None, softcap: float | None) -> Tensor:
    z = nn.functional.linear(hidden, weight, bias).float()
    return torch.tanh(z / softcap) * softcap if softcap else z


class ChunkedHeadLogps(torch.autograd.Function):
    """log p(target | hidden) through a linear head, chunk by chunk; (n, H) -> (n,) in fp32."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int, softcap: float | None):
        logps = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logps)
        with torch.no_grad():
            for s in range(0, hidden.shape[0], chunk):
                part = slice(s, s + chunk)
                z = _logits(hidden[part], weight, bias, softcap)
                lse[part] = torch.logsumexp(z, dim=-1)
                logps[part] = z.gather(-1, targets[part, None]).squeeze(-1) - lse[part]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk, ctx.softcap = chunk, softcap
        return logps

    @staticmethod
    def backward(ctx, grad_logps):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        chunk, softcap = ctx.chunk, ctx.softcap
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b and bias is not None else None
        for s in range(0, hidden.shape[0], chunk):
            h, t, g = hidden[s : s + chunk], targets[s : s + chunk], grad_logps[s : s + chunk].float()
            z = nn.functional.linear(h, weight, bias).float()
            squash = None
            if softcap:
                squash = torch.tanh(z / softcap)
                z = squash * softcap
            # In place, one chunk-sized buffer: dz = -g * softmax(z) + g * onehot(t)
            dz = z.sub_(lse[s : s + chunk, None]).exp_().mul_(-g[:, None])
            dz.scatter_add_(-1, t[:, None], g[:, None])
            if squash is not None:  # d(c tanh(x / c))/dx = 1 - tanh^2
                dz.mul_(squash.square_().neg_().add_(1))
            dz = dz.to(weight.dtype)
            if grad_h is not None:
                grad_h[s : s + chunk] = dz @ weight
            if grad_w is not None:  # accumulated in fp32 across chunks; each product in the weight's dtype
                if weight.dtype == torch.float32:
                    grad_w.addmm_(dz.t(), h)
                else:
                    grad_w += dz.t() @ h
            if grad_b is not None:
                grad_b += dz.float().sum(0)
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        grad_b = grad_b.to(bias.dtype) if grad_b is not None else None
        return grad_h, grad_w, grad_b, None, None, None


def head_logps(hidden: Tensor, labels: Tensor, head: nn.Module, chunk: int, softcap: float | None) -> Tensor:
    """Per-position log-probs of the next label, (B, T) hidden -> (B, T) with 0 where not counted.

    Position t holds log p(labels[t + 1]); the last position and unlabelled ones hold 0.
    """
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    selected = ChunkedHeadLogps.apply(
        hidden[:, :-1][mask], head.weight, getattr(head, "bias", None), targets[mask], chunk, softcap
    )
    dense = torch.zeros(labels.shape, dtype=torch.float32, device=hidden.device)
    return dense.index_put((*mask.nonzero(as_tuple=True),), selected) if selected.numel() else dense


@contextmanager
def _head_as_logps(model: nn.Module, labels: Tensor, chunk: int | None):
    """Inside: the model's `logits` are the (B, T, 1) next-label log-probs, computed in chunks."""
    head = model.get_output_embeddings()
    config = model.config
    softcap = getattr(config, "final_logit_softcapping", None)
    # config.vocab_size, not head.weight.shape: ZeRO-3 partitions the weight outside forward
    size = chunk_tokens(config.vocab_size, chunk, head.weight.device.type)

    def forward(hidden: Tensor) -> Tensor:
        return head_logps(hidden, labels, head, size, softcap).unsqueeze(-1)

    head.forward = forward  # an instance attribute: the module's hooks (ZeRO-3 gathering) still run
    if softcap:
        config.final_logit_softcapping = None  # applied inside, before the log-softmax
    try:
        yield
    finally:
        del head.forward
        if softcap:
            config.final_logit_softcapping = softcap


def sequence_logps(
    model: nn.Module,
    batch: dict[str, Any],
    *,
    prefix: str = "",
    chunk: int | None = None,
) -> SequenceLogps:
    """Summed response log-probs and token counts per sequence of a padded or packed batch.

    Padded: rows are sequences. Packed (`position_ids` and `sequence_ids` present): one row
    holds every sequence, positions restart at each, and `sequence_ids` maps tokens to them.
    `model` may be wrapped (DeepSpeed engine, DDP): it is called as given.
    """
    ids, labels = batch[f"{prefix}input_ids"], batch[f"{prefix}labels"]
    inner = getattr(model, "module", model)
    packed = f"{prefix}sequence_ids" in batch
    kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": False}
    if packed:  # no attention mask: transformers confines attention to each sequence from position_ids
        kwargs["position_ids"] = batch[f"{prefix}position_ids"]
    else:
        kwargs["attention_mask"] = batch[f"{prefix}attention_mask"]
    with _head_as_logps(inner, labels, chunk):
        per_token = model(**kwargs).logits.squeeze(-1)  # (B, T)
    counted = labels[:, 1:] != IGNORE_INDEX
    if not packed:
        return SequenceLogps(sum=per_token.sum(-1), count=counted.sum(-1))
    seq = batch[f"{prefix}sequence_ids"][:, 1:][counted]
    n = int(batch[f"{prefix}num_sequences"])
    sums = per_token.new_zeros(n).index_add(0, seq, per_token[:, :-1][counted])
    return SequenceLogps(sum=sums, count=torch.bincount(seq, minlength=n))
