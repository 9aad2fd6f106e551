"""Parity of every loss with an independent oracle on identical inputs (fp32, CPU).

Oracles and their conventions (tolerance 1e-5 absolute + 1e-5 relative unless noted):
- TRL 1.16 `trl.experimental.cpo.CPOTrainer.cpo_loss`, called unbound on a stub object
  (it reads only alpha, beta, simpo_gamma, label_smoothing, loss_type, accelerator.device):
  loss_type="simpo" takes average log-probs and an *absolute* gamma (= our ratio x beta);
  "sigmoid" is CPO's preference term on summed log-probs; "hinge" is relu(1 - beta*delta),
  i.e. SLiC-HF's relu(delta - d) scaled by 1/delta with beta = 1/delta.
- TRL 1.16 `trl.experimental.orpo.ORPOTrainer.odds_ratio_loss` on a stub: returns
  beta*log s(log odds); the ORPO loss is NLL - mean of that.
- Liger-Kernel 0.8.5 chunked losses (pure PyTorch, compiled=False): given hidden states,
  LM-head weight and (already shifted) targets they compute log-probs, the loss and the
  NLL themselves, so they also check repro.train.logprobs and the NLL reduction, gradients included.
  Liger's SimPO takes the absolute gamma; `compute_nll_loss=False` gives pure SimPO.
- R-DPO, RRHF and SLiC-HF have no library oracle in TRL or Liger: expected values are
  derived by hand with `math` from the formulas in the SimPO paper's Table 3.
DPO, IPO and KTO against TRL's trainers on a real tiny model: tests/test_trainer_parity.py.
"""

from __future__ import annotations

import math
import os
import types

import pytest
import torch

from repro.train import losses, objectives
from repro.train.logprobs import token_logps
from repro.train.objectives import Inputs, SequenceLogps

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
cpo_mod = pytest.importorskip("trl.experimental.cpo")
orpo_mod = pytest.importorskip("trl.experimental.orpo")
liger = pytest.importorskip("liger_kernel.chunked_loss")

TOL = {"atol": 1e-5, "rtol": 1e-5}


def stub(**kw):
    return types.SimpleNamespace(accelerator=types.SimpleNamespace(device="cpu"), alpha=0.0, **kw)


