"""Per-token and per-sequence log-probs of response tokens, as the SimPO trainer computes them.

`get_batch_logps` in the original: labels shifted by one against the logits, positions
labelled -100 (prompt and padding) masked out, log_softmax in fp32, gathered at the label.
"""

from __future__ import annotations

import torch
from torch import Tensor

from repro.train.objectives import SequenceLogps

IGNORE_INDEX = -100


def token_logps(logits: Tensor, targets: Tensor, ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """Log-probs of `targets` under `logits` at the same positions, and the mask of counted tokens.

    logits: (N, T, V); targets: (N, T). Returns (N, T) log-probs (0 where masked) and mask.
    """
    mask = targets != ignore_index
    safe = torch.where(mask, targets, 0)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def sequence_logps(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> SequenceLogps:
    """Summed log-probs and token counts of the labelled positions, labels shifted by one."""
    logp, mask = token_logps(logits[:, :-1], labels[:, 1:], ignore_index)
    return SequenceLogps(sum=logp.sum(-1), count=mask.sum(-1))


def split_pairs(stats: SequenceLogps) -> tuple[SequenceLogps, SequenceLogps]:
    """Chosen rows stacked over rejected rows (the concatenated forward) -> (chosen, rejected)."""
    half = stats.sum.shape[0] // 2
    return (
        SequenceLogps(stats.sum[:half], stats.count[:half]),
        SequenceLogps(stats.sum[half:], stats.count[half:]),
    )
