"""Objectives: each method's full training loss and metrics, built on repro.train.losses.

An objective receives per-sequence log-prob statistics (sum and token count for chosen and
rejected, for the policy and, in the DPO family, the reference) and the method's resolved
hyperparameters. It chooses the aggregation (`log_probs`: mean or sum), adds the NLL term
where the method has one (`nll_reduction`: token-mean over the micro-batch's chosen tokens,
as the SimPO trainer and TRL compute it, or per-sequence sums as the paper's Table 3
writes it), and returns the loss with the original trainer's metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from repro.config.methods import get_method
from repro.train import losses


@dataclass(frozen=True)
class SequenceLogps:
    """Log-prob statistics of a batch of responses: summed log-probs and response token counts."""

    sum: Tensor  # (N,)
    count: Tensor  # (N,)

    @property
    def mean(self) -> Tensor:
        return self.sum / self.count.clamp(min=1)

    def aggregate(self, how: str) -> Tensor:
        if how == "mean":
            return self.mean
        if how == "sum":
            return self.sum
        raise ValueError(f"unknown log-prob aggregation '{how}' (mean or sum)")


@dataclass(frozen=True)
class Inputs:
    chosen: SequenceLogps
    rejected: SequenceLogps
    ref_chosen: SequenceLogps | None = None
    ref_rejected: SequenceLogps | None = None
    # KTO's reference point: policy/reference log-probs of mismatched (prompt, completion) pairs,
    # or the reference point itself when the trainer already reduced it across ranks.
    kl_policy: SequenceLogps | None = None
    kl_reference: SequenceLogps | None = None
    kl: Tensor | None = None


@dataclass
class Output:
    loss: Tensor  # scalar
    losses: Tensor  # (B,) per-pair preference term
    chosen_rewards: Tensor  # (B,) detached
    rejected_rewards: Tensor  # (B,) detached
    metrics: dict[str, Tensor] = field(default_factory=dict)


Objective = Callable[[Inputs, dict[str, Any]], Output]
OBJECTIVES: dict[str, Objective] = {}


def register(name: str) -> Callable[[Objective], Objective]:
    def add(fn: Objective) -> Objective:
        OBJECTIVES[name] = fn
        return fn

    return add


def get(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise KeyError(f"no objective registered for method '{name}'") from None


def compute(method: str, inputs: Inputs, hp: dict[str, Any]) -> Output:
    """The loss and metrics of `method` (a name in recipes/methods.yaml) on one micro-batch.
    Values missing from `hp` take their default from recipes/methods.yaml, the one place
    defaults live (a resolved RunConfig already holds them all)."""
    return get(method)(inputs, with_defaults(method, hp))


@functools.cache
def _defaults(method: str) -> dict[str, Any]:
    spec = get_method(method)
    return {"log_probs": spec.log_probs, **{k: h.default for k, h in spec.hyperparameters.items()}}


def with_defaults(method: str, hp: dict[str, Any]) -> dict[str, Any]:
    return {**_defaults(method), **hp}


# ---------------------------------------------------------------------------- helpers


def nll(chosen: SequenceLogps, reduction: str) -> Tensor:
    """Negative log-likelihood of the chosen responses.

    token: -sum of all chosen log-probs / number of chosen tokens in the micro-batch
    (nn.CrossEntropyLoss over the chosen half, as the SimPO trainer, TRL CPO and ORPO do);
    sequence: mean over pairs of -l(y_w), the paper's "-lambda log pi(y_w|x)".
    """
    if reduction == "token":
        return -chosen.sum.sum() / chosen.count.sum().clamp(min=1)
    if reduction == "sequence":
        return -chosen.sum.mean()
    raise ValueError(f"unknown nll_reduction '{reduction}' (token or sequence)")


def _with_reference(inputs: Inputs, how: str, method: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Policy chosen/rejected and reference chosen/rejected log-probs, aggregated by `how`."""
    if inputs.ref_chosen is None or inputs.ref_rejected is None:
        raise ValueError(f"{method} needs reference log-probs")
    return (
        inputs.chosen.aggregate(how),
        inputs.rejected.aggregate(how),
        inputs.ref_chosen.aggregate(how),
        inputs.ref_rejected.aggregate(how),
    )


def _output(
    losses_: Tensor,
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    extra: Tensor | None = None,
    metrics: dict[str, Tensor] | None = None,
) -> Output:
    loss = losses_.mean()
    if extra is not None:
        loss = loss + extra
    return Output(loss, losses_, chosen_rewards.detach(), rejected_rewards.detach(), metrics or {})


# ---------------------------------------------------------------------------- methods


@register("simpo")
def simpo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """-log s(beta*lbar_w - beta*lbar_l - gamma) [+ sft_weight * NLL]; rewards beta*lbar (no gamma)."""
    how = hp["log_probs"]
    chosen, rejected = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    per_pair = losses.simpo_loss(
        chosen,
        rejected,
        beta=hp["beta"],
        gamma_beta_ratio=hp["gamma_beta_ratio"],
        label_smoothing=hp["label_smoothing"],
        loss_type=hp["loss_type"],
    )
    metrics, extra = {}, None
    if hp["sft_weight"] > 0:
        sft = nll(inputs.chosen, hp["nll_reduction"])
        extra = hp["sft_weight"] * sft
        metrics["sft_loss"] = sft.detach()
    return _output(per_pair, hp["beta"] * chosen, hp["beta"] * rejected, extra, metrics)