def pair_logps(n: int = 8, seed: int = 0, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    chosen = -scale * torch.rand(n, generator=g, dtype=torch.float64).float() - 0.05
    rejected = -scale * torch.rand(n, generator=g, dtype=torch.float64).float() - 0.05
    return chosen.requires_grad_(), rejected.requires_grad_()


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


# ---------------------------------------------------------------------------- SimPO


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize(("beta", "ratio"), [(2.5, 0.55), (10.0, 0.3), (2.0, 0.0)])
def test_simpo_matches_trl_cpo_simpo_with_gradients(beta, ratio, label_smoothing):
    chosen, rejected = pair_logps()
    ours = losses.simpo_loss(
        chosen, rejected, beta=beta, gamma_beta_ratio=ratio, label_smoothing=label_smoothing
    )
    trl_self = stub(beta=beta, simpo_gamma=ratio * beta, label_smoothing=label_smoothing, loss_type="simpo")
    theirs, chosen_rewards, rejected_rewards = cpo_mod.CPOTrainer.cpo_loss(trl_self, chosen, rejected)
    torch.testing.assert_close(ours, theirs, **TOL)
    for g_ours, g_theirs in zip(
        grads(ours.mean(), chosen, rejected), grads(theirs.mean(), chosen, rejected), strict=True
    ):
        torch.testing.assert_close(g_ours, g_theirs, **TOL)
    out = objectives.compute(
        "simpo",
        Inputs(SequenceLogps(chosen, torch.ones(8)), SequenceLogps(rejected, torch.ones(8))),
        {"beta": beta, "gamma_beta_ratio": ratio, "label_smoothing": label_smoothing},
    )
    torch.testing.assert_close(
        out.chosen_rewards, chosen_rewards.detach(), **TOL
    )  # rewards: beta*lbar, no gamma
    torch.testing.assert_close(out.rejected_rewards, rejected_rewards.detach(), **TOL)


def test_simpo_hinge_matches_trl_hinge():
    chosen, rejected = pair_logps(seed=1)
    beta, ratio = 2.0, 0.5
    ours = losses.simpo_loss(chosen, rejected, beta=beta, gamma_beta_ratio=ratio, loss_type="hinge")
    theirs, _, _ = cpo_mod.CPOTrainer.cpo_loss(
        stub(beta=beta, simpo_gamma=0.0, label_smoothing=0.0, loss_type="hinge"), chosen - ratio, rejected
    )
    torch.testing.assert_close(ours, theirs, **TOL)


def liger_case(seed=0, batch=3, length=11, hidden=16, vocab=37, ignore_frac=0.3):
    """Hidden states (2B, T, H) with chosen rows first, LM-head weight, and shifted targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * batch, length, hidden, generator=g)
    w = torch.randn(vocab, hidden, generator=g) / hidden**0.5
    target = torch.randint(0, vocab, (2 * batch, length), generator=g)
    target[torch.rand(2 * batch, length, generator=g) < ignore_frac] = -100
    target[:, 0] = -100  # a prompt position
    target[:, 1] = torch.randint(0, vocab, (2 * batch,), generator=g)  # at least one counted token per row
    return x.requires_grad_(), w.requires_grad_(), target


def our_stats(x, w, target) -> tuple[SequenceLogps, SequenceLogps]:
    logp, mask = token_logps(x @ w.t(), target)
    stats = SequenceLogps(logp.sum(-1), mask.sum(-1))
    half = x.shape[0] // 2
    return SequenceLogps(stats.sum[:half], stats.count[:half]), SequenceLogps(
        stats.sum[half:], stats.count[half:]
    )


def assert_same_loss_and_grads(our_loss, liger_loss, x, w):
    torch.testing.assert_close(our_loss, liger_loss, **TOL)
    for ours, theirs in zip(grads(our_loss, x, w), grads(liger_loss, x, w), strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_simpo_objective_matches_liger_with_gradients(label_smoothing):
    x, w, target = liger_case()
    beta, ratio = 2.5, 0.55
    chosen, rejected = our_stats(x, w, target)
    ours = objectives.compute(
        "simpo",
        Inputs(chosen, rejected),
        {"beta": beta, "gamma_beta_ratio": ratio, "label_smoothing": label_smoothing},
    ).loss
    fn = liger.LigerFusedLinearSimPOLoss(
        beta=beta, gamma=beta * ratio, label_smoothing=label_smoothing, compute_nll_loss=False, compiled=False
    )
    theirs, _ = fn(w, x, target)
    assert_same_loss_and_grads(ours, theirs, x, w)


def test_simpo_with_sft_weight_matches_liger_cpo_simpo():
    """sft_weight * token-mean NLL over the chosen tokens = Liger SimPO with compute_nll_loss, alpha."""
    x, w, target = liger_case(seed=3)
    beta, ratio, sft = 2.0, 0.5, 0.7
    chosen, rejected = our_stats(x, w, target)
    out = objectives.compute(
        "simpo", Inputs(chosen, rejected), {"beta": beta, "gamma_beta_ratio": ratio, "sft_weight": sft}
    )
    fn = liger.LigerFusedLinearSimPOLoss(
        beta=beta, gamma=beta * ratio, alpha=sft, compute_nll_loss=True, compiled=False
    )
    theirs, _ = fn(w, x, target)
    assert_same_loss_and_grads(out.loss, theirs, x, w)


# ------------------------------------------------------------ DPO (Liger here; TRL in test_trainer_parity)


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0])
def test_dpo_objective_matches_liger_with_gradients(beta):
    x, w, target = liger_case(seed=5)
    g = torch.Generator().manual_seed(9)
    ref_x = x.detach() + 0.3 * torch.randn(x.shape, generator=g)
    ref_w = w.detach() + 0.1 * torch.randn(w.shape, generator=g)
    chosen, rejected = our_stats(x, w, target)
    with torch.no_grad():
        ref_chosen, ref_rejected = our_stats(ref_x, ref_w, target)
    ours = objectives.compute("dpo", Inputs(chosen, rejected, ref_chosen, ref_rejected), {"beta": beta}).loss
    fn = liger.LigerFusedLinearDPOLoss(
        beta=beta, compute_nll_loss=False, compiled=False, use_ref_model=True, average_log_prob=False
    )
    theirs, _ = fn(w, x, target, None, ref_x, ref_w, None)
    assert_same_loss_and_grads(ours, theirs, x, w)


def test_dpo_label_smoothing_is_conservative_dpo():
    """Hand-derived: eps = 0.1, beta*delta = 0.5 -> 0.9*softplus(-0.5) + 0.1*softplus(0.5)."""
    z = torch.tensor([0.5])
    loss = losses.dpo_loss(z, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=1.0, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-0.5)) + 0.1 * math.log1p(math.exp(0.5))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------- CPO, ORPO


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cpo_preference_term_matches_trl(label_smoothing):
    chosen, rejected = pair_logps(seed=2, scale=60.0)  # summed log-probs
    ours = losses.cpo_loss(chosen, rejected, beta=0.05, label_smoothing=label_smoothing)
    theirs, _, _ = cpo_mod.CPOTrainer.cpo_loss(
        stub(beta=0.05, simpo_gamma=0.0, label_smoothing=label_smoothing, loss_type="sigmoid"),
        chosen,
        rejected,
    )
    torch.testing.assert_close(ours, theirs, **TOL)


def test_cpo_objective_matches_liger_cpo_with_nll():
    x, w, target = liger_case(seed=7)
    beta, lam = 0.1, 1.0
    chosen, rejected = our_stats(x, w, target)
    ours = objectives.compute("cpo", Inputs(chosen, rejected), {"beta": beta, "lambda": lam}).loss
    fn = liger.LigerFusedLinearCPOLoss(
        beta=beta, alpha=lam, compute_nll_loss=True, compiled=False, average_log_prob=False
    )
    theirs, _ = fn(w, x, target)
    assert_same_loss_and_grads(ours, theirs, x, w)


def test_orpo_term_matches_trl_odds_ratio_loss():
    chosen, rejected = pair_logps(seed=4, scale=2.0)  # average log-probs, in (-2.05, -0.05)
    lam = 0.25
    ours = losses.orpo_loss(chosen, rejected, lam=lam)
    theirs = orpo_mod.ORPOTrainer.odds_ratio_loss(stub(beta=lam), chosen, rejected)[0]
    torch.testing.assert_close(ours, -theirs, **TOL)
    for g_ours, g_theirs in zip(
        grads(ours.mean(), chosen, rejected), grads(-theirs.mean(), chosen, rejected), strict=True
    ):
        torch.testing.assert_close(g_ours, g_theirs, **TOL)


def test_orpo_objective_matches_liger_orpo_with_nll():
    x, w, target = liger_case(seed=8)
    chosen, rejected = our_stats(x, w, target)
    ours = objectives.compute("orpo", Inputs(chosen, rejected), {"lambda": 0.5}).loss
    theirs, _ = liger.LigerFusedLinearORPOLoss(beta=0.5, compute_nll_loss=True, compiled=False)(w, x, target)
    assert_same_loss_and_grads(ours, theirs, x, w)


# ---------------------------------------------------------------------------- SLiC-HF, R-DPO, RRHF


def test_slic_hf_matches_trl_hinge_rescaled():
    chosen, rejected = pair_logps(seed=6, scale=4.0)
    delta = 2.0
    ours = losses.slic_hf_loss(chosen, rejected, delta=delta)
    hinge, _, _ = cpo_mod.CPOTrainer.cpo_loss(
        stub(beta=1 / delta, simpo_gamma=0.0, label_smoothing=0.0, loss_type="hinge"), chosen, rejected
    )
    torch.testing.assert_close(ours, delta * hinge, **TOL)


def test_slic_hf_hand_derived():
    # delta 1, l_w = -3, l_l = -5: relu(1 - 2) = 0; l_w = -5, l_l = -3: relu(1 + 2) = 3
    # lambda 0.1, sequence NLL: mean(-l_w) = (3 + 5)/2 = 4 -> total (0 + 3)/2 + 0.4 = 1.9
    chosen = SequenceLogps(torch.tensor([-3.0, -5.0]), torch.tensor([4, 4]))
    rejected = SequenceLogps(torch.tensor([-5.0, -3.0]), torch.tensor([4, 4]))
    out = objectives.compute("slic-hf", Inputs(chosen, rejected), {"delta": 1.0, "lambda": 0.1})
    assert out.losses.tolist() == [0.0, 3.0]
    assert out.loss.item() == pytest.approx(1.9, abs=1e-6)


def test_rdpo_hand_derived():
    # beta 0.1, alpha 0.05; r_w = -10 - (-12) = 2, r_l = -20 - (-19) = -1, |y_w| = 30, |y_l| = 50
    # z = 0.1*(2 + 1) + 0.05*(30 - 50) = 0.3 - 1.0 = -0.7;  loss = log(1 + e^0.7)
    chosen = SequenceLogps(torch.tensor([-10.0]), torch.tensor([30]))
    rejected = SequenceLogps(torch.tensor([-20.0]), torch.tensor([50]))
    ref_c = SequenceLogps(torch.tensor([-12.0]), torch.tensor([30]))
    ref_r = SequenceLogps(torch.tensor([-19.0]), torch.tensor([50]))
    out = objectives.compute("rdpo", Inputs(chosen, rejected, ref_c, ref_r), {"beta": 0.1, "alpha": 0.05})
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(0.7)), abs=1e-6)
    # alpha = 0 is DPO
    dpo = objectives.compute("dpo", Inputs(chosen, rejected, ref_c, ref_r), {"beta": 0.1}).loss
    rdpo0 = objectives.compute(
        "rdpo", Inputs(chosen, rejected, ref_c, ref_r), {"beta": 0.1, "alpha": 0.0}
    ).loss
    assert rdpo0.item() == pytest.approx(dpo.item(), abs=1e-7)


def test_rrhf_hand_derived():
    # lbar_w = -12/4 = -3, lbar_l = -10/5 = -2: relu(-2 + 3) = 1; second pair ranked right: 0
    # lambda 1, sequence NLL = mean(12, 6) = 9 -> total 0.5 + 9 = 9.5
    chosen = SequenceLogps(torch.tensor([-12.0, -6.0]), torch.tensor([4, 6]))
    rejected = SequenceLogps(torch.tensor([-10.0, -9.0]), torch.tensor([5, 3]))
    out = objectives.compute("rrhf", Inputs(chosen, rejected), {"lambda": 1.0})
    assert out.losses.tolist() == [1.0, 0.0]
    assert out.loss.item() == pytest.approx(9.5, abs=1e-6)
    token = objectives.compute("rrhf", Inputs(chosen, rejected), {"lambda": 1.0, "nll_reduction": "token"})
    assert token.loss.item() == pytest.approx(0.5 + 18 / 10, abs=1e-6)


def test_ipo_hand_derived():
    # tau 0.5 -> target margin 1/(2 tau) = 1; (0.4 - (-0.3) - 1)^2 = 0.09
    out = losses.ipo_loss(
        torch.tensor([-1.0]), torch.tensor([-1.5]), torch.tensor([-1.4]), torch.tensor([-1.2]), tau=0.5
    )
    assert out.item() == pytest.approx(0.09, abs=1e-6)


def test_kto_hand_derived():
    # beta 0.1, z = 0.5: desirable 1 - s(0.1*(2 - 0.5)), undesirable 1 - s(0.1*(0.5 + 1))
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    out = losses.kto_loss(
        torch.tensor([2.0]),
        torch.tensor([-1.0]),
        torch.zeros(1),
        torch.zeros(1),
        torch.tensor(0.5),
        beta=0.1,
        lambda_w=1.0,
        lambda_l=2.0,
    )
    assert out.item() == pytest.approx(((1 - s(0.15)) + 2 * (1 - s(0.15))) / 2, abs=1e-6)
    clamped = losses.kto_loss(
        torch.tensor([2.0]),
        torch.tensor([-1.0]),
        torch.zeros(1),
        torch.zeros(1),
        torch.tensor(-3.0),
        beta=0.1,
    )
    assert clamped.item() == pytest.approx(((1 - s(0.2)) + (1 - s(0.1))) / 2, abs=1e-6)  # z clamped at 0


# ---------------------------------------------------------------------------- invariants


def test_step0_simpo_gamma0_equal_logps_is_ln2():
    chosen = SequenceLogps(torch.tensor([-7.0, -3.0]), torch.tensor([7, 3]))
    out = objectives.compute("simpo", Inputs(chosen, chosen), {"beta": 2.5, "gamma_beta_ratio": 0.0})
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-7)


def test_step0_dpo_policy_equals_reference_is_ln2():
    c = SequenceLogps(torch.tensor([-70.0, -30.0]), torch.tensor([7, 3]))
    r = SequenceLogps(torch.tensor([-50.0, -80.0]), torch.tensor([5, 8]))
    out = objectives.compute("dpo", Inputs(c, r, c, r), {"beta": 0.01})
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-7)


def test_simpo_without_length_normalization_uses_sums():
    """--set log_probs=sum is the paper's 'w/o length normalization' ablation (Table 5)."""
    c = SequenceLogps(torch.tensor([-8.0]), torch.tensor([4]))
    r = SequenceLogps(torch.tensor([-9.0]), torch.tensor([9]))
    hp = {"beta": 1.0, "gamma_beta_ratio": 0.0}
    mean = objectives.compute("simpo", Inputs(c, r), hp).loss.item()
    total = objectives.compute("simpo", Inputs(c, r), {**hp, "log_probs": "sum"}).loss.item()
    assert mean == pytest.approx(math.log1p(math.exp(-(-2.0 + 1.0))), abs=1e-6)
    assert total == pytest.approx(math.log1p(math.exp(-(-8.0 + 9.0))), abs=1e-6)


def test_every_method_in_recipes_has_an_objective():
    from repro.config.methods import load_methods

    assert set(load_methods()) == set(objectives.OBJECTIVES)
