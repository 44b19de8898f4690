"""k-nearest-neighbour manifold metrics of generated features: precision, recall, density, coverage.

The manifold of a set is the union of balls around its samples, each with the radius to the
sample's k-th nearest neighbour in the same set (the sample itself excluded); r_k(x) below.
- Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
  Models": precision = share of fake samples inside the real manifold,
  (1/M) sum_j 1[exists i: ||y_j - x_i|| < r_k(x_i)]; recall = share of real samples inside
  the fake manifold, the same with the roles swapped.
- Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models":
  density = (1 / (k M)) sum_j sum_i 1[||y_j - x_i|| < r_k(x_i)], coverage =
  (1/N) sum_i 1[min_j ||y_j - x_i|| < r_k(x_i)], over real x_i (N) and fake y_j (M).

"Inside" is strict (<), as in the `prdc` package of Naeem et al.; Kynkäänniemi et al.'s
paper and code use <=. The two differ only on exact distance ties. Distances are compared
squared, in float64, one block of rows at a time so that no 10k x 10k matrix is ever whole.
"""

from __future__ import annotations

import numpy as np
import torch

from gan.metrics.pairwise import feature_pair, row_blocks


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of (M, D) fake vs (N, D) real features."""
    real_t, fake_t = _knn_inputs(real, fake, k, "precision_recall", fake_radii_needed=True)
    real_radii = _knn_squared_radii(real_t, k)  # (N,)
    fake_radii = _knn_squared_radii(fake_t, k)  # (M,)
    fake_inside_real = torch.zeros(len(fake_t), dtype=torch.bool)
    real_inside_fake = torch.zeros(len(real_t), dtype=torch.bool)
    for rows, distances in _squared_distance_blocks(real_t, fake_t):  # (rows, M)
        fake_inside_real |= (distances < real_radii[rows, None]).any(dim=0)
        real_inside_fake[rows] = (distances < fake_radii[None, :]).any(dim=1)
    return {
        "precision": float(fake_inside_real.double().mean()),
        "recall": float(real_inside_fake.double().mean()),
    }


def density_coverage(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) of (M, D) fake vs (N, D) real features."""
    real_t, fake_t = _knn_inputs(real, fake, k, "density_coverage", fake_radii_needed=False)
    real_radii = _knn_squared_radii(real_t, k)  # (N,)
    balls_containing = 0  # sum over fake j of the number of real balls around j
    real_covered = torch.zeros(len(real_t), dtype=torch.bool)
    for rows, distances in _squared_distance_blocks(real_t, fake_t):  # (rows, M)
        inside = distances < real_radii[rows, None]
        balls_containing += int(torch.count_nonzero(inside))
        # min_j d(x_i, y_j) < r_k(x_i) exactly when some fake y_j lies inside the ball of x_i.
        real_covered[rows] = inside.any(dim=1)
    return {
        "density": balls_containing / (k * len(fake_t)),
        "coverage": float(real_covered.double().mean()),
    }


def _knn_squared_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """(N, D) -> (N,) squared distance from each sample to its k-th nearest other sample."""
    radii = torch.empty(len(features), dtype=torch.float64)
    for rows, distances in _squared_distance_blocks(features, features):  # (rows, N)
        # The sample itself is set to 0 so that it is always among the k + 1 smallest, and is
        # skipped exactly once: a duplicate of it still counts as a neighbour at distance 0.
        distances.diagonal(offset=rows.start).zero_()
        radii[rows] = distances.topk(k + 1, dim=1, largest=False).values[:, -1]  # faster than kthvalue
    return radii


def _squared_distance_blocks(a: torch.Tensor, b: torch.Tensor):
    """Yield (row slice, ||a_i - b_j||^2 for the rows of a in that slice) blocks, (rows, len(b)) each."""
    a_norms, b_norms = (a * a).sum(dim=1), (b * b).sum(dim=1)  # (N,), (M,)
    for rows in row_blocks(len(a), len(b)):
        # ||a||^2 + ||b||^2 - 2 a.b: one matrix product; rounding can make it slightly negative.
        distances = torch.addmm(b_norms[None, :], a[rows], b.T, alpha=-2.0)
        yield rows, distances.add_(a_norms[rows, None]).clamp_(min=0.0)


def _knn_inputs(real: np.ndarray, fake: np.ndarray, k: int, caller: str,
                        fake_radii_needed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    real_t, fake_t = feature_pair(real, fake, caller)
    smallest = min(len(real_t), len(fake_t)) if fake_radii_needed else len(real_t)
    if k < 1 or k >= smallest or len(fake_t) == 0:
        sets = "each set" if fake_radii_needed else "the real set"
        raise ValueError(f"{caller} needs 1 <= k < the number of samples in {sets}, got k={k} with "
                         f"{len(real_t)} real and {len(fake_t)} fake")
    return real_t, fake_t
