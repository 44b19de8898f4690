"""generation: G maps Gaussian noise (and a requested class, when conditional) to an image or a 2-D point.

The classic GAN of Goodfellow et al. 2014: D judges x (with its class, for a conditional pair), G's
objective is the adversarial term alone. The draws keep the order the loop always had (the batch's
indices, then the latents, then the requested classes), so the same params give the same weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from gan import sampling
from gan.tasks import Batch, Task

if TYPE_CHECKING:
    from gan.state import Batches, State
    from gan.updates import Plan

Tensor = torch.Tensor


class Generation(Task):
    name = "generation"

    def __init__(self, latent_dim: int, num_classes: int = 0, mmd_weight: float = 0.0,
                 mmd_bandwidths: tuple[float, ...] = ()):
        self.latent_dim = latent_dim
        self.num_classes = num_classes  # > 0: conditional G and D
        # train.mmd_weight: G also matches its batch to D's real batch in MMD (a history column when on)
        self.mmd_weight, self.mmd_bandwidths = mmd_weight, tuple(mmd_bandwidths)
        self.terms = ("loss_adversarial", "loss_mmd") if mmd_weight else ()

    @classmethod
    def from_config(cls, cfg: Any, num_classes: int = 0) -> "Generation":
        """The generation task of params.yaml: its latent and the MMD term of train."""
        return cls(cfg.model.latent_dim, num_classes, cfg.train.mmd_weight, cfg.train.mmd_bandwidths)

    def labels(self, y: Tensor | None) -> dict[str, Tensor]:
        """The keyword arguments that hand classes to a conditional G or D; none otherwise."""
        return {"y": y} if self.num_classes and y is not None else {}

    def draw(self, batches: "Batches", count: int) -> Batch:
        drawn = batches.draw(count)
        return Batch(drawn["x"], self.labels(drawn.get("y")))

    def fake(self, state: "State", plan: "Plan", batch: Batch | None, graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """G(z) from fresh latents, and the classes they were asked for (from the same noise RNG)."""
        rng = state.noise_rng
        z = sampling.noise(plan.batch_size, self.latent_dim, rng, rng.device)
        fake_y = (torch.randint(self.num_classes, (plan.batch_size,), generator=rng, device=rng.device)
                  if self.num_classes else None)
        condition = self.labels(fake_y)
        with torch.set_grad_enabled(graph), plan.autocast():
            return plan.net(state.generator)(z, **condition), condition

    def g_loss(self, adversarial: Tensor, fake: Tensor, batch: Batch | None,
               features: Callable[[Tensor], list[Tensor]] | None = None) -> dict[str, Tensor]:
        """The adversarial term; with train.mmd_weight, plus λ · MMD² between G's batch and the reals D just saw.

        The MMD term (gaussian_mmd2, below) sees what D resolves poorly: the spread inside each mode
        of a 2-D mixture, which D leaves G free to squeeze (docs/recipes.md, "The spread inside the modes").
        """
        if not self.mmd_weight:
            return {"loss_g": adversarial}
        assert batch is not None, "the MMD term compares G's batch with the reals of the same step"
        matching = gaussian_mmd2(fake.float(), batch.real.float(), self.mmd_bandwidths)
        return {"loss_g": adversarial + self.mmd_weight * matching, "loss_adversarial": adversarial,
                "loss_mmd": matching}


def gaussian_mmd2(x: Tensor, y: Tensor, bandwidths: tuple[float, ...]) -> Tensor:
    """Unbiased MMD² between the rows of x (N, D) and y (M, D) under a sum of Gaussian kernels.

    k(a, b) = sum_s exp(-‖a - b‖² / (2 s²)) over the bandwidths s: the multi-scale kernel of
    Generative Moment Matching Networks (Li, Swersky & Zemel 2015; Dziugaite, Roy &
    Ghahramani 2015). MMD² = E k(x, x') + E k(y, y') - 2 E k(x, y), each mean without the
    diagonal of its own set: 0 in expectation when x and y come from one distribution, so
    a G that matches the data is not pushed anywhere. Differentiable in x and y.
    """
    if not bandwidths or min(bandwidths) <= 0:
        raise ValueError(f"gaussian_mmd2 needs positive bandwidths, got {bandwidths}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"gaussian_mmd2 needs at least 2 rows in each set, got {n} and {m}")
    z = torch.cat([x.flatten(1), y.flatten(1)]).float()  # (N + M, D)
    squares = z.square().sum(1)
    distances = (squares[:, None] + squares[None, :] - 2 * z @ z.T).clamp_min(0)  # (N + M)²: ‖a - b‖²
    kernel = sum(torch.exp(-distances / (2 * s * s)) for s in bandwidths)
    k_xx, k_yy, k_xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    within = lambda k, size: (k.sum() - k.diagonal().sum()) / (size * (size - 1))  # noqa: E731
    return within(k_xx, n) + within(k_yy, m) - 2 * k_xy.mean()
