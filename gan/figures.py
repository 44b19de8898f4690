"""Pictures of paired results: columns such as source | output | target, and zoomed crops of them.

Every column is a uint8 NHWC array; arrays of different sizes (a low-resolution source next to its
high-resolution target) are shown at the size of the largest with nearest-neighbour upscaling, so each
input pixel stays a visible block instead of being smoothed into something the model never saw.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gan.pairs import hole

PANEL_INCHES = 1.6  # the height of one image in the figure
ZOOM_PIXELS = 128  # a zoomed crop is upscaled to at least this many pixels on its long side
HOLE_GRAY = 128  # how a missing (inpainting) region is drawn


def _nearest(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (N, h, w, C) -> (N, height, width, C) by nearest neighbour: output pixel i takes input i * h // height."""
    rows = np.arange(height) * images.shape[1] // height
    cols = np.arange(width) * images.shape[2] // width
    return images[:, rows][:, :, cols]


def _check_columns(columns: list[tuple[str, np.ndarray]], rows: int) -> None:
    if not columns:
        raise ValueError("figures: no columns to draw")
    for title, images in columns:
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise ValueError(f"figures: column {title!r} must be images (N, H, W, C) with C = 1 or 3, "
                             f"got shape {images.shape} (show a mask source through source_view)")
        if len(images) < rows:
            raise ValueError(f"figures: column {title!r} has {len(images)} images, fewer than rows={rows}")


def _draw(panels: list[tuple[str, np.ndarray]], path: Path, rows: int) -> None:
    """One PNG: a column per (title, uint8 (>= rows, H, W, C)) panel, all of the same H and W."""
    from gan.sampling import pyplot  # matplotlib loads only when a figure is drawn

    plt = pyplot()
    height, width = panels[0][1].shape[1:3]
    panel_w = PANEL_INCHES * width / height
    fig, axes = plt.subplots(rows, len(panels), squeeze=False, dpi=100,
                             figsize=(panel_w * len(panels), PANEL_INCHES * rows + 0.3))
    for col, (title, images) in enumerate(panels):
        for row in range(rows):
            ax = axes[row, col]
            image = images[row]
            if image.shape[2] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_axis_off()
        axes[0, col].set_title(title, fontsize=9)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.04, hspace=0.04)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def _full_size(columns: list[tuple[str, np.ndarray]], rows: int) -> list[tuple[str, np.ndarray]]:
    """The first `rows` images of every column at the size of the largest column."""
    height = max(images.shape[1] for _, images in columns)
    width = max(images.shape[2] for _, images in columns)
    return [(title, _nearest(images[:rows], height, width)) for title, images in columns]


def save_columns(columns: list[tuple[str, np.ndarray]], path: Path, rows: int) -> None:
    """A PNG with one column per (title, uint8 NHWC images) and `rows` rows: the first `rows` images of each.

    Smaller arrays are upscaled by nearest neighbour to the largest; gray images are drawn gray.
    """
    _check_columns(columns, rows)
    _draw(_full_size(columns, rows), path, rows)


def save_zoom(columns: list[tuple[str, np.ndarray]], path: Path, rows: int,
              box: tuple[int, int, int, int]) -> None:
    """Like `save_columns`, but every image cropped to box = (top, left, height, width) and enlarged.

    The box is in the coordinates of the largest column (low-resolution columns are first brought to that
    size by nearest neighbour, so the box covers the same scene in each); the crop is then enlarged by a
    whole factor with nearest neighbour, so fine detail (bicubic | output | target) is visible pixel by pixel.
    """
    _check_columns(columns, rows)
    full = _full_size(columns, rows)
    top, left, height, width = box
    full_h, full_w = full[0][1].shape[1:3]
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > full_h or left + width > full_w:
        raise ValueError(f"save_zoom: box {box} (top, left, height, width) is not inside {full_h} x {full_w}")
    factor = max(1, math.ceil(ZOOM_PIXELS / max(height, width)))
    crops = [(title, images[:, top:top + height, left:left + width]) for title, images in full]
    _draw([(title, _nearest(c, height * factor, width * factor)) for title, c in crops], path, rows)


def source_view(sources: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """What a person sees of paired sources, as uint8 NHWC images drawable next to the targets.

    `target_shape` is the targets' shape, (N, H, W, C) or (H, W, C). A mask source (C + 1 channels, the last
    one the hole as `gan.pairs.masked` writes it) shows its image with the hole mid-gray (128), since the
    zeros there would read as black content; a smaller (low-resolution) source is upscaled to H x W by
    nearest neighbour; any other source (a 1-channel edge map, say) is returned as it is.
    """
    height, width, channels = target_shape[-3:]
    view = sources
    if sources.shape[3] == channels + 1:
        view = sources[..., :channels].copy()
        view[hole(sources)] = HOLE_GRAY
    if view.shape[1:3] != (height, width):
        view = _nearest(view, height, width)
    return view
