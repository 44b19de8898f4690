"""What KID, the k-NN metrics and the data-copying test share: two feature sets as float64 tensors,
row blocks, and the nearest training rows of each sample.

All compare every generated sample with every real one. For 10k x 10k samples that matrix
would hold 800 MB of float64, so they walk it one block of rows at a time.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from scipy.spatial.distance import cdist

BLOCK_ELEMENTS = 2**24  # float64 values in one block: 128 MB


def feature_pair(x: np.ndarray, y: np.ndarray, caller: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) and (M, D) feature arrays as float64 tensors; other shapes are a ValueError naming `caller`."""
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if x_t.ndim != 2 or y_t.ndim != 2 or x_t.shape[1] != y_t.shape[1]:
        raise ValueError(f"{caller} needs two feature arrays (N, D) and (M, D), got {tuple(x_t.shape)} "
                         f"and {tuple(y_t.shape)}")
    return x_t, y_t


def row_blocks(rows: int, columns: int) -> Iterator[slice]:
    """Consecutive slices of range(rows) such that (slice length) x columns <= BLOCK_ELEMENTS (at least 1 row)."""
    step = max(1, BLOCK_ELEMENTS // columns)
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def _check_features(name: str, features: np.ndarray) -> None:
    if features.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {features.shape}")
    if features.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one row")


def nearest_rows(
    sample_features: np.ndarray, train_features: np.ndarray, k: int = 3, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The k training rows nearest each sample: (S, D), (N, D) -> indices (S, k) int64, distances (S, k).

    Used by the k-NN figure of generate (gan.neighbours) and the data-copying test (gan.metrics.copying).

    Euclidean in float64, nearest first, ties broken by the lower training index. The training set
    is read `block` rows at a time so that only an (S, block) distance matrix is ever held. scipy's
    cdist subtracts rows rather than expanding |a|^2 - 2ab + |b|^2, so an exact copy is at distance
    0 and duplicate training rows tie exactly.
    """
    samples, train = np.asarray(sample_features), np.asarray(train_features)
    _check_features("sample_features", samples)
    _check_features("train_features", train)
    if samples.shape[1] != train.shape[1]:
        raise ValueError(
            f"feature sizes differ: sample_features has {samples.shape[1]} per row, "
            f"train_features {train.shape[1]}; extract both with the same feature network"
        )
    if not 1 <= k <= train.shape[0]:
        raise ValueError(f"k must be between 1 and the training set size {train.shape[0]}, got {k}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    samples = samples.astype(np.float64)
    if not np.isfinite(samples).all():
        raise ValueError("sample_features contain NaN or infinity")
    best_distances = np.empty((len(samples), 0))  # (S, <=k), sorted by (distance, index)
    best_indices = np.empty((len(samples), 0), dtype=np.int64)
    for start in range(0, train.shape[0], block):
        chunk = train[start:start + block].astype(np.float64)  # (b, D)
        if not np.isfinite(chunk).all():
            raise ValueError(f"train_features contain NaN or infinity (in rows {start}..{start + len(chunk) - 1})")
        distances = np.concatenate([best_distances, cdist(samples, chunk)], axis=1)  # (S, k + b)
        indices = np.concatenate(
            [best_indices, np.broadcast_to(np.arange(start, start + len(chunk)), (len(samples), len(chunk)))], axis=1
        )
        # The kept candidates come first and have lower indices, so a stable sort breaks ties by index.
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        best_distances = np.take_along_axis(distances, order, axis=1)
        best_indices = np.take_along_axis(indices, order, axis=1)
    return best_indices, best_distances
