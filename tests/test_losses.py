"""Each GAN objective and gradient penalty equals its paper's formula, computed by hand on small tensors
or by autograd one sample at a time."""

import math

import numpy as np

import pytest
import torch
from torch import nn

from gan.losses import LOSSES, gradient_penalty, r1_penalty
from gan.tasks.generation import gaussian_mmd2


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


def test_hinge_discriminator_loss_penalises_scores_inside_the_margin():
    expected = sum(max(0.0, 1 - r) for r in REAL) / 2 + sum(max(0.0, 1 + f) for f in FAKE) / 2
    value = LOSSES["hinge"].d_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_hinge_and_wasserstein_generator_loss_is_minus_mean_score():
    expected = -sum(FAKE) / 2
    for name in ("hinge", "wasserstein"):
        assert math.isclose(LOSSES[name].g_loss(torch.tensor(FAKE)).item(), expected, rel_tol=1e-6)


def test_wasserstein_critic_loss_is_fake_mean_minus_real_mean():
    expected = sum(FAKE) / 2 - sum(REAL) / 2
    value = LOSSES["wasserstein"].d_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_least_squares_discriminator_loss_pulls_real_to_one_and_fake_to_zero():
    expected = 0.5 * sum((r - 1) ** 2 for r in REAL) / 2 + 0.5 * sum(f**2 for f in FAKE) / 2
    value = LOSSES["least_squares"].d_loss(torch.tensor(REAL), torch.tensor(FAKE))
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_least_squares_generator_loss_pulls_fake_to_one():
    expected = 0.5 * sum((f - 1) ** 2 for f in FAKE) / 2
    assert math.isclose(LOSSES["least_squares"].g_loss(torch.tensor(FAKE)).item(), expected, rel_tol=1e-6)


def test_hinge_discriminator_ignores_samples_beyond_the_margin():
    real = torch.tensor([1.5, 0.5], requires_grad=True)  # the first is beyond the margin, the second is not
    fake = torch.tensor([-1.5, -0.5], requires_grad=True)
    grad_real, grad_fake = torch.autograd.grad(LOSSES["hinge"].d_loss(real, fake), (real, fake))
    assert grad_real.tolist() == [0.0, -0.5] and grad_fake.tolist() == [0.0, 0.5]


def test_critic_generator_losses_keep_their_gradient_where_d_rejects_the_sample():
    rejected = torch.tensor([-8.0], requires_grad=True)  # far on the fake side
    for name, expected in (("hinge", -1.0), ("wasserstein", -1.0), ("least_squares", -9.0)):
        (grad,) = torch.autograd.grad(LOSSES[name].g_loss(rejected), rejected)
        assert math.isclose(grad.item(), expected, rel_tol=1e-6), name


def test_probabilistic_losses_read_scores_as_probabilities():
    scores = torch.tensor([-2.0, 0.0, 3.0])
    for name in ("minimax", "nonsaturating"):
        assert torch.equal(LOSSES[name].readout(scores), torch.sigmoid(scores))


def test_critic_losses_read_out_the_raw_score():
    scores = torch.tensor([-2.0, 0.0, 3.0])
    for name in ("hinge", "wasserstein", "least_squares"):
        assert torch.equal(LOSSES[name].readout(scores), scores)


def test_only_wasserstein_asks_for_a_gradient_penalty_and_its_weight_defaults_to_ten():
    from gan.config import Config, parse_params
    from gan.updates import make_plan

    assert [name for name, loss in LOSSES.items() if loss.uses_gradient_penalty] == ["wasserstein"]
    assert Config().train.gp_weight == 10
    for name in LOSSES:
        cfg = parse_params({"train": {"loss": name, "gp_weight": 4.0}, "model": {"spectral_norm": True}})
        plan = make_plan(cfg, 0, None, torch.device("cpu"))
        assert plan.gp_weight == (4.0 if name == "wasserstein" else 0.0), name


# --- gradient penalties -------------------------------------------------------------------------------------


def linear_critic(in_features: int = 3) -> nn.Module:
    """D(x) = w·x + b: its input-gradient is w everywhere."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 1), nn.Flatten(0))  # (N, ...) -> (N,)


def mlp_critic() -> nn.Module:
    """A non-linear D on (N, 2, 3) samples, so that the gradient differs from sample to sample."""
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))


def input_gradient(discriminator: nn.Module, sample: torch.Tensor) -> list[float]:
    """∇_x D(x) for one sample, by autograd's Jacobian of D on that sample alone."""
    jac = torch.autograd.functional.jacobian(lambda x: discriminator(x[None])[0], sample)
    return jac.flatten().tolist()


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_gradient_penalty_of_a_linear_critic_is_weight_norm_minus_one_squared():
    torch.manual_seed(0)
    critic = linear_critic()
    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    expected = (norm(critic[1].weight.flatten().tolist()) - 1) ** 2
    value = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(1))
    assert math.isclose(value.item(), expected, rel_tol=1e-5)


def test_gradient_penalty_is_taken_at_per_sample_interpolates_of_real_and_fake():
    torch.manual_seed(0)
    critic = mlp_critic()
    real, fake = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    eps = torch.rand((4, 1, 1), generator=torch.Generator().manual_seed(7))  # the draw the penalty makes
    mixed = eps * real + (1 - eps) * fake
    expected = sum((norm(input_gradient(critic, x)) - 1) ** 2 for x in mixed) / 4
    value = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(7))
    assert math.isclose(value.item(), expected, rel_tol=1e-5)