@register("dpo")
def dpo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """-log s(beta*r_w - beta*r_l); rewards beta*r."""
    how = hp["log_probs"]
    c, r, rc, rr = _with_reference(inputs, how, "dpo")
    per_pair = losses.dpo_loss(c, r, rc, rr, beta=hp["beta"], label_smoothing=hp["label_smoothing"])
    return _output(per_pair, hp["beta"] * (c - rc), hp["beta"] * (r - rr))


@register("ipo")
def ipo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """(r_w - r_l - 1/(2 tau))^2 on per-token averages; rewards tau*r as TRL logs them (beta = tau)."""
    how = hp["log_probs"]
    c, r, rc, rr = _with_reference(inputs, how, "ipo")
    per_pair = losses.ipo_loss(c, r, rc, rr, tau=hp["tau"])
    return _output(per_pair, hp["tau"] * (c - rc), hp["tau"] * (r - rr))


@register("cpo")
def cpo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """-log s(beta*l_w - beta*l_l) + lambda * NLL(y_w); rewards beta*l."""
    how = hp["log_probs"]
    c, r = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    per_pair = losses.cpo_loss(c, r, beta=hp["beta"], label_smoothing=hp["label_smoothing"])
    term = nll(inputs.chosen, hp["nll_reduction"])
    return _output(per_pair, hp["beta"] * c, hp["beta"] * r, hp["lambda"] * term, {"nll_loss": term.detach()})


@register("kto")
def kto(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """Paired KTO with z = max(0, mean(l_policy - l_ref)) over mismatched pairs; rewards beta*r."""
    how = hp["log_probs"]
    if inputs.kl is not None:
        kl = inputs.kl
    elif inputs.kl_policy is not None and inputs.kl_reference is not None:
        kl = (inputs.kl_policy.aggregate(how) - inputs.kl_reference.aggregate(how)).mean()
    else:
        raise ValueError("kto needs the KL reference point (kl) or mismatched-pair log-probs")
    kl = kl.detach().clamp(min=0)
    c, r, rc, rr = _with_reference(inputs, how, "kto")
    per_pair = losses.kto_loss(
        c, r, rc, rr, kl, beta=hp["beta"], lambda_w=hp["lambda_w"], lambda_l=hp["lambda_l"]
    )
    return _output(per_pair, hp["beta"] * (c - rc), hp["beta"] * (r - rr), metrics={"kl": kl})


@register("orpo")
def orpo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """NLL(y_w) - lambda * log s(log odds_w - log odds_l) on per-token averages; rewards lambda*lbar."""
    how = hp["log_probs"]
    c, r = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    per_pair = losses.orpo_loss(c, r, lam=hp["lambda"])
    term = nll(inputs.chosen, hp["nll_reduction"])
    return _output(per_pair, hp["lambda"] * c, hp["lambda"] * r, term, {"nll_loss": term.detach()})


@register("rdpo")
def rdpo(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """-log s(beta*r_w - beta*r_l + alpha*(|y_w| - |y_l|)); rewards beta*r."""
    how = hp["log_probs"]
    c, r, rc, rr = _with_reference(inputs, how, "rdpo")
    per_pair = losses.rdpo_loss(
        c,
        r,
        rc,
        rr,
        inputs.chosen.count.to(c.dtype),
        inputs.rejected.count.to(c.dtype),
        beta=hp["beta"],
        alpha=hp["alpha"],
    )
    return _output(per_pair, hp["beta"] * (c - rc), hp["beta"] * (r - rr))


@register("rrhf")
def rrhf(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """max(0, lbar_l - lbar_w) + lambda * NLL(y_w); rewards lbar."""
    how = hp["log_probs"]
    c, r = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    term = nll(inputs.chosen, hp["nll_reduction"])
    return _output(losses.rrhf_loss(c, r), c, r, hp["lambda"] * term, {"nll_loss": term.detach()})


@register("slic-hf")
def slic_hf(inputs: Inputs, hp: dict[str, Any]) -> Output:
    """max(0, delta - l_w + l_l) + lambda * NLL(y_w); rewards l."""
    how = hp["log_probs"]
    c, r = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    term = nll(inputs.chosen, hp["nll_reduction"])
    per_pair = losses.slic_hf_loss(c, r, delta=hp["delta"])
    return _output(per_pair, c, r, hp["lambda"] * term, {"nll_loss": term.detach()})


# ---------------------------------------------------------------------------- metrics


def metrics(out: Output, inputs: Inputs, how: str) -> dict[str, Tensor]:
    """The SimPO trainer's per-step metrics (before any cross-rank reduction)."""
    chosen, rejected = inputs.chosen.aggregate(how), inputs.rejected.aggregate(how)
    result = {
        "loss": out.loss.detach(),
        "rewards/chosen": out.chosen_rewards.mean(),
        "rewards/rejected": out.rejected_rewards.mean(),
        "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float().mean(),
        "rewards/margins": (out.chosen_rewards - out.rejected_rewards).mean(),
        "logps/chosen": chosen.detach().mean(),
        "logps/rejected": rejected.detach().mean(),
    }
    result.update({k: v.detach() for k, v in out.metrics.items()})
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in result.items()}
