"""Does the generator copy its training images? Each generated sample beside its nearest training
images in a feature space, the memorisation figure StudioGAN draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from gan.sampling import pyplot

PADDING = 2  # pixels around each cell, as gan.sampling's grids
SEPARATOR = 6  # white pixels between the generated column and the neighbour columns
SEPARATOR_VALUE = 255


def _check_images(samples: np.ndarray, train_images: np.ndarray, indices: np.ndarray) -> None:
    for name, images in (("samples", samples), ("train_images", train_images)):
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"{name} must be uint8 (N, H, W, C), got {images.dtype} of shape {images.shape}")
        if images.shape[0] == 0:
            raise ValueError(f"{name} is empty: need at least one image")
        if images.shape[3] not in (1, 3):
            raise ValueError(f"{name} must have 1 (grayscale) or 3 (RGB) channels, got {images.shape[3]}")
    if samples.shape[1:] != train_images.shape[1:]:
        raise ValueError(
            f"image shapes differ: samples are {samples.shape[1:]}, train_images {train_images.shape[1:]} (H, W, C)"
        )
    if indices.ndim != 2 or indices.shape[0] != samples.shape[0] or indices.shape[1] == 0:
        raise ValueError(
            f"indices must be (S, k) with S = {samples.shape[0]} samples and k >= 1, got shape {indices.shape}"
        )
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {indices.dtype}")
    if indices.min() < 0 or indices.max() >= train_images.shape[0]:
        raise ValueError(
            f"indices must lie in [0, {train_images.shape[0]}) for {train_images.shape[0]} training images, "
            f"got {indices.min()}..{indices.max()}"
        )


def _column_grid(images: np.ndarray, per_row: int) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 (3, rows, cols) grid, `per_row` images per row, black 2 px padding."""
    # make_grid with uint8 in and normalize off copies pixels exactly; it renders 1 channel as RGB.
    return make_grid(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), nrow=per_row, padding=PADDING)


def neighbour_grid(samples: np.ndarray, train_images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Samples (S, H, W, C) beside their training neighbours -> uint8 (rows, cols, 3) image.

    Row i is sample i, a white separator, then train_images[indices[i, 0]], ..., [indices[i, k-1]],
    each cell padded by 2 px as in gan.sampling's grids. Grayscale is rendered as RGB, as there.
    """
    samples, train_images, indices = np.asarray(samples), np.asarray(train_images), np.asarray(indices)
    _check_images(samples, train_images, indices)
    generated = _column_grid(samples, per_row=1)  # (3, S*(H+2)+2, W+4)
    neighbours = _column_grid(train_images[indices.reshape(-1)], per_row=indices.shape[1])  # (3, same, k*(W+2)+2)
    gap = torch.full((3, generated.shape[1], SEPARATOR), SEPARATOR_VALUE, dtype=torch.uint8)
    return torch.cat([generated, gap, neighbours], dim=2).permute(1, 2, 0).numpy()


def _show(ax, image: np.ndarray) -> None:
    if image.shape[2] == 1:
        ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_neighbour_figure(
    samples: np.ndarray,
    train_images: np.ndarray,
    indices: np.ndarray,
    distances: np.ndarray,
    path: Path,
    title: str = "",
) -> None:
    """The neighbour grid as a PNG: column headers, and each neighbour's feature distance under it.

    One axes per cell rather than one imshow of neighbour_grid, so that the labels sit between
    cells instead of over the images; the layout (generated column, gap, k neighbours) is the same.
    """
    samples, train_images, indices = np.asarray(samples), np.asarray(train_images), np.asarray(indices)
    _check_images(samples, train_images, indices)
    distances = np.asarray(distances)
    if distances.shape != indices.shape:
        raise ValueError(f"distances must match indices' shape {indices.shape}, got {distances.shape}")
    rows, k = indices.shape
    plt = pyplot()
    fig, axes = plt.subplots(
        rows, k + 2, figsize=(1.1 * (k + 1.25), 1.15 * rows + 0.6), dpi=120, squeeze=False,
        layout="constrained", gridspec_kw={"width_ratios": [1, 0.25] + [1] * k},
    )
    for row in range(rows):
        axes[row, 1].axis("off")  # the separator column
        _show(axes[row, 0], samples[row])
        for column in range(k):
            ax = axes[row, column + 2]
            _show(ax, train_images[indices[row, column]])
            ax.set_xlabel(f"d = {distances[row, column]:.4g}", fontsize=7, labelpad=2)
    axes[0, 0].set_title("generated", fontsize=9)
    for column in range(k):
        axes[0, column + 2].set_title(f"nearest {column + 1}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
