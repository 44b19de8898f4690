"""DCGAN (Radford, Metz & Chintala 2016) for 28, 32 and 64 px images.

G: linear projection to a 4x4 (or 7x7 for 28 px) map, then stride-2 transposed convs with
batch norm and ReLU, tanh out. `upsample="nearest"` replaces each 4x4 stride-2 transposed conv by
a weightless nearest-neighbour 2x upsampling and a 3x3 conv (resize-convolution, Odena, Dumoulin &
Olah 2016, "Deconvolution and Checkerboard Artifacts"): every output pixel then sees the same
number of weights, so the uneven overlap of transposed convs cannot paint a checkerboard. D: stride-2 convs with LeakyReLU(0.2), batch norm after the
first, a linear head. Channels halve (G) or double (D) at each stride, starting from `width`.
Weights start as N(0, 0.02), as in the paper.

Conditional (num_classes > 0): every batch norm of G becomes class-conditional batch norm
and D's head a projection head (Miyato & Koyama 2018). With spectral normalisation D drops
its batch norm: BN rescales by batch statistics after the conv, which undoes the Lipschitz
bound SN puts on each layer (Miyato et al. 2018 use no normalisation layer in D either).
"""

from __future__ import annotations

import torch
from torch import nn

from gan.models.conditional import ConditionalSequential, ProjectionHead, batch_norm, check_labels


def _plan(image_size: int) -> tuple[int, int]:
    """(base side, number of stride-2 upsamplings) for an image side."""
    return {28: (7, 2), 32: (4, 3), 64: (4, 4)}[image_size]


def upsample_conv(in_ch: int, out_ch: int, upsample: str, bias: bool) -> nn.Module:
    """A 2x upsampling layer: (N, in, H, W) -> (N, out, 2H, 2W)."""
    if upsample == "transposed":
        return nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=bias)
    if upsample == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=bias))
    raise ValueError(f"upsample must be 'transposed' or 'nearest', got {upsample!r}")


class Generator(nn.Module):
    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int, num_classes: int = 0,
                 upsample: str = "transposed", vector: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes  # with `vector`: the size of a condition vector (gan.models.conditional)
        base, ups = _plan(image_size)
        top = width * 2 ** (ups - 1)
        self.project = ConditionalSequential(
            nn.Linear(latent_dim, top * base * base, bias=False),
            nn.Unflatten(1, (top, base, base)),
            batch_norm(top, num_classes, vector),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        ch = top
        for _ in range(ups - 1):
            blocks += [upsample_conv(ch, ch // 2, upsample, bias=False), batch_norm(ch // 2, num_classes, vector),
                       nn.ReLU(True)]
            ch //= 2
        blocks += [upsample_conv(ch, channels, upsample, bias=True), nn.Tanh()]
        self.body = ConditionalSequential(*blocks)
        normal_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "generator")
        h = self.project(z, y)  # (N, latent) -> (N, top, base, base)
        return self.body(h, y)  # (N, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, num_classes: int = 0, batch_norm: bool = True,
                 vector: bool = False):
        super().__init__()
        self.num_classes = num_classes
        base, downs = _plan(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(downs - 1):
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batch_norm))  # BN's shift replaces the bias
            if batch_norm:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        self.body = nn.Sequential(*layers)
        self.head = ProjectionHead(ch * base * base, num_classes, vector)
        normal_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = self.body(x).flatten(1)  # (N, C, H, W) -> (N, top, base, base) -> (N, top * base^2)
        return self.head(features, y)  # (N,) logits


def normal_init(module: nn.Module) -> None:
    """DCGAN's (and pix2pix's "normal") init: N(0, 0.02) weights, N(1, 0.02) batch-norm gains, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:  # conditional BN keeps its own 1/0 start
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False, upsample: str = "transposed", vector: bool = False) -> tuple[nn.Module, nn.Module]:
    """(G, D); D sees `pack` images stacked on channels, and has no BN when SN will be applied to it.
    `vector`: conditioned on a vector of size num_classes (a sentence embedding) instead of a class."""
    image_size, _, channels = data_shape
    return (Generator(image_size, channels, latent_dim, width, num_classes, upsample, vector),
            Discriminator(image_size, channels * pack, width, num_classes, batch_norm=not spectral_norm,
                          vector=vector))
