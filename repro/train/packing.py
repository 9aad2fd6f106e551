"""Attention for padding-free packed rows on any device: causal attention run per sequence.

A packed row holds several sequences, positions restarting at 0 for each. With FlashAttention
2 transformers runs its varlen kernel from the position ids. Otherwise it builds a
block-diagonal mask over the whole row, whose attention costs (sum of lengths)^2 where the
sequences need only the sum of their squares: on CPU that erases what packing saves. This
attention ("repro_varlen") cuts the row at each position 0 and runs causal SDPA per sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor

NAME = "repro_varlen"


def varlen_attention(
    module: torch.nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    position_ids: Tensor | None = None,
    **kwargs,
) -> tuple[Tensor, None]:
    """query (B, heads, T, d), key/value (B, kv heads, T, d) -> (B, T, heads, d).

    One row: cut at every position 0. Several rows (KTO's padded mismatched pairs): each row
    is one right-padded sequence, for which causal attention without a padding mask gives
    the real tokens exactly what they get with it (they never attend to later positions).
    """
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    length = query.shape[2]
    starts = [0]
    if query.shape[0] == 1 and position_ids is not None:
        starts = (position_ids.reshape(-1)[:length] == 0).nonzero().flatten().tolist()
        starts = starts if starts and starts[0] == 0 else [0, *starts]
    bounds = [*starts, length]
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            is_causal=True,
            scale=scaling,
            dropout_p=dropout if module.training else 0.0,
        )
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def _no_mask(*args, **kwargs) -> None:
    return None  # varlen_attention needs no mask: sequence bounds come from the position ids


def register() -> None:
    # deferred: transformers takes about 1 s to import
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_attention)
    AttentionMaskInterface.register(NAME, _no_mask)


def use_for_packed_rows(model: torch.nn.Module) -> str:
    """Switch `model` to per-sequence attention where it is exact and faster; returns the one in use.

    FlashAttention already runs varlen. Attention-logit softcapping (Gemma 2) has no SDPA
    form, so such models keep transformers' block-diagonal mask.
    """
    config = model.config
    current = config._attn_implementation
    if current.startswith("flash_attention") or getattr(config, "attn_logit_softcapping", None):
        return current
    register()
    model.set_attn_implementation(NAME)
    return NAME
