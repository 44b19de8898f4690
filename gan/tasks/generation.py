"""generation: G maps Gaussian noise (and a requested class, when conditional) to an image or a 2-D point.

The classic GAN of Goodfellow et al. 2014: D judges x (with its class, for a conditional pair), G's
objective is the adversarial term alone. The draws keep the order the loop always had (the batch's
indices, then the latents, then the requested classes), so the same params give the same weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from gan import sampling
from gan.tasks import Batch, Task

if TYPE_CHECKING:
    from gan.state import Batches, State
    from gan.updates import Plan

Tensor = torch.Tensor


class Generation(Task):
    name = "generation"

    def __init__(self, latent_dim: int, num_classes: int = 0):
        self.latent_dim = latent_dim
        self.num_classes = num_classes  # > 0: conditional G and D

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
        return {"loss_g": adversarial}
