"""A paired task's outputs on the held-out sources, its no-learning baseline, and its pictures (generate).

G runs in eval mode (dropout off, batch norm's running statistics), so output i answers held-out pair i
the same way every time; pix2pix's own test script keeps dropout on by default, which makes its outputs
vary from run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import pairs
from gan.figures import save_columns, save_zoom, source_view
from gan.images import to_stored, to_tensor

FIGURE_ROWS = 8  # held-out pairs in triptych.png and zoom.png


@torch.inference_mode()
def outputs(generator: torch.nn.Module, sources: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """G (in eval mode: dropout off, batch norm's running statistics) on stored sources, stored like the data."""
    generator.eval()
    out = [to_stored(generator(to_tensor(chunk, device)).float()) for chunk in np.array_split(
        sources, max(1, -(-len(sources) // batch_size)))]
    return np.concatenate(out)


def baseline(saved: dict[str, Any], sources: np.ndarray) -> tuple[str, np.ndarray]:
    """The no-learning answer to the same inputs, stored like the targets: bicubic upsampling
    (super-resolution) or the source itself (translation; a mask source without its mask channel)."""
    shape = tuple(saved["data_shape"])
    if saved["task"] == "super_resolution":
        return "bicubic", pairs.upsample_bicubic(sources, int(saved["task_inputs"]["scale"]))
    images = sources[..., :shape[2]] if sources.shape[-1] > shape[2] else sources  # drop the mask channel
    if images.shape[-1] != shape[2]:  # a 1-channel source for RGB targets
        images = np.repeat(images, shape[2], axis=-1)
    return "source", np.ascontiguousarray(images)


def figures(saved: dict[str, Any], prepared: Any, images: np.ndarray, out: Path) -> list[Path]:
    """triptych.png (source | output | target) on the first held-out pairs; zoom.png for super-resolution
    (bicubic | output | target, the centre quarter enlarged)."""
    rows = min(FIGURE_ROWS, len(images))
    targets, sources = prepared.test_x[:rows], prepared.test_source[:rows]
    shape = tuple(saved["data_shape"])
    written = [out / "triptych.png"]
    save_columns([("source", source_view(sources, shape)), ("output", images[:rows]), ("target", targets)],
                 written[0], rows)
    if saved["task"] == "super_resolution":
        name, base = baseline(saved, sources)
        side = shape[0] // 2
        box = (shape[0] // 4, shape[1] // 4, side, side)
        written.append(out / "zoom.png")
        save_zoom([(name, base), ("output", images[:rows]), ("target", targets)], written[1], rows, box)
    return written
