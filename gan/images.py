"""Conversions between stored images (uint8 NHWC, as prepare writes them) and network tensors."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, C) in [0, 255] -> float32 (N, C, H, W) in [-1, 1], the generator's range."""
    x = torch.as_tensor(images, device=device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), rounded as an image file would store it."""
    x = tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_stored(samples: torch.Tensor) -> np.ndarray:
    """G's output in the form the data is stored: images as uint8 (N, H, W, C), 2-D points as float32 (N, 2)."""
    return to_uint8(samples) if samples.dim() == 4 else samples.detach().float().cpu().numpy()
