"""Per-sequence log-probs through the LM head in tiles, never materializing B x T x V logits.

Memory in preference training is dominated by the logits: 4 sequences x 512 tokens x
128,256 vocabulary entries is 1 GiB in fp32, and the plain path (repro.train.logprobs) keeps
several such tensors for backward. Here only the positions whose label counts (response
tokens) go through the head, one tile of (tokens x vocabulary entries) at a time:

    log p(y_t) = z_t[y_t] - logsumexp(z_t),        z_t = W h_t   (softcapped: c tanh(z_t / c))
    dL/dz_t    = g_t (onehot(y_t) - softmax(z_t))

Two passes over the tiles. Forward: each token's log-sum-exp, accumulated online across
vocabulary blocks, and its target's logit. Backward: the tiles again, now with every
token's upstream gradient g_t, giving the head's and the hidden states' gradients.

Why not the gradient in the forward pass, as Liger's fused linear cross-entropy does: there
each token's loss gradient is known as soon as its logits are (a token-level loss). Every
repro objective is a function of per-sequence sums, and the preference term couples a pair's
two sequences, so g_t exists only once every token of both is scored. Liger's preference
losses get around it by taking one pair per chunk with the pair's whole logits (2 x T x V:
525 MB in fp32 at T = 512 and a 128k vocabulary), i.e. memory that grows with the sequence.
Two passes keep one tile, for any objective built on the sums (all nine here, the NLL term
included), at the cost of computing the logits twice, and leave the objective outside the
head. Forming the gradient in a second pass inside the forward would need the loss there and
would do the same work at the same memory (the head's gradient and one tile beside the body's
activations, either way).

Tiles loop over vocabulary blocks on the outside and tokens inside: each block of W is read
once per pass while it stays in cache, each block of the head's gradient is written once
(not read, added to and written back per token chunk, as chunking by tokens alone did), and
the matrix products stay large in the token dimension however small the tile is. So the tile
can be small (a few MiB) and fast at once; its size is chosen by measured throughput
(repro.train.head_tiles). All tile-sized work happens in one reused buffer.

The head is called as a module, once per forward, so DeepSpeed ZeRO-3 gathers its
partitioned weight around the call (and again for backward, since gradient flows into the
module's output) exactly as it does for the plain head; every rank makes the same calls.
A head tied to the input embeddings (SmolLM2, Gemma) gets its gradient here and the
embedding's from the body, added by autograd into the one parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from repro.train import head_tiles
from repro.train.head_tiles import Tile
from repro.train.logprobs import IGNORE_INDEX
from repro.train.objectives import SequenceLogps


def as_tile(chunk: int | Tile, vocab: int) -> Tile:
    """A Tile as given, or an int: that many tokens per tile over the whole vocabulary."""
    return chunk if isinstance(chunk, Tile) else Tile(tokens=int(chunk), vocab=vocab)


def _spans(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(start + size, total)


class _Tiles:
    """The logits of one tile at a time, written into one reused fp32 buffer."""

    def __init__(
        self, hidden: Tensor, weight: Tensor, bias: Tensor | None, softcap: float | None, tile: Tile
    ):
        self.hidden, self.weight, self.bias, self.softcap = hidden, weight, bias, softcap
        self.tile = tile
        rows, cols = min(hidden.shape[0], tile.tokens), min(weight.shape[0], tile.vocab)
        self.buffer = torch.empty(rows * cols, dtype=torch.float32, device=hidden.device)

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        """(vocabulary block, token span): blocks outside, so a block of W stays in cache."""
        for v0, v1 in _spans(self.weight.shape[0], self.tile.vocab):
            for t0, t1 in _spans(self.hidden.shape[0], self.tile.tokens):
                yield slice(v0, v1), slice(t0, t1)

    def logits(self, vocab: slice, tokens: slice, squash: Tensor | None = None) -> Tensor:
        """z for the tile, fp32, softcapped; with `squash`, also tanh(z_raw / c) into it."""
        h, w = self.hidden[tokens], self.weight[vocab]
        b = self.bias[vocab] if self.bias is not None else None
        rows, cols = h.shape[0], w.shape[0]
        z = self.buffer[: rows * cols].view(rows, cols)
        if w.dtype == torch.float32:
            if b is None:
                torch.mm(h, w.t(), out=z)
            else:
                torch.addmm(b, h, w.t(), out=z)
        else:  # products in the weight's dtype (bf16 on GPU), as nn.Linear computes them
            z.copy_(nn.functional.linear(h, w, b))
        if self.softcap:
            c = self.softcap
            if squash is not None:
                s = squash[: rows * cols].view(rows, cols)
                torch.tanh(z.div_(c), out=s)
                return torch.mul(s, c, out=z)
            z.div_(c).tanh_().mul_(c)
        return z


def _logsumexp(tiles: _Tiles, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Pass 1: every token's log-sum-exp over the vocabulary (online across blocks) and its
    target's logit, read from the same tile so both see identical logits."""
    n = tiles.hidden.shape[0]
    lse = torch.full((n,), float("-inf"), dtype=torch.float32, device=tiles.hidden.device)
    target = torch.zeros(n, dtype=torch.float32, device=tiles.hidden.device)
    for vocab, tokens in tiles:
        z = tiles.logits(vocab, tokens)
        t = targets[tokens] - vocab.start
        inside = (t >= 0) & (t < z.shape[1])  # a mask, not indices: no device sync on a GPU
        found = z.gather(1, t.clamp(0, z.shape[1] - 1)[:, None]).squeeze(1)
        target[tokens] = torch.where(inside, found, target[tokens])
        top = z.amax(-1)
        block = z.sub_(top[:, None]).exp_().sum(-1).log_().add_(top)
        lse[tokens] = torch.logaddexp(lse[tokens], block)
    return lse, target


