"""The Fréchet distance between Gaussians fitted to feature vectors: the maths behind FID.

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium": d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)). The numerical
guards follow pytorch-fid's `calculate_frechet_distance`, so that scores compare with it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from scipy import linalg

if TYPE_CHECKING:
    from gan.metrics.registry import FeatureView

# Beyond this, an imaginary part on the diagonal of (S_1 S_2)^(1/2) is not rounding error.
_IMAGINARY_TOLERANCE = 1e-3


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D), both float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"gaussian_stats needs features of shape (N >= 2, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    When the square root of sigma1 @ sigma2 comes out non-finite (a singular product),
    `eps` is added to both diagonals and it is taken again. A small imaginary part from
    rounding is dropped; a diagonal imaginary part above 1e-3 raises ValueError.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    _check_shapes(mu1, sigma1, mu2, sigma2)
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"frechet_distance: singular covariance product; adding {eps} to the diagonals",
                      RuntimeWarning, stacklevel=2)
        jitter = eps * np.eye(len(mu1))
        covmean = linalg.sqrtm((sigma1 + jitter) @ (sigma2 + jitter))
    if np.iscomplexobj(covmean):
        if np.abs(np.diagonal(covmean).imag).max() > _IMAGINARY_TOLERANCE:
            raise ValueError(f"frechet_distance: the matrix square root has an imaginary part of "
                             f"{np.abs(covmean.imag).max():.3g}; the covariances are not valid")
        covmean = covmean.real
    shift = mu1 - mu2
    return float(shift @ shift + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _check_shapes(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> None:
    d = mu1.shape[0]
    if mu1.ndim != 1 or mu2.shape != mu1.shape:
        raise ValueError(f"frechet_distance: means must be vectors of one length, got {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: covariances must be ({d}, {d}) to match the means, "
                         f"got {sigma1.shape} and {sigma2.shape}")


def fid(view: FeatureView, seed: int) -> dict[str, float]:
    """The registry's `fid_*` metrics: generated features against the reals (cached statistics when given)."""
    mu, sigma = (view.real_mu, view.real_sigma) if view.real_mu is not None else gaussian_stats(view.real)
    return {"fid": frechet_distance(*gaussian_stats(view.fake), mu, sigma)}
