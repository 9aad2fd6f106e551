"""Preference losses as small pure functions (SimPO paper, Table 3).

Each function maps per-pair statistics to per-pair losses (shape (B,)); the batch loss is
their mean. Notation: l(y) = sum_t log pi(y_t | x, y_<t) over response tokens; |y| the
number of response tokens; lbar(y) = l(y)/|y|; r(y) = l(y) - l_ref(y). Which aggregation
(sum or mean) a method receives is decided by its objective (repro.train.objectives), so the
paper's ablation "SimPO without length normalization" is SimPO fed with sums.

Oracles for each function, with tolerances, are in tests/test_losses_parity.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _smoothed_sigmoid_loss(z: Tensor, label_smoothing: float) -> Tensor:
    """-(1 - eps) log sigmoid(z) - eps log sigmoid(-z): the conservative (cDPO) form."""
    loss = -F.logsigmoid(z)
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-z)
    return loss


def simpo_loss(
    chosen: Tensor,
    rejected: Tensor,
    *,
    beta: float,
    gamma_beta_ratio: float,
    label_smoothing: float = 0.0,
    loss_type: str = "sigmoid",
) -> Tensor:
    """SimPO: L = -log sigmoid(beta*lbar(y_w) - beta*lbar(y_l) - gamma), gamma = gamma_beta_ratio*beta.

    `chosen`/`rejected` are average per-token log-probs (lbar). As in the SimPO trainer:
    z = beta*(lbar_w - lbar_l - gamma_beta_ratio); sigmoid: -(1-eps) log s(z) - eps log s(-z);
    hinge: relu(1 - z) (label smoothing ignored).
    """
    z = beta * (chosen - rejected - gamma_beta_ratio)
    if loss_type == "sigmoid":
        return _smoothed_sigmoid_loss(z, label_smoothing)
    if loss_type == "hinge":
        return torch.relu(1 - z)
    raise ValueError(f"unknown SimPO loss_type '{loss_type}' (sigmoid or hinge)")


def dpo_loss(
    chosen: Tensor,
    rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    *,
    beta: float,
    label_smoothing: float = 0.0,
) -> Tensor:
    """DPO: L = -log sigmoid(beta*r(y_w) - beta*r(y_l)), r(y) = l(y) - l_ref(y) (summed log-probs).

    With label smoothing eps: the conservative form -(1-eps) log s(z) - eps log s(-z).
    """
    z = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    return _smoothed_sigmoid_loss(z, label_smoothing)


def ipo_loss(
    chosen: Tensor, rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *, tau: float
) -> Tensor:
    """IPO: L = (r(y_w) - r(y_l) - 1/(2 tau))^2.

    Fed with per-token averages by default (TRL and LLaMA-Factory normalize IPO by length;
    the IPO authors confirmed this to TRL), i.e. r(y)/|y| = lbar(y) - lbar_ref(y).
    """
    return ((chosen - ref_chosen) - (rejected - ref_rejected) - 1 / (2 * tau)) ** 2


def cpo_loss(chosen: Tensor, rejected: Tensor, *, beta: float, label_smoothing: float = 0.0) -> Tensor:
    """CPO preference term: -log sigmoid(beta*l(y_w) - beta*l(y_l)).

    The full CPO objective adds lambda * NLL(y_w) (see repro.train.objectives).
    """
    return _smoothed_sigmoid_loss(beta * (chosen - rejected), label_smoothing)


def kto_loss(
    chosen: Tensor,
    rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    kl: Tensor,
    *,
    beta: float,
    lambda_w: float = 1.0,
    lambda_l: float = 1.0,
) -> Tensor:
    """KTO, paired, per pair: (lambda_w*(1 - s(beta*(r_w - z))) + lambda_l*(1 - s(beta*(z - r_l)))) / 2.

    z = max(0, E[KL]) is the reference point, estimated on mismatched (prompt, completion)
    pairs and detached. Each pair contributes one desirable and one undesirable example;
    the mean over pairs equals the mean over the 2B examples that TRL's KTOTrainer takes.
    """
    z = kl.detach().clamp(min=0)
    desirable = 1 - torch.sigmoid(beta * ((chosen - ref_chosen) - z))
    undesirable = 1 - torch.sigmoid(beta * (z - (rejected - ref_rejected)))
    return (lambda_w * desirable + lambda_l * undesirable) / 2


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(chosen: Tensor, rejected: Tensor, *, lam: float) -> Tensor:
    """ORPO odds-ratio term: -lambda * log sigmoid(log odds(y_w) - log odds(y_l)).

    odds(y) = p/(1-p) with p = exp(lbar(y)), so log odds = lbar - log(1 - exp(lbar)).
    The full ORPO objective adds NLL(y_w) (see repro.train.objectives).
    """
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    return -lam * F.logsigmoid(log_odds)


def rdpo_loss(
    chosen: Tensor,
    rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_length: Tensor,
    rejected_length: Tensor,
    *,
    beta: float,
    alpha: float,
) -> Tensor:
    """R-DPO: L = -log sigmoid(beta*r(y_w) - beta*r(y_l) + (alpha*|y_w| - alpha*|y_l|)).

    As printed in the SimPO paper's Table 3 (Park et al. 2024): the length term enters with
    a plus sign, so with alpha > 0 a longer chosen answer already earns margin and less of
    the gradient goes into making answers longer.
    """
    z = beta * ((chosen - ref_chosen) - (rejected - ref_rejected)) + alpha * (chosen_length - rejected_length)
    return -F.logsigmoid(z)


def rrhf_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """RRHF ranking term: max(0, -lbar(y_w) + lbar(y_l)).

    The full RRHF objective adds lambda * NLL(y_w) (see repro.train.objectives).
    """
    return torch.relu(rejected - chosen)


def slic_hf_loss(chosen: Tensor, rejected: Tensor, *, delta: float) -> Tensor:
    """SLiC-HF calibration term: max(0, delta - l(y_w) + l(y_l)).

    The full SLiC-HF objective adds lambda * NLL(y_w) (see repro.train.objectives).
    """
    return torch.relu(delta - chosen + rejected)