class ChunkedHeadLogps(torch.autograd.Function):
    """log p(target | hidden) through a linear head, tile by tile; (n, H) -> (n,) in fp32.

    `chunk`: a Tile (tokens x vocabulary entries), or an int: that many tokens per tile over
    the whole vocabulary.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int | Tile, softcap: float | None):
        tile = as_tile(chunk, weight.shape[0])
        with torch.no_grad():
            lse, target = _logsumexp(_Tiles(hidden, weight, bias, softcap, tile), targets)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, target)
        ctx.tile, ctx.softcap = tile, softcap
        return target - lse

    @staticmethod
    def backward(ctx, grad_logps):
        hidden, weight, bias, targets, lse, target = ctx.saved_tensors
        softcap = ctx.softcap
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_b = need_b and bias is not None
        g = grad_logps.float()
        fp32 = weight.dtype == torch.float32
        # dz_t = g_t (f_t onehot(y_t) - q_t), q_t = softmax(z_t) [* (1 - s_t^2) when softcapped,
        # s = tanh(z_raw / c), f_t that factor at the target; f = 1 otherwise]. So
        #   grad W = sum_t g_t f_t onehot(y_t) h_t  -  q^T (g * h)      (the second part per block)
        #   grad h = g * (f * W[y]  -  q @ W)
        f = 1 - (target / softcap).square() if softcap else None
        scaled = (hidden.float() * -g[:, None]).to(weight.dtype)  # -g * h: q^T of it is grad W's block
        tiles = _Tiles(hidden, weight, bias, softcap, ctx.tile)
        squash = torch.empty_like(tiles.buffer) if softcap else None
        grad_w = torch.empty(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b else None
        mixed = torch.zeros(hidden.shape[0], weight.shape[1], dtype=torch.float32, device=hidden.device)
        if need_w and hidden.shape[0] == 0:
            grad_w.zero_()
        for vocab, tokens in tiles:
            q = tiles.logits(vocab, tokens, squash).sub_(lse[tokens, None]).exp_()
            if squash is not None:
                s = squash[: q.numel()].view_as(q)
                q.mul_(s.square_().neg_().add_(1))
            w = weight[vocab]
            first = tokens.start == 0
            if fp32:
                if need_w:
                    if first:
                        torch.mm(q.t(), scaled[tokens], out=grad_w[vocab])
                    else:
                        grad_w[vocab].addmm_(q.t(), scaled[tokens])
                if need_h:
                    mixed[tokens].addmm_(q, w)
            else:
                qw = q.to(weight.dtype)
                if need_w:
                    part = (qw.t() @ scaled[tokens]).float()
                    if first:
                        grad_w[vocab].copy_(part)
                    else:
                        grad_w[vocab] += part
                if need_h:
                    mixed[tokens] += (qw @ w).float()
            if need_b:
                grad_b[vocab] -= q.t() @ g[tokens]
        gf = g if f is None else g * f
        if need_w:
            grad_w.index_add_(0, targets, hidden.float() * gf[:, None])
            grad_w = grad_w.to(weight.dtype)
        if need_b:
            grad_b.index_add_(0, targets, gf)
            grad_b = grad_b.to(bias.dtype)
        grad_h = None
        if need_h:
            grad_h = (weight[targets].float() * gf[:, None] - mixed * g[:, None]).to(hidden.dtype)
        return grad_h, grad_w, grad_b, None, None, None


def head_logps(
    hidden: Tensor, labels: Tensor, head: nn.Module, chunk: int | Tile, softcap: float | None
) -> Tensor:
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
def _head_as_logps(model: nn.Module, labels: Tensor, chunk: int | Tile | None):
    """Inside: the model's `logits` are the (B, T, 1) next-label log-probs, computed in tiles."""
    head = model.get_output_embeddings()
    config = model.config
    softcap = getattr(config, "final_logit_softcapping", None)
    # config's sizes, not head.weight.shape: ZeRO-3 partitions the weight outside forward
    tile = chunk or head_tiles.choose(
        config.hidden_size, config.vocab_size, head.weight.dtype, head.weight.device, ChunkedHeadLogps
    )

    def forward(hidden: Tensor) -> Tensor:
        return head_logps(hidden, labels, head, tile, softcap).unsqueeze(-1)

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
    chunk: int | Tile | None = None,
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
