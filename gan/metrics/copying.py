"""The three-sample data-copying test C_T: do generated samples sit closer to the training set than held-out data?

Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying in Generative
Models" (AISTATS). With training features T, held-out test features P_n (n rows) and generated
features Q_m (m rows):

1. Partition feature space into cells Π by k-means on T (each point goes to its nearest centroid).
2. In each cell π, take every test and generated sample's Euclidean distance to its nearest
   training sample *in the same cell*, d(x) = min_{t ∈ T_π} ||x - t|| (as the authors' code does).
3. Compare the generated distances with the test distances by the Mann-Whitney U statistic,
   U_π = #{(q, p): d(q) > d(p)} + 0.5 #{(q, p): d(q) = d(p)}, Z-scored under H0 (same law):
       Z_U(π) = (U_π - m_π n_π / 2) / sqrt(m_π n_π (m_π + n_π + 1) / 12).
4. Average over the cells Π_τ that hold more than τ generated samples and at least one test sample,
   weighted by the share of test samples P_n(π) = n_π / n:
       C_T = Σ_{π ∈ Π_τ} P_n(π) Z_U(π) / Σ_{π ∈ Π_τ} P_n(π).

C_T ≪ 0: generated samples lie closer to the training data than held-out data does (copying);
C_T ≫ 0: farther (underfitting); under H0 it is roughly N(0, 1)-distributed per cell.

Where the authors' code (casey-meehan/data-copying, data_copying_tests.py) differs: it shifts
the null mean by a one-sided continuity correction (m n / 2 - 0.5), which biases Z_U upwards
by 0.5 / sd (under 0.02 for cells with more than 20 samples of each); we keep the paper's
zero-mean Z. It raises on a cell without test samples; those cells have weight P_n(π) = 0 and
an undefined Z_U, so we skip them.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.vq import kmeans2, vq
from scipy.stats import mannwhitneyu

from gan.metrics.pairwise import nearest_rows

TEST_SAMPLES_PER_CELL = 25  # the automatic number of cells aims at this many test samples per cell
MAX_AUTO_CELLS = 10
KMEANS_ITERATIONS = 30


def nearest_distances(queries: np.ndarray, train: np.ndarray, block: int = 1024) -> np.ndarray:
    """Euclidean distance from each of the (Q, D) queries to its nearest row of (N_T, D) train: (Q,) float64.

    gan.metrics.pairwise.nearest_rows with k = 1: the training rows are read `block` at a time, and an
    exact copy of a training row reads exactly 0.
    """
    queries = np.asarray(queries, dtype=np.float64)
    if len(queries) == 0:
        return np.zeros(0)
    return nearest_rows(queries, train, k=1, block=block)[1][:, 0]


def distances_within_cells(points: np.ndarray, point_cells: np.ndarray, train: np.ndarray,
                           train_cells: np.ndarray) -> np.ndarray:
    """Distance from each (Q, D) point to its nearest training row in the same cell: (Q,) float64.

    point_cells (Q,) and train_cells (N_T,) are integer cell labels; every cell that holds a
    point must hold a training row.
    """
    distances = np.empty(len(points))
    for cell in np.unique(point_cells):
        in_cell = point_cells == cell
        cell_train = train[train_cells == cell]  # (N_π, D)
        if len(cell_train) == 0:
            raise ValueError(f"cell {cell} holds {in_cell.sum()} points but no training sample; "
                             f"use a partition built from the training set")
        distances[in_cell] = nearest_distances(points[in_cell], cell_train)
    return distances


def mann_whitney_z(generated_distances: np.ndarray, test_distances: np.ndarray) -> float:
    """Z_U of (m,) generated against (n,) test distances: (U - m n / 2) / sqrt(m n (m + n + 1) / 12).

    U = #{(q, p): d(q) > d(p)} + 0.5 #{ties}: scipy's statistic for its first sample.
    """
    m, n = len(generated_distances), len(test_distances)
    u = mannwhitneyu(generated_distances, test_distances, method="asymptotic").statistic
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))


def training_cells(train: np.ndarray, cells: int, seed: int = 0) -> np.ndarray:
    """Centroids (k', D) of k-means++ on (N_T, D) train with `cells` clusters, deterministic for `seed`.

    A centroid that ends up without a training sample is dropped (k' < cells), since no
    distance to the training set could be taken in its cell.
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        # an empty cluster, or k-means++ running out of distinct rows (0 / 0 in scipy), leaves a
        # centroid without training samples: dropped below
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        centroids, _ = kmeans2(train, cells, iter=KMEANS_ITERATIONS, minit="++",
                               seed=np.random.default_rng(seed))
    train_cells, _ = vq(train, centroids)  # (N_T,)
    return centroids[np.unique(train_cells)]


def data_copying(train: np.ndarray, test: np.ndarray, generated: np.ndarray, *, cells: int | None = None,
                 seed: int = 0, tau_samples: int = 20) -> dict[str, float]:
    """The data-copying statistic C_T of (N_T, D) train, (n, D) test and (m, D) generated features.

    cells: number of k-means cells; None takes n // 25 (about 25 test samples per cell),
    clamped to [1, 10]. A cell counts in C_T when it holds more than `tau_samples` generated
    samples (the paper's τ = 20 / m) and at least one test sample. Returns copying_ct (nan when
    no cell counts), copying_cells (cells counted), copying_cells_total (cells in the partition),
    and copying_generated_distance / copying_test_distance, the medians of d (the distance to the
    nearest training sample of the same cell) over all generated / test samples.
    """
    train, test, generated = _checked_features(train=train, test=test, generated=generated)
    cells = min(MAX_AUTO_CELLS, max(1, len(test) // TEST_SAMPLES_PER_CELL)) if cells is None else cells
    _check_settings(cells, tau_samples, len(train))
    centroids = training_cells(train, cells, seed)  # (k', D)
    train_cells, test_cells, generated_cells = (vq(x, centroids)[0] for x in (train, test, generated))
    test_distances = distances_within_cells(test, test_cells, train, train_cells)  # (n,)
    generated_distances = distances_within_cells(generated, generated_cells, train, train_cells)  # (m,)
    weights, scores = [], []
    for cell in range(len(centroids)):
        cell_test = test_distances[test_cells == cell]
        cell_generated = generated_distances[generated_cells == cell]
        if len(cell_generated) > tau_samples and len(cell_test) > 0:
            weights.append(len(cell_test) / len(test))
            scores.append(mann_whitney_z(cell_generated, cell_test))
    ct = float(np.dot(weights, scores) / np.sum(weights)) if weights else float("nan")
    return {
        "copying_ct": ct,
        "copying_cells": len(weights),
        "copying_cells_total": len(centroids),
        "copying_generated_distance": float(np.median(generated_distances)),
        "copying_test_distance": float(np.median(test_distances)),
    }


def verdict(ct: float, threshold: float = 3.0) -> str:
    """One line that reads C_T for a user: data copying below -threshold, underfitting above +threshold."""
    if np.isnan(ct):
        return ("C_T undefined: no cell held enough generated and test samples "
                "(generate more samples or use fewer cells)")
    if ct < -threshold:
        return (f"C_T {ct:.1f} < -{threshold:g}: generated samples lie closer to the training images "
                f"than held-out images do (data copying)")
    if ct > threshold:
        return (f"C_T {ct:.1f} > {threshold:g}: generated samples lie farther from the training images "
                f"than held-out images do (underfitting)")
    return (f"C_T {ct:.1f} within ±{threshold:g}: generated samples lie about as close to the training "
            f"images as held-out images do (neither copying nor underfitting)")


def _checked_features(**sets: np.ndarray) -> list[np.ndarray]:
    """The named feature sets as float64 arrays, each 2-D with at least 2 rows, finite, and of one width D."""
    arrays = []
    for name, values in sets.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"data_copying needs {name} as a 2-D array of features (samples, D), "
                             f"got shape {array.shape}")
        if len(array) < 2:
            raise ValueError(f"data_copying needs at least 2 {name} samples, got {len(array)}")
        if not np.isfinite(array).all():
            raise ValueError(f"data_copying got NaN or infinite values in the {name} features; "
                             f"check the feature extractor's input")
        arrays.append(array)
    widths = {name: array.shape[1] for name, array in zip(sets, arrays)}
    if len(set(widths.values())) > 1:
        raise ValueError(f"data_copying needs features of one width D, got widths {widths}; "
                         f"extract all three sets with the same network")
    return arrays


def _check_settings(cells: int, tau_samples: int, train_samples: int) -> None:
    """Raise ValueError unless 1 <= cells <= training samples and tau_samples >= 0."""
    if not 1 <= cells <= train_samples:
        raise ValueError(f"data_copying needs between 1 and {train_samples} cells (one per training "
                         f"sample at most), got cells={cells}")
    if tau_samples < 0:
        raise ValueError(f"data_copying needs tau_samples >= 0 (generated samples a cell must exceed), "
                         f"got {tau_samples}")
