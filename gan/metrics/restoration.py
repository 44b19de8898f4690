"""PSNR and SSIM of restored images as the super-resolution literature reports them (BasicSR's protocol).

BasicSR (`basicsr/metrics/psnr_ssim.py`, `calculate_psnr` / `calculate_ssim` with `test_y_channel=True`)
scores each image on its own: `crop_border` pixels are removed from every border, RGB becomes the BT.601
luma Y in [16, 235] as float (`to_y_channel`, "without round"), and

    PSNR = 10 log10(255^2 / mean((Y_pred - Y_target)^2))        (inf for identical images)
    SSIM = the mean over the 'valid' region (5 px in from each side) of Wang et al.'s SSIM map with an
           11 x 11 Gaussian window of sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2.

Here the scores come from torchmetrics on float64 Y. One difference is corrected: torchmetrics >= 1.5
(Lightning-AI/torchmetrics#2721) averages its SSIM map over the whole image, including the border where
the window reaches into reflect-padding; BasicSR, scikit-image and Wang's MATLAB code average the valid
region only (on 32 x 32 images the two differ by about 3e-3). So `ssim_y` asks torchmetrics for the full
map and averages its valid region, which equals BasicSR's 'valid' convolution exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # torchmetrics' Gaussian window: int(3.5 * sigma + 0.5) * 2 + 1 = 11 taps
METRICS = ("psnr_y", "ssim_y")


def key(metric: str, crop: int) -> str:
    """The name a score is recorded under, e.g. key("psnr_y", 4) == "psnr_y_crop4"."""
    if metric not in METRICS:
        raise ValueError(f"key: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return f"{metric}_crop{crop}"


def to_y(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float64 (N, H, W): BT.601 luma for RGB, the values themselves for gray.

    For C = 3, with R, G, B in [0, 255]:

        Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255          in [16, 235], not rounded

    which is BasicSR's `to_y_channel` (it divides by 255, applies y = 65.481 r + 128.553 g + 24.966 b + 16
    to r, g, b in [0, 1], divides that by 255 and multiplies by 255 again) and MATLAB's `rgb2ycbcr` before
    its rounding to uint8. BasicSR works in float32, this in float64 (a difference of about 1e-5 in Y).
    For C = 1 the gray values are returned as float, as BasicSR does.
    """
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"to_y expects images (N, H, W, C) with C = 1 or 3, got shape {images.shape}")
    values = images.astype(np.float64)
    if images.shape[3] == 1:
        return values[..., 0]
    return 16.0 + (65.481 * values[..., 0] + 128.553 * values[..., 1] + 24.966 * values[..., 2]) / 255.0


def _y_pair(pred: np.ndarray, target: np.ndarray, crop: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as cropped float64 Y tensors (N, 1, H - 2 crop, W - 2 crop)."""
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred {pred.shape} and target {target.shape} differ in shape")
    height, width = pred.shape[1:3]
    if crop < 0 or 2 * crop >= min(height, width):
        raise ValueError(f"{name}: crop {crop} leaves nothing of {height} x {width} images")

    def crop_y(images: np.ndarray) -> torch.Tensor:
        y = to_y(images)[:, crop:height - crop, crop:width - crop]
        return torch.from_numpy(np.ascontiguousarray(y))[:, None]

    return crop_y(pred), crop_y(target)


def psnr_y(pred: np.ndarray, target: np.ndarray, crop: int) -> np.ndarray:
    """Per-image PSNR (dB) on Y with `crop` border pixels removed: float64 (N,); inf for an identical pair."""
    y_pred, y_target = _y_pair(pred, target, crop, "psnr_y")
    scores = peak_signal_noise_ratio(y_pred, y_target, data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
    return scores.numpy().astype(np.float64)


def ssim_y(pred: np.ndarray, target: np.ndarray, crop: int) -> np.ndarray:
    """Per-image SSIM on Y with `crop` border pixels removed: float64 (N,), the mean of the valid map.

    The cropped images must be at least 11 pixels on each side, the window's size.
    """
    y_pred, y_target = _y_pair(pred, target, crop, "ssim_y")
    if min(y_pred.shape[2:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"ssim_y: images of {tuple(y_pred.shape[2:])} after crop {crop} are smaller than "
                         f"the {2 * SSIM_RADIUS + 1} x {2 * SSIM_RADIUS + 1} window")
    _, ssim_map = structural_similarity_index_measure(
        y_pred, y_target, gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=2 * SSIM_RADIUS + 1,
        data_range=DATA_RANGE, reduction="none", return_full_image=True)  # map (N, 1, H, W)
    valid = ssim_map[..., SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]  # see the module docstring
    return valid.mean(dim=(1, 2, 3)).numpy().astype(np.float64)


def psnr_region(pred: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB, data range 255) over the pixels where `region` (N, H, W) is True, all channels.

    For inpainting: the PSNR inside the hole, which the copied-through pixels outside cannot inflate.
    float64 (N,); inf where the region is reproduced exactly. Every image's region must be non-empty.
    """
    if pred.shape != target.shape or region.shape != pred.shape[:3]:
        raise ValueError(f"psnr_region: pred {pred.shape}, target {target.shape} and region {region.shape} "
                         f"do not match (region must be (N, H, W))")
    region = region.astype(bool)
    pixels = region.sum(axis=(1, 2))
    if (pixels == 0).any():
        raise ValueError(f"psnr_region: the region of image {int(np.argmin(pixels))} is empty")
    squared = (pred.astype(np.float64) - target.astype(np.float64)) ** 2  # (N, H, W, C)
    mse = (squared * region[..., None]).sum(axis=(1, 2, 3)) / (pixels * pred.shape[3])
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE ** 2 / mse)


def psnr_y_pooled(pred: np.ndarray, target: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR (dB) of the mean squared error over every Y pixel of the set (within `region` (N, H, W) when given).

    For translation and inpainting, where a source can equal its target (an inpainting hole over blank
    background is filled exactly by zeros): per-image PSNR is then infinite and so is its mean, while the
    pooled error stays finite and weighs every pixel once. Super-resolution keeps BasicSR's per-image mean.
    """
    y_pred, y_target = _y_pair(pred, target, 0, "psnr_y_pooled")
    if region is not None:
        if region.shape != pred.shape[:3] or not region.any():
            raise ValueError(f"psnr_y_pooled: the region {region.shape} must be (N, H, W) and not empty")
        mask = torch.from_numpy(region.astype(bool))[:, None]
        y_pred, y_target = y_pred[mask], y_target[mask]
    return float(peak_signal_noise_ratio(y_pred, y_target, data_range=DATA_RANGE, reduction="none", dim=None))
