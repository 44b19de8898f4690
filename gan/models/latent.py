"""A discrete latent carved out of the Gaussian one: K equally likely components.

The first coordinate of z ~ N(0, I) picks a component through its CDF,
c = floor(K * Phi(z_0)), uniform over 0..K-1, and the generator reads a learned embedding of c
beside the other coordinates. Each component can then be mapped to its own mode with no mass
in between, which a continuous map of a connected latent cannot do: it must lay thin
"bridges" between the modes it covers (off-mode 2-D points, digits half-way between classes).
This is the mixture-of-Gaussians latent of DeLiGAN (Gurumurthy et al. 2017) with equal,
fixed weights; on disconnected data see also Khayatkhoei et al. 2018 ("Disconnected Manifold
Learning for GANs"). G's input stays z ~ N(0, I), so sampling, interpolation and the logged
MLflow model need nothing new.
"""

from __future__ import annotations

import torch
from torch import nn


class ComponentLatent(nn.Module):
    """z (N, D) -> [z_1..z_{D-1}, embed(c)] (N, D - 1 + K), c = floor(K * Phi(z_0))."""

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        if components < 1 or latent_dim < 2:
            raise ValueError(f"a component latent needs components >= 1 and latent_dim >= 2 (z_0 picks the "
                             f"component, the rest stays noise), got components={components}, latent_dim={latent_dim}")
        self.latent_dim, self.components = latent_dim, components
        # K dimensions, like the class embedding of the conditional MLP: any offset per component
        self.embed = nn.Embedding(components, components)

    @property
    def out_dim(self) -> int:
        return self.latent_dim - 1 + self.components

    def component(self, z: torch.Tensor) -> torch.Tensor:
        """(N,) int64: the component of each latent, uniform over 0..K-1 for z_0 ~ N(0, 1)."""
        u = torch.special.ndtr(z[:, 0].float())  # (N,) in [0, 1]
        return (u * self.components).long().clamp_(0, self.components - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z[:, 1:], self.embed(self.component(z)).to(z.dtype)], dim=1)


class WithComponents(nn.Module):
    """A generator whose Gaussian latent first goes through ComponentLatent."""

    def __init__(self, generator: nn.Module, latent: ComponentLatent):
        super().__init__()
        self.latent, self.generator = latent, generator
        self.latent_dim = latent.latent_dim
        self.num_classes = getattr(generator, "num_classes", 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.latent(z)  # (N, D - 1 + K)
        return self.generator(h) if y is None else self.generator(h, y)
