"""What KID and the k-NN metrics share: two feature sets as float64 tensors, and row blocks.

Both compare every generated sample with every real one. For 10k x 10k samples that matrix
would hold 800 MB of float64, so they walk it one block of rows at a time.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

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
