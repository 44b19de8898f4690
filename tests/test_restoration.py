"""PSNR / SSIM on the Y channel against scikit-image, the BT.601 luma, and PSNR inside a region."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan.metrics.restoration import key, psnr_region, psnr_y, ssim_y, to_y


def noisy_pair(channels: int, size: int = 32, count: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth-ish targets and predictions with noise of growing strength, so the scores spread out."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(count, size // 4, size // 4, channels)).astype(np.float64)
    target = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)
    noise = rng.normal(size=target.shape) * np.array([5.0, 20.0, 60.0])[:count, None, None, None]
    pred = np.clip(np.round(target + noise), 0, 255)
    return pred.astype(np.uint8), target.astype(np.uint8)


def cropped(y: np.ndarray, crop: int) -> np.ndarray:
    return y[crop:y.shape[0] - crop, crop:y.shape[1] - crop]


# ---------------------------------------------------------------------------- to_y


def test_to_y_of_white_and_black():
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    images[0] = 255
    y = to_y(images)
    assert y.shape == (2, 4, 4) and y.dtype == np.float64
    assert y[0] == pytest.approx(np.full((4, 4), 235.0), abs=1e-9)
    assert y[1] == pytest.approx(np.full((4, 4), 16.0), abs=1e-12)


def test_to_y_is_skimage_rgb2ycbcr_luma_unrounded_and_gray_is_identity():
    rgb, _ = noisy_pair(3)
    assert np.allclose(to_y(rgb), rgb2ycbcr(rgb)[..., 0], atol=1e-9)
    assert not np.allclose(to_y(rgb), np.round(to_y(rgb)))  # float, not rounded
    gray, _ = noisy_pair(1)
    assert np.array_equal(to_y(gray), gray[..., 0].astype(np.float64))


# ---------------------------------------------------------------------------- against scikit-image


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_y_and_ssim_y_match_skimage_on_y(channels, crop):
    pred, target = noisy_pair(channels)
    y_pred, y_target = to_y(pred), to_y(target)
    psnr, ssim = psnr_y(pred, target, crop), ssim_y(pred, target, crop)
    assert psnr.shape == ssim.shape == (3,)
    for i in range(3):
        a, b = cropped(y_target[i], crop), cropped(y_pred[i], crop)
        expected_psnr = peak_signal_noise_ratio(a, b, data_range=255)
        expected_ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
        assert psnr[i] == pytest.approx(expected_psnr, rel=1e-4)
        assert ssim[i] == pytest.approx(expected_ssim, abs=2e-3)
    assert psnr[0] > psnr[1] > psnr[2] and ssim[0] > ssim[1] > ssim[2]  # more noise, lower scores


def test_crop_ignores_the_border():
    pred, target = noisy_pair(3, count=1)
    damaged = pred.copy()
    damaged[:, :4] = 255 - damaged[:, :4]
    assert psnr_y(damaged, target, 4) == pytest.approx(psnr_y(pred, target, 4), rel=1e-12)
    assert ssim_y(damaged, target, 4) == pytest.approx(ssim_y(pred, target, 4), rel=1e-12)
    assert psnr_y(damaged, target, 0) < psnr_y(pred, target, 0)


def test_identical_images_score_inf_and_one():
    _, target = noisy_pair(3)
    assert np.isinf(psnr_y(target, target, 2)).all()
    assert ssim_y(target, target, 2) == pytest.approx(np.ones(3), abs=1e-9)


def test_ssim_y_refuses_images_smaller_than_its_window():
    pred, target = noisy_pair(1, size=16)
    with pytest.raises(ValueError, match="window"):
        ssim_y(pred, target, 3)


# ---------------------------------------------------------------------------- psnr_region and key


def test_psnr_region_only_looks_inside_the_region():
    pred, target = noisy_pair(3)
    region = np.zeros(pred.shape[:3], dtype=bool)
    region[:, 8:24, 8:24] = True
    score = psnr_region(pred, target, region)
    changed = pred.copy()
    changed[~region] = 255 - changed[~region]
    assert np.array_equal(psnr_region(changed, target, region), score)
    inside = pred[:, 8:24, 8:24].astype(float) - target[:, 8:24, 8:24]
    expected = 10 * np.log10(255.0 ** 2 / (inside ** 2).mean(axis=(1, 2, 3)))
    assert score == pytest.approx(expected, rel=1e-12)
    exact = pred.copy()
    exact[region] = target[region]
    assert np.isinf(psnr_region(exact, target, region)).all()


def test_key_names():
    assert key("psnr_y", 4) == "psnr_y_crop4" and key("ssim_y", 0) == "ssim_y_crop0"
    with pytest.raises(ValueError):
        key("lpips", 4)
