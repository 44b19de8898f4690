"""SRResNet / SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a GAN").

G follows MSRResNet, the modified SRResNet of ESRGAN (Wang et al. 2018) as BasicSR builds it: a
3x3 conv with LeakyReLU(0.1), `blocks` residual blocks conv3x3-ReLU-conv3x3 without batch norm
(batch norm's batch statistics bring artefacts and cost accuracy in super-resolution, Lim et al.
2017, EDSR), log2(scale) upsampling stages of a conv to 4x the channels and PixelShuffle(2) (the
sub-pixel convolution of Shi et al. 2016, free of the checkerboard of transposed convs), then
conv3x3-LeakyReLU-conv3x3 to the image. The bilinear upsampling of the low-resolution input is
added to the output, so G only learns the residual detail that interpolation cannot give. No
tanh: the residual must be free to push past interpolation's values either way.

D is the PatchGAN of gan.models.pix2pix. SRGAN's D is unconditional: it judges the high-resolution
image alone. Every conv starts kaiming-normal scaled by 0.1 (BasicSR's MSRResNet applies its
default_init_weights(scale=0.1) to all of them): each block starts near the identity, so a deep stack
trains stably, and G starts near the bilinear upsampling it adds to; biases 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.models.pix2pix import PatchDiscriminator, check_unconditional

SCALES = (2, 4)
RESIDUAL_INIT_SCALE = 0.1


class ResidualBlock(nn.Module):
    """x + conv3x3(ReLU(conv3x3(x))), no batch norm: keeps shape (N, width, h, w)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SRResNet(nn.Module):
    """Low-resolution image (N, C, H/scale, W/scale) in [-1, 1] -> (N, C, H, W)."""

    def __init__(self, channels: int, width: int, blocks: int, scale: int):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"SRResNet upsamples by 2 or 4 (task.scale), got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.1))
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        stages: list[nn.Module] = []
        for _ in range(scale.bit_length() - 1):  # log2(scale) stages, each doubling the side
            stages += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1)]
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.1),
                                  nn.Conv2d(width, channels, 3, 1, 1))
        _init_weights(self)

    def forward(self, lowres: torch.Tensor) -> torch.Tensor:
        h = self.body(self.head(lowres))  # (N, width, h, w)
        residual = self.tail(self.upsample(h))  # (N, C, scale h, scale w)
        base = F.interpolate(lowres, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + residual


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs scaled by 0.1, zero biases (BasicSR's MSRResNet)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
            with torch.no_grad():
                m.weight.mul_(RESIDUAL_INIT_SCALE)  # near-identity blocks, and G near its bilinear base


def build(data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0, pack: int = 1,
          spectral_norm: bool = False, scale: int, blocks: int = 8, patch: int = 16) -> tuple[nn.Module, nn.Module]:
    """(SRResNet G, PatchGAN D) for high-resolution images of data_shape (H, W, C), upsampled by `scale`.

    latent_dim is ignored: G takes no z, only the low-resolution image. D judges the
    high-resolution image alone and has no batch norm when spectral norm will be applied to it.
    """
    check_unconditional("srresnet", num_classes, pack)
    image_size, _, channels = data_shape
    if scale not in SCALES:
        raise ValueError(f"task.scale must be 2 or 4 for model.arch=srresnet, got {scale}")
    if image_size % scale:
        raise ValueError(f"data.image_size ({image_size}) must be divisible by task.scale ({scale})")
    return (SRResNet(channels, width, blocks, scale),
            PatchDiscriminator(image_size, channels, 0, width, patch, batch_norm=not spectral_norm))
