"""Kernel Inception Distance: the unbiased squared MMD between feature sets under a cubic kernel.

Bińkowski et al. 2018, "Demystifying MMD GANs" (section 4): with the polynomial kernel
k(x, y) = (gamma x^T y + coef0)^degree, gamma = 1 / D, coef0 = 1, degree = 3, and
X = {x_i} (m samples), Y = {y_j} (n samples),

    MMD^2_u = sum_{i != i'} k(x_i, x_i') / (m (m - 1)) + sum_{j != j'} k(y_j, y_j') / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n).

KID is its mean (and spread) over random subsets of each set, as in the paper's code and
torch-fidelity's `kid`. The estimator is unbiased, so KID can be slightly negative.
"""

from __future__ import annotations

import numpy as np
import torch

from gan.metrics.pairwise import feature_pair, row_blocks


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, *, subsets: int = 100,
                              subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
                              coef0: float = 1.0, seed: int = 0) -> dict[str, float]:
    """KID of (N, D) real and (M, D) fake features: mean and std of MMD^2_u over random subsets.

    Each of the `subsets` estimates draws `subset_size` rows without replacement from each
    set (capped at min(N, M)). kid_std is the population std (ddof = 0), as in the paper's
    code and torch-fidelity. Deterministic given `seed`.
    """
    real_t, fake_t = feature_pair(real, fake, "kernel_inception_distance")
    if subsets < 1:
        raise ValueError(f"kernel_inception_distance needs subsets >= 1, got {subsets}")
    size = min(subset_size, len(real_t), len(fake_t))
    if size < 2:
        raise ValueError(f"kernel_inception_distance needs subsets of at least 2 samples, got "
                         f"subset_size={subset_size} with {len(real_t)} real and {len(fake_t)} fake")
    gamma = 1.0 / real_t.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for i in range(subsets):
        real_rows = torch.from_numpy(rng.choice(len(real_t), size, replace=False))
        fake_rows = torch.from_numpy(rng.choice(len(fake_t), size, replace=False))
        estimates[i] = _mmd2_unbiased(real_t[real_rows], fake_t[fake_rows], degree, gamma, coef0)
    return {"kid_mean": float(estimates.mean()), "kid_std": float(estimates.std())}


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """MMD^2_u between all rows of (m, D) x and (n, D) y under the polynomial kernel, in float64.

    The per-subset estimator of KID (the module docstring has the formula); gamma = 1 / D by default.
    """
    x_t, y_t = feature_pair(x, y, "mmd2_unbiased")
    if len(x_t) < 2 or len(y_t) < 2:
        raise ValueError(f"mmd2_unbiased needs at least 2 samples in each set, got {len(x_t)} and {len(y_t)}")
    gamma = 1.0 / x_t.shape[1] if gamma is None else gamma
    return _mmd2_unbiased(x_t, y_t, degree, gamma, coef0)


def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> float:
    m, n = len(x), len(y)
    within_x = _kernel_sum(x, x, degree, gamma, coef0, skip_self=True)
    within_y = _kernel_sum(y, y, degree, gamma, coef0, skip_self=True)
    across = _kernel_sum(x, y, degree, gamma, coef0, skip_self=False)
    return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * across / (m * n)


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, degree: int, gamma: float, coef0: float,
                skip_self: bool) -> float:
    """sum_{i, j} k(a_i, b_j), leaving out the i == j terms when a is b, one block of rows at a time."""
    offset = torch.tensor(float(coef0), dtype=torch.float64)
    total = 0.0
    for rows in row_blocks(len(a), len(b)):
        # One fused addmm rather than mm, mul, add: elementwise passes cost as much as the product at D = 128.
        block = torch.addmm(offset, a[rows], b.T, alpha=gamma).pow_(degree)  # (rows, n)
        if skip_self:
            block.diagonal(offset=rows.start).zero_()  # entries (i, start + i) are k(a_i, a_i)
        total += float(block.sum())
    return total

