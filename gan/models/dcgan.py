"""DCGAN (Radford, Metz & Chintala 2016) for 28, 32 and 64 px images.

G: linear projection to a 4x4 (or 7x7 for 28 px) map, then stride-2 transposed convs with
batch norm and ReLU, tanh out. D: stride-2 convs with LeakyReLU(0.2), batch norm after the
first, a linear head. Channels halve (G) or double (D) at each stride, starting from `width`.
Weights start as N(0, 0.02), as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn


def _plan(image_size: int) -> tuple[int, int]:
    """(base side, number of stride-2 upsamplings) for an image side."""
    return {28: (7, 2), 32: (4, 3), 64: (4, 4)}[image_size]


class Generator(nn.Module):
    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int):
        super().__init__()
        self.latent_dim = latent_dim
        base, ups = _plan(image_size)
        top = width * 2 ** (ups - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, top * base * base, bias=False),
            nn.Unflatten(1, (top, base, base)),
            nn.BatchNorm2d(top),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        ch = top
        for _ in range(ups - 1):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        _init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))  # (N, latent) -> (N, top, base, base) -> (N, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int):
        super().__init__()
        base, downs = _plan(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(downs - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * base * base, 1)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # (N, C, H, W) -> (N, top, base, base)
        return self.head(h.flatten(1)).squeeze(1)  # (N,) logits


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(data_shape: tuple[int, ...], latent_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    image_size, _, channels = data_shape
    return Generator(image_size, channels, latent_dim, width), Discriminator(image_size, channels, width)
