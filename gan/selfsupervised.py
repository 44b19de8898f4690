"""Self-supervised features for small unlabelled image sets: the DomainClassifier encoder trained with SimCLR.

Chen, Kornblith, Norouzi & Hinton 2020, "A Simple Framework for Contrastive Learning of Visual
Representations". Two augmented views of each image go through the encoder f and a projection head g;
the NT-Xent loss pulls the two views of an image together and pushes the other 2B - 2 views away. The
head is dropped after training: the encoder's features are what the FID-style scores use, where a
random network's are weak and there are no labels to train a classifier on (e.g. 100 faces).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.augment import DiffAugment
from gan.classifier import DomainClassifier, new_classifier
from gan.images import to_tensor
from gan.runtime import generator_for

PROJECTION_DIM = 64
# DiffAugment's transformations, after the crop and flip below. Not its cutout: erasing half the side of
# a small image cost k-NN accuracy on digits (0.86 without it, 0.81 with, linear probe alike), and the
# k-NN metrics (precision, recall, density, coverage, data copying) read exactly those neighbourhoods.
VIEW_POLICY = "color,translation"
CROP_AREA = (0.6, 1.0)  # share of the image's area a random resized crop keeps
CROP_ASPECT = (3 / 4, 4 / 3)  # width / height of the crop, drawn log-uniformly (SimCLR's range)


def projection_head(feature_dim: int) -> nn.Sequential:
    """g: features (N, feature_dim) -> (N, PROJECTION_DIM), the space the loss is computed in."""
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True),
                         nn.Linear(feature_dim, PROJECTION_DIM))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The normalised temperature-scaled cross-entropy of SimCLR (eq. 1), averaged over all 2B views.

        l(i, j) = -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) ),
        sim(u, v) = u.v / (|u| |v|),

    where (i, j) are the two views of one image, z1[b] and z2[b], and k runs over the other 2B - 1 views.
    """
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D) on the unit sphere
    logits = z @ z.T / temperature  # (2B, 2B)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # view b <-> view b + B
    return F.cross_entropy(logits, partner)


def random_resized_crop(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Per sample, a crop of CROP_AREA of the area and CROP_ASPECT shape, resized back to (H, W) bilinearly.

    Written by hand (affine_grid + grid_sample) for the same reason as gan/augment.py: torchvision draws one
    crop per call from the global RNG, not one per sample from a given generator.
    """
    n = len(x)
    area = _uniform(rng, n, *CROP_AREA)
    aspect = torch.exp(_uniform(rng, n, *np.log(CROP_ASPECT)))
    width, height = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)  # fractions of the side
    # grid coordinates run over [-1, 1]: a crop of fraction w has its centre anywhere in [-(1 - w), 1 - w]
    centre_x, centre_y = (1 - width) * _uniform(rng, n, -1, 1), (1 - height) * _uniform(rng, n, -1, 1)
    zero = torch.zeros_like(width)
    theta = torch.stack([torch.stack([width, zero, centre_x], 1), torch.stack([zero, height, centre_y], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _uniform(rng: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=rng, device=rng.device)  # (N,)


def random_flip(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flipped = torch.rand(len(x), generator=rng, device=rng.device) < 0.5
    return torch.where(flipped.to(x.device)[:, None, None, None], x.flip(3), x)


class Views:
    """One SimCLR view of each image: crop, flip, then DiffAugment's colour, translation and cutout.

    Every parameter is drawn per sample from `rng`, never from the global RNGs.
    """

    def __init__(self, rng: torch.Generator):
        self.rng = rng
        self.diffaugment = DiffAugment(VIEW_POLICY, rng)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.diffaugment(random_flip(random_resized_crop(x, self.rng), self.rng))  # (N, C, H, W)


def train_self_supervised(train_x: np.ndarray, *, steps: int, batch_size: int, lr: float, seed: int,
                          device: torch.device | str = "cpu",
                          temperature: float = 0.5) -> tuple[DomainClassifier, list[float]]:
    """SimCLR on uint8 (N, H, W, C) images; returns the encoder alone, in eval mode, and the loss of each step.

    Each step draws min(batch_size, N) images without replacement and two views of each. The encoder starts
    from `new_classifier(C, H, 0, seed)` and everything random comes from generators seeded by `seed`, so on
    the CPU the same seed (and thread count) gives the same weights bit for bit.
    """
    _check_inputs(train_x, steps, batch_size, temperature)
    device = torch.device(device)
    _, size, _, channels = train_x.shape
    encoder = new_classifier(channels, size, 0, seed).to(device).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = projection_head(encoder.feature_dim).to(device).train()
    images = torch.as_tensor(train_x, device=device)  # (N, H, W, C) uint8
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=lr)
    batch_rng = generator_for(seed, "features.batches")
    views = Views(generator_for(seed, "features.views", device))
    batch = min(batch_size, len(images))
    losses = []
    for _ in range(steps):
        index = torch.randperm(len(images), generator=batch_rng)[:batch].to(device)
        x = to_tensor(images[index], device)  # (B, C, H, W) in [-1, 1]
        z1, z2 = head(encoder.features(views(x))), head(encoder.features(views(x)))  # (B, PROJECTION_DIM) each
        loss = nt_xent(z1, z2, temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return encoder.eval(), losses


def _check_inputs(train_x: np.ndarray, steps: int, batch_size: int, temperature: float) -> None:
    if not isinstance(train_x, np.ndarray) or train_x.dtype != np.uint8 or train_x.ndim != 4:
        raise ValueError(f"self-supervised features need uint8 images (N, H, W, C); got "
                         f"{getattr(train_x, 'dtype', type(train_x).__name__)} of shape {np.shape(train_x)}")
    if train_x.shape[1] != train_x.shape[2]:
        raise ValueError(f"self-supervised features need square images; got {train_x.shape[1]} x {train_x.shape[2]}")
    if len(train_x) < 2 or batch_size < 2:
        raise ValueError(f"the contrastive loss needs at least 2 images per batch; got {len(train_x)} images "
                         f"and batch_size {batch_size}")
    if steps < 1 or temperature <= 0:
        raise ValueError(f"steps must be >= 1 and temperature > 0; got steps={steps}, temperature={temperature}")
