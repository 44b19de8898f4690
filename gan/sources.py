"""The inputs of the paired tasks, derived in prepare from any image dataset's targets (gan.pairs).

translation: edges, skeleton, thick strokes, or the image with a box blanked (inpainting); super_resolution:
the antialiased bicubic downsampling. The sources are stored beside the targets as `source` in train.npz and
test.npz, covered by meta.json's sha256, and what made them is in meta.json's `task`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gan import pairs


def derive(task: Any, images: np.ndarray, seed: int, split: str) -> np.ndarray:
    """The source of each target image for `task` (the params' task section); `split` seeds the random masks
    apart, so the test holes are not the training holes."""
    if task.name == "super_resolution":
        return pairs.downsample(images, task.scale)
    if task.source == "mask":
        rng = np.random.default_rng([seed, 1 if split == "test" else 0, 0x6D61736B])  # "mask"
        return pairs.masked(images, task.mask, rng, task.hole)
    return pairs.SOURCES[task.source](images)


def describe(task: Any) -> dict[str, Any]:
    """meta.json's record of how the sources were made."""
    if task.name == "super_resolution":
        return {"name": task.name, "scale": task.scale, "downsampling": "bicubic, antialiased (torchvision resize)"}
    about = {"edges": "Canny (skimage.feature.canny, sigma 1) of the gray image",
             "skeleton": "skimage.morphology.skeletonize of the Otsu-thresholded gray image",
             "thick": "grayscale dilation with a disk of radius 1 (skimage.morphology.dilation)",
             "mask": f"a box of {task.hole:g} of the side blanked ({task.mask}), the box as the last channel"}[task.source]
    entry = {"name": task.name, "source": task.source, "about": about}
    if task.source == "mask":
        entry["mask"] = task.mask
        entry["hole"] = task.hole
    return entry
