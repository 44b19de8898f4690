"""Two attributes of a handwritten stroke, measured on the pixels alone (numpy; no model).

- thickness: the share of ink, the mean intensity of the image in [0, 1];
- slant: the ink's second-order moment mu11 / mu02, sign-flipped so that it is positive when the strokes
  lean right (image rows grow downwards).

`gan arithmetic` finds latent directions along them, text-to-image writes them into captions
(gan.captions) and scores whether G honours them (gan.tasks.prompting).
"""

from __future__ import annotations

import numpy as np

ATTRIBUTES = ("thickness", "slant")


def attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, H, W, C) -> {name: (N,) values}: ink share and slant of each image (channels averaged)."""
    ink = images.astype(np.float64).mean(axis=3) / 255.0  # (N, H, W) in [0, 1]
    mass = ink.sum(axis=(1, 2)) + 1e-9
    h, w = ink.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cy = (ink * ys).sum(axis=(1, 2)) / mass
    cx = (ink * xs).sum(axis=(1, 2)) / mass
    dy, dx = ys[None] - cy[:, None, None], xs[None] - cx[:, None, None]
    mu11 = (ink * dx * dy).sum(axis=(1, 2)) / mass
    mu02 = (ink * dy * dy).sum(axis=(1, 2)) / mass + 1e-9
    return {"thickness": ink.mean(axis=(1, 2)), "slant": -mu11 / mu02}  # rows grow downwards: lean right > 0
