"""Fully connected G and D: the 2-D mixture experiments of the mode-collapse literature.

The defaults are the 2-D architecture of PacGAN (Lin et al. 2018, section 5.1, after
VEEGAN, Srivastava et al. 2017): G is `depth` fully connected layers with batch norm and
ReLU, D is `depth` maxout layers (Goodfellow et al. 2013, 5 pieces). `g_norm: none` and
`d_activation: leaky_relu` give the plain MLP pair of the original GAN experiments.

Works on any sample shape by flattening, so it also serves as a fast baseline on images.
Conditional (num_classes > 0): G reads z concatenated with a learned class embedding (the
cGAN of Mirza & Osindero 2014), D ends in a projection head (Miyato & Koyama 2018).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan.models.conditional import ProjectionHead, check_labels

MAXOUT_PIECES = 5  # PacGAN's and VEEGAN's D


class Maxout(nn.Module):
    """max over `pieces` affine maps: h_i = max_j (W_j x + b_j)_i (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int = MAXOUT_PIECES):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)  # (N, out * pieces)
        return h.view(-1, self.out_features, self.pieces).amax(dim=2)  # (N, out)


class Generator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], latent_dim: int, width: int, depth: int = 4,
                 num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"MLP generator norm must be 'batch' or 'none', got {norm!r}")
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
            if norm == "batch":  # BN's shift replaces the bias
                layers += [nn.Linear(size, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
            else:
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
    def __init__(self, in_features: int, width: int, depth: int = 3, num_classes: int = 0,
                 activation: str = "maxout"):
        super().__init__()
        if activation not in ("maxout", "leaky_relu"):
            raise ValueError(f"MLP discriminator activation must be 'maxout' or 'leaky_relu', got {activation!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        size = in_features
        for _ in range(depth):
            if activation == "maxout":
                layers.append(Maxout(size, width))
            else:
                layers += [nn.Linear(size, width), nn.LeakyReLU(0.2)]
            size = width
        layers.append(ProjectionHead(size, num_classes))  # last in `net`: state-dict keys as before
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = self.net[:-1](x)  # (N, ...) -> (N, width)
        return self.net[-1](features, y)  # (N,) logits


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False, depth: int = 4, d_depth: int = 3, d_width: int = 0, g_norm: str = "batch",
          d_activation: str = "maxout") -> tuple[nn.Module, nn.Module]:
    """(G, D); D sees `pack` samples flattened side by side. No BN in D, so SN needs no change.

    G: `depth` hidden layers of `width` units; D: `d_depth` hidden layers of `d_width` units
    (0: `width`).
    """
    return (Generator(data_shape, latent_dim, width, depth, num_classes=num_classes, norm=g_norm),
            Discriminator(math.prod(data_shape) * pack, d_width or width, d_depth, num_classes=num_classes,
                          activation=d_activation))