def test_gradient_penalty_trains_the_critic_with_the_exact_gradient():
    torch.manual_seed(0)
    critic = linear_critic()
    gradient_penalty(critic, torch.randn(5, 3), torch.randn(5, 3), torch.Generator().manual_seed(1)).backward()
    w = critic[1].weight.flatten().tolist()
    expected = [2 * (norm(w) - 1) * v / norm(w) for v in w]  # d/dw (‖w‖ - 1)²
    for got, want in zip(critic[1].weight.grad.flatten().tolist(), expected):
        assert math.isclose(got, want, rel_tol=1e-5)


def test_gradient_penalty_gives_a_non_linear_critic_non_zero_gradients():
    torch.manual_seed(0)
    critic = mlp_critic()
    gradient_penalty(critic, torch.randn(4, 2, 3), torch.randn(4, 2, 3), torch.Generator().manual_seed(1)).backward()
    for layer in (critic[1], critic[3]):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_gradient_penalty_sends_no_gradient_to_the_generator():
    torch.manual_seed(0)
    generator_output = torch.randn(4, 2, 3, requires_grad=True)
    fake = 2 * generator_output  # a caller that forgot to detach
    # non-linear, so that the input-gradient, and with it the penalty, depends on the fake samples
    gradient_penalty(mlp_critic(), torch.randn(4, 2, 3), fake, torch.Generator().manual_seed(1)).backward()
    assert generator_output.grad is None


def test_gradient_penalty_passes_keyword_arguments_to_the_discriminator():
    class ScaledCritic(nn.Module):
        """D(x, y) = y · (w·x): the input-gradient is y·w."""

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1, bias=False)

        def forward(self, x, y):
            return y * self.linear(x)[:, 0]

    torch.manual_seed(0)
    critic = ScaledCritic()
    y = torch.full((5,), 3.0)
    expected = (3 * norm(critic.linear.weight.flatten().tolist()) - 1) ** 2
    value = gradient_penalty(critic, torch.randn(5, 3), torch.randn(5, 3), torch.Generator().manual_seed(1), y=y)
    assert math.isclose(value.item(), expected, rel_tol=1e-5)


def test_r1_penalty_of_a_linear_critic_is_squared_weight_norm():
    torch.manual_seed(0)
    critic = linear_critic()
    real = torch.randn(5, 3, requires_grad=True)
    expected = norm(critic[1].weight.flatten().tolist()) ** 2
    assert math.isclose(r1_penalty(critic(real), real).item(), expected, rel_tol=1e-5)


def test_r1_penalty_is_mean_squared_input_gradient_norm_over_real_samples():
    torch.manual_seed(0)
    critic = mlp_critic()
    real = torch.randn(4, 2, 3)
    expected = sum(norm(input_gradient(critic, x)) ** 2 for x in real) / 4
    real.requires_grad_(True)
    assert math.isclose(r1_penalty(critic(real), real).item(), expected, rel_tol=1e-5)


def test_r1_penalty_trains_the_critic_with_the_exact_gradient():
    torch.manual_seed(0)
    critic = linear_critic()
    real = torch.randn(5, 3, requires_grad=True)
    r1_penalty(critic(real), real).backward()
    expected = [2 * v for v in critic[1].weight.flatten().tolist()]  # d/dw ‖w‖²
    for got, want in zip(critic[1].weight.grad.flatten().tolist(), expected):
        assert math.isclose(got, want, rel_tol=1e-5)


def test_r1_penalty_gives_a_non_linear_critic_non_zero_gradients():
    torch.manual_seed(0)
    critic = mlp_critic()
    real = torch.randn(4, 2, 3, requires_grad=True)
    r1_penalty(critic(real), real).backward()
    for layer in (critic[1], critic[3]):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_r1_penalty_says_what_to_do_when_real_does_not_require_grad():
    critic = linear_critic()
    real = torch.randn(5, 3)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(critic(real), real)


# ---------------------------------------------------------------------------- the MMD term of G (gan.tasks.generation)


def test_gaussian_mmd2_is_the_unbiased_estimator_written_out():
    gen = torch.Generator().manual_seed(0)
    x, y, widths = torch.randn(7, 2, generator=gen), torch.randn(5, 2, generator=gen) + 0.5, (0.3, 1.0)
    k = lambda a, b: sum(math.exp(-float((a - b).square().sum()) / (2 * s * s)) for s in widths)  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / 35
    assert float(gaussian_mmd2(x, y, widths)) == pytest.approx(xx + yy - 2 * xy, rel=1e-5)


def test_gaussian_mmd2_is_zero_on_average_for_one_distribution_and_pulls_a_squeezed_set_open():
    gen = torch.Generator().manual_seed(1)
    same = [float(gaussian_mmd2(torch.randn(64, 2, generator=gen), torch.randn(64, 2, generator=gen), (0.5, 1.0)))
            for _ in range(200)]
    squeezed = (0.3 * torch.randn(64, 2, generator=gen)).requires_grad_(True)
    real = torch.randn(64, 2, generator=gen)
    gap = gaussian_mmd2(squeezed, real, (0.5, 1.0))
    assert abs(np.mean(same)) < 0.1 * float(gap)  # unbiased: only the squeeze gives a gap
    gap.backward()
    with torch.no_grad():
        stepped = squeezed - 0.5 * squeezed.grad
    assert stepped.std() > squeezed.std()  # descending the term spreads G's points out


def test_gaussian_mmd2_refuses_no_widths():
    with pytest.raises(ValueError, match="positive bandwidths"):
        gaussian_mmd2(torch.zeros(3, 2), torch.zeros(3, 2), ())
