"""Registry of GAN objectives and the gradient penalties they use. The maths of each
objective lives here and nowhere else.

Discriminators return raw scores l = D(x), shape (N,). The probabilistic objectives
(minimax, non-saturating) read l as a logit: the probability that x is real is
sigmoid(l). Writing log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l)
keeps those losses finite where a sigmoid followed by a log would underflow. The other
objectives (hinge, Wasserstein, least squares) use the score itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def minimax_d(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D ascends E[log D(x)] + E[log(1 - D(G(z)))]; we minimise its negative.

    Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1:
    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))].
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_g(fake_logits: Tensor) -> Tensor:
    """The saturating generator loss of the original min-max game: L_G = E_z[log(1 - D(G(z)))].

    Goodfellow et al. 2014, eq. 1. Its gradient vanishes when D confidently rejects G's
    samples, which is why the non-saturating form is the default.
    """
    return -F.softplus(fake_logits).mean()


def nonsaturating_g(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss: L_G = -E_z[log D(G(z))].

    Goodfellow et al. 2014, section 3: same fixed point as the min-max game, strong
    gradients early in training.
    """
    return F.softplus(-fake_logits).mean()


def hinge_d(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The hinge discriminator loss: L_D = E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))].

    Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization for
    Generative Adversarial Networks". Samples already beyond the margin (D(x) >= 1,
    D(G(z)) <= -1) give D no gradient. G uses `wasserstein_g`, L_G = -E_z[D(G(z))].
    """
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def wasserstein_d(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic loss of WGAN: L_D = E_z[D(G(z))] - E_x[D(x)].

    Arjovsky et al. 2017, "Wasserstein GAN"; the critic must be 1-Lipschitz,
    which WGAN-GP enforces with `gradient_penalty` (Gulrajani et al. 2017,
    "Improved Training of Wasserstein GANs", Algorithm 1, λ = 10).
    """
    return fake_scores.mean() - real_scores.mean()


def wasserstein_g(fake_scores: Tensor) -> Tensor:
    """The generator loss of WGAN and of the hinge GAN: L_G = -E_z[D(G(z))].

    Arjovsky et al. 2017 (only the fake term depends on G); Lim & Ye 2017 and
    Miyato et al. 2018 use the same G loss against a hinge-trained D.
    """
    return -fake_scores.mean()


def least_squares_d(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The LSGAN discriminator loss with targets b = 1 (real), a = 0 (fake):
    L_D = ½E_x[(D(x) - 1)²] + ½E_z[D(G(z))²].

    Mao et al. 2017, "Least Squares Generative Adversarial Networks", with the
    0-1 coding (a = 0, b = 1, c = 1) of their experiments.
    """
    return 0.5 * (real_scores - 1).square().mean() + 0.5 * fake_scores.square().mean()


def least_squares_g(fake_scores: Tensor) -> Tensor:
    """The LSGAN generator loss with target c = 1: L_G = ½E_z[(D(G(z)) - 1)²].

    Mao et al. 2017. Unlike the minimax loss it does not saturate: samples far
    on the fake side get the largest gradient.
    """
    return 0.5 * (fake_scores - 1).square().mean()


def identity(scores: Tensor) -> Tensor:
    """The readout of a critic: its raw score, which is not a probability."""
    return scores


def gradient_penalty(discriminator: Callable[..., Tensor], real: Tensor, fake: Tensor,
                     rng: torch.Generator, **d_kwargs: Any) -> Tensor:
    """The WGAN-GP penalty, unweighted: E_x̂[(‖∇_x̂ D(x̂)‖₂ - 1)²].

    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1:
    x̂ = ε·x + (1 - ε)·G(z) with ε ~ U[0, 1] drawn from `rng`, one per sample. The caller
    multiplies by λ. The graph is kept, so the penalty trains D's parameters; G gets no
    gradient. `d_kwargs` go to the discriminator as they are (e.g. `y=labels`). The paper
    warns that batch norm in D breaks the per-sample penalty.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)  # (N, 1, ..., 1): one ε per sample
    # Drawn on the generator's own device, then moved: a CPU generator may feed CUDA data.
    eps = torch.rand(shape, generator=rng, device=rng.device, dtype=real.dtype).to(real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = discriminator(mixed, **d_kwargs)  # (N,)
    # The samples are independent, so the gradient of the sum holds each sample's gradient.
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)  # like real
    norms = grads.flatten(1).norm(2, dim=1)  # (N,)
    return (norms - 1).square().mean()


def r1_penalty(real_scores: Tensor, real: Tensor) -> Tensor:
    """The R1 penalty on real data, unweighted: E_x[‖∇_x D(x)‖²].

    Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?":
    R1 = γ/2 · E_x[‖∇_x D(x)‖²]; the caller multiplies by γ/2 and, when applied
    lazily every k steps, by k (Karras et al. 2020, "Analyzing and Improving the
    Image Quality of StyleGAN", lazy regularisation).
    `real` must have had requires_grad=True before D saw it; the graph is kept, so the
    penalty trains D's parameters.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty needs the gradient of D w.r.t. the real batch: call "
                         "real.requires_grad_(True) before computing real_scores = D(real)")
    # The samples are independent, so the gradient of the sum holds each sample's gradient.
    (grads,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)  # like real
    return grads.square().flatten(1).sum(1).mean()


@dataclass(frozen=True)
class Loss:
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (real_scores, fake_scores) -> scalar
    g_loss: Callable[[Tensor], Tensor]  # (fake_scores) -> scalar
    about: str
    # How a score reads as "D(x)" in the logs: a probability for the probabilistic
    # losses, the raw critic score for the others.
    readout: Callable[[Tensor], Tensor] = torch.sigmoid
    uses_gradient_penalty: bool = False  # WGAN-GP: D's loss adds train.gp_weight × gradient_penalty


LOSSES: dict[str, Loss] = {
    "minimax": Loss(minimax_d, minimax_g, "original min-max game, saturating G loss"),
    "nonsaturating": Loss(minimax_d, nonsaturating_g, "min-max D loss, -log D(G(z)) for G"),
    "hinge": Loss(hinge_d, wasserstein_g, "hinge D loss (Geometric GAN, SNGAN), -D(G(z)) for G",
                  readout=identity),
    "wasserstein": Loss(wasserstein_d, wasserstein_g, "WGAN critic loss with the WGAN-GP penalty",
                        readout=identity, uses_gradient_penalty=True),
    "least_squares": Loss(least_squares_d, least_squares_g, "LSGAN, targets 0 (fake) and 1 (real)",
                          readout=identity),
}
