"""Drawing from a generator and picturing it: noise, sample grids, latent walks, 2-D scatter plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid, save_image


def noise(count: int, latent_dim: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """Standard Gaussian latents z ~ N(0, I), (count, latent_dim), from a dedicated RNG."""
    return torch.randn(count, latent_dim, generator=generator, device=generator.device).to(device)


@torch.inference_mode()
def sample(generator: nn.Module, z: torch.Tensor, batch_size: int = 500, y: torch.Tensor | None = None) -> torch.Tensor:
    """G(z) (or G(z, y) for a conditional G) in batches, on z's device; the caller sets train/eval mode."""
    if y is None:
        return torch.cat([generator(chunk).float() for chunk in z.split(batch_size)])
    return torch.cat([generator(zc, y=yc).float() for zc, yc in zip(z.split(batch_size), y.split(batch_size))])


def balanced_labels(count: int, classes: int, device: torch.device | str) -> torch.Tensor:
    """Classes 0, 1, ..., K-1, 0, 1, ... for `count` samples: a conditional G asked for each class equally."""
    return torch.arange(count, device=device) % classes


def class_rows(classes: int, per_row: int, device: torch.device | str) -> torch.Tensor:
    """The labels of a grid `per_row` images wide with one row per class: 0 (per_row times), 1, ..."""
    return torch.arange(classes, device=device).repeat_interleave(per_row)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent rows a and b (N, D) at fractions t (T,) -> (N, T, D).

    Gaussian latents concentrate near a sphere; a straight line between two of them passes
    through low-norm latents G never saw, so a great-circle walk (White 2016) is the usual choice.
    """
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # (N, 1, 1)
    t = t[None, :, None]  # (1, T, 1)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a[:, None] + (torch.sin(t * omega) / so) * b[:, None]


def save_grid(images: torch.Tensor, path: Path, rows: int) -> None:
    """Images (N, C, H, W) in [-1, 1] as one PNG, `rows` images per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().cpu(), path, nrow=rows, normalize=True, value_range=(-1, 1), padding=2)


def grid_array(images: torch.Tensor, rows: int) -> np.ndarray:
    """The same grid as save_grid, as uint8 (H, W, C), for logging without a file."""
    grid = make_grid(images.float().cpu(), nrow=rows, normalize=True, value_range=(-1, 1), padding=2)
    return grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend: stages run without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_scatter(real: np.ndarray, fake: np.ndarray, path: Path, modes: np.ndarray | None = None) -> None:
    """Real and generated 2-D points on one plot, with the mixture's modes when known."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.3, label="real", color="tab:blue")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, alpha=0.3, label="generated", color="tab:orange")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="black", label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def save_walks(walks: np.ndarray, path: Path, real: np.ndarray | None = None) -> None:
    """2-D latent walks (R, T, 2) as lines over the real points: the 2-D form of an interpolation grid."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.2, color="tab:blue", label="real")
    for walk in walks:
        ax.plot(walk[:, 0], walk[:, 1], marker=".", linewidth=1)
    ax.set_aspect("equal")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
