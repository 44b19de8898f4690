"""Registry of GAN objectives. The maths of each objective lives here and nowhere else.

Discriminators return logits l = D_logit(x); the probability that x is real is
D(x) = sigmoid(l). Writing log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l)
keeps every loss finite where a sigmoid followed by a log would underflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


@dataclass(frozen=True)
class Loss:
    d_loss: Callable[[Tensor, Tensor], Tensor]  # (real_logits, fake_logits) -> scalar
    g_loss: Callable[[Tensor], Tensor]  # (fake_logits) -> scalar
    about: str


LOSSES: dict[str, Loss] = {
    "minimax": Loss(minimax_d, minimax_g, "original min-max game, saturating G loss"),
    "nonsaturating": Loss(minimax_d, nonsaturating_g, "min-max D loss, -log D(G(z)) for G"),
}
