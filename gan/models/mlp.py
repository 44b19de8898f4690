"""Fully connected G and D: the 2-D mixture experiments of the mode-collapse literature.

Works on any sample shape by flattening, so it also serves as a fast baseline on images.
Conditional (num_classes > 0): G reads z concatenated with a learned class embedding (the
cGAN of Mirza & Osindero 2014), D ends in a projection head (Miyato & Koyama 2018).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.models.conditional import ProjectionHead, check_labels


class Generator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int, depth: int = 3,
                 num_classes: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.data_shape = data_shape
        self.is_image = len(data_shape) == 3
        # num_classes dimensions: an embedding followed by the first Linear can then give each
        # class any offset, as a one-hot label would, while staying a plain lookup.
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        out = math.prod(data_shape)
        layers: list[nn.Module] = []
        size = latent_dim + num_classes
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, out))
        if self.is_image:
            layers.append(nn.Tanh())  # images live in [-1, 1]; points are unbounded
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "generator")
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)  # (N, latent + num_classes)
        x = self.net(z)  # (N, prod(data_shape))
        if self.is_image:
            h, w, c = self.data_shape
            return x.view(-1, c, h, w)  # (N, C, H, W)
        return x


class Discriminator(nn.Module):
    def __init__(self, in_features: int, width: int, depth: int = 3, num_classes: int = 0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = in_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        layers.append(ProjectionHead(size, num_classes))  # last in `net`: state-dict keys as before
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = self.net[:-1](x)  # (N, ...) -> (N, width)
        return self.net[-1](features, y)  # (N,) logits


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False) -> tuple[nn.Module, nn.Module]:
    """(G, D); D sees `pack` samples flattened side by side. No BN here, so SN needs no change."""
    return (Generator(data_shape, latent_dim, width, num_classes=num_classes),
            Discriminator(math.prod(data_shape) * pack, width, num_classes=num_classes))
