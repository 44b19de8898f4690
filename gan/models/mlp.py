"""Fully connected G and D: the 2-D mixture experiments of the mode-collapse literature.

Works on any sample shape by flattening, so it also serves as a fast baseline on images.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Generator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int, depth: int = 3):
        super().__init__()
        self.latent_dim = latent_dim
        self.data_shape = data_shape
        self.is_image = len(data_shape) == 3
        out = math.prod(data_shape)
        layers: list[nn.Module] = []
        size = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, out))
        if self.is_image:
            layers.append(nn.Tanh())  # images live in [-1, 1]; points are unbounded
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z)  # (N, prod(data_shape))
        if self.is_image:
            h, w, c = self.data_shape
            return x.view(-1, c, h, w)  # (N, C, H, W)
        return x


class Discriminator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], width: int, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(data_shape)
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (N,) logits


def build(data_shape: tuple[int, ...], latent_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    return Generator(data_shape, latent_dim, width), Discriminator(data_shape, width)
