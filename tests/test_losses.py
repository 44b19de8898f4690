"""Each GAN objective equals its paper's formula, computed by hand on small tensors."""

import math

import torch

from gan.losses import LOSSES


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


REAL, FAKE = [2.0, -1.0], [0.5, -3.0]


def test_minimax_discriminator_loss_is_negative_log_likelihood():
    expected = -(sum(math.log(sigmoid(r)) for r in REAL) / 2 + sum(math.log(1 - sigmoid(f)) for f in FAKE) / 2)
    value = LOSSES["minimax"].d_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)
    assert LOSSES["nonsaturating"].d_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == value.item()


def test_minimax_generator_loss_is_log_one_minus_d():
    expected = sum(math.log(1 - sigmoid(f)) for f in FAKE) / 2
    assert math.isclose(LOSSES["minimax"].g_loss(torch.tensor(FAKE)).item(), expected, rel_tol=1e-6)


def test_nonsaturating_generator_loss_is_minus_log_d():
    expected = -sum(math.log(sigmoid(f)) for f in FAKE) / 2
    assert math.isclose(LOSSES["nonsaturating"].g_loss(torch.tensor(FAKE)).item(), expected, rel_tol=1e-6)


def test_losses_stay_finite_where_the_sigmoid_saturates():
    logits = torch.tensor([80.0, -80.0])
    for loss in LOSSES.values():
        assert torch.isfinite(loss.d_loss(logits, logits)) and torch.isfinite(loss.g_loss(logits))


def test_saturating_loss_gives_vanishing_gradient_where_nonsaturating_does_not():
    rejected = torch.tensor([-8.0], requires_grad=True)  # D is sure the sample is fake
    (grad_minimax,) = torch.autograd.grad(LOSSES["minimax"].g_loss(rejected), rejected)
    (grad_ns,) = torch.autograd.grad(LOSSES["nonsaturating"].g_loss(rejected), rejected)
    assert abs(grad_minimax.item()) < 1e-3 < abs(grad_ns.item())
