"""The SNGAN ResNet for 32x32 images: the CIFAR-10 model of Miyato et al. 2018 (appendix B).

Its blocks follow Gulrajani et al. 2017 (WGAN-GP). G: z -> 4x4 map, three up-sampling
residual blocks with batch norm, BN-ReLU-conv3x3-tanh out; 4·width channels (256 at width
64, as in the paper). D: an optimised first block, one down-sampling and two plain residual
blocks with 2·width channels (128 at width 64), ReLU, global sum pooling, linear score. D has
no normalisation layer, so spectral norm alone bounds its Lipschitz constant.
Conditional: G's batch norms are class-conditional and D ends in a projection head
(Miyato & Koyama 2018). Weights start Xavier-uniform with gain √2 on the residual convs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.conditional import ProjectionHead, batch_norm, check_labels, with_labels

IMAGE_SIZE = 32
BASE = 4  # G's first map is BASE x BASE; three up-samplings reach 32


class GeneratorBlock(nn.Module):
    """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 plus an up-sampled 1x1 conv shortcut; doubles the side."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int):
        super().__init__()
        self.norm1 = batch_norm(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = batch_norm(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(with_labels(self.norm1, x, y)), scale_factor=2)  # (N, Cin, 2H, 2W)
        h = self.conv2(F.relu(with_labels(self.norm2, self.conv1(h), y)))  # (N, Cout, 2H, 2W)
        # A 1x1 conv commutes with nearest up-sampling: convolving first is the same map, 4x cheaper.
        return h + F.interpolate(self.shortcut(x), scale_factor=2)


class DiscriminatorBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 (then avg-pool when down-sampling) plus a shortcut.

    The first block of D is "optimised" (no ReLU on the input image, pool before the
    shortcut's 1x1 conv); the shortcut is a 1x1 conv when shape changes, else the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool = False):
        super().__init__()
        self.downsample = downsample
        self.first = first
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        learned = downsample or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learned else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))  # (N, Cout, H, W)
        if self.downsample:
            h = F.avg_pool2d(h, 2)  # (N, Cout, H/2, W/2)
            x = F.avg_pool2d(x, 2)  # pooling then the 1x1 conv: the same map as conv then pool, 4x cheaper
        return h + self.shortcut(x)


class Generator(nn.Module):
    def __init__(self, channels: int, latent_dim: int, width: int, num_classes: int = 0):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.hidden = 4 * width
        self.project = nn.Linear(latent_dim, self.hidden * BASE * BASE)
        self.blocks = nn.ModuleList(GeneratorBlock(self.hidden, self.hidden, num_classes) for _ in range(3))
        self.norm = batch_norm(self.hidden, num_classes)
        self.to_image = nn.Conv2d(self.hidden, channels, 3, padding=1)
        _init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "generator")
        h = self.project(z).view(-1, self.hidden, BASE, BASE)  # (N, latent) -> (N, 4w, 4, 4)
        for block in self.blocks:
            h = block(h, y)  # -> (N, 4w, 32, 32) after three blocks
        h = F.relu(with_labels(self.norm, h, y))
        return torch.tanh(self.to_image(h))  # (N, C, 32, 32)


class Discriminator(nn.Module):
    def __init__(self, channels: int, width: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        hidden = 2 * width
        self.blocks = nn.Sequential(
            DiscriminatorBlock(channels, hidden, downsample=True, first=True),  # (N, 2w, 16, 16)
            DiscriminatorBlock(hidden, hidden, downsample=True),  # (N, 2w, 8, 8)
            DiscriminatorBlock(hidden, hidden, downsample=False),
            DiscriminatorBlock(hidden, hidden, downsample=False),
        )
        self.head = ProjectionHead(hidden, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        features = F.relu(self.blocks(x)).sum(dim=(2, 3))  # (N, C, 32, 32) -> (N, 2w, 8, 8) -> (N, 2w)
        return self.head(features, y)  # (N,) logits


def _init_weights(module: nn.Module) -> None:
    """Xavier-uniform, gain √2 inside residual branches (they feed a ReLU), 1 elsewhere; zero biases."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            residual = name.endswith(("conv1", "conv2"))
            nn.init.xavier_uniform_(m.weight, gain=math.sqrt(2) if residual else 1.0)
            nn.init.zeros_(m.bias)


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False) -> tuple[nn.Module, nn.Module]:
    """(G, D) for 32x32 images; D sees `pack` images stacked on channels. D has no BN, so SN needs no change."""
    image_size, _, channels = data_shape
    if image_size != IMAGE_SIZE:
        raise ValueError(f"the resnet architecture (SNGAN's CIFAR-10 model) is for {IMAGE_SIZE}x{IMAGE_SIZE} "
                         f"images, got {image_size}x{image_size}; set data.image_size: {IMAGE_SIZE} "
                         f"or use model.arch: dcgan")
    return (Generator(channels, latent_dim, width, num_classes),
            Discriminator(channels * pack, width, num_classes))
