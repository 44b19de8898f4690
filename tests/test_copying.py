"""The data-copying test C_T (Meehan et al. 2020) against a by-hand reading of the paper, and on generators that copy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from gan.metrics.copying import (
    data_copying,
    distances_within_cells,
    nearest_distances,
    verdict,
)

# 20 standard deviations apart: k-means finds the blobs and no point, even of a blob twice as wide, leaves its own
BLOB_CENTRES = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])


def blob(rng: np.random.Generator, index: int, samples: int, scale: float = 1.0) -> np.ndarray:
    """(samples, 2) points around BLOB_CENTRES[index] with standard deviation `scale`."""
    return BLOB_CENTRES[index] + scale * rng.normal(size=(samples, 2))


def reference_ct(train, train_cell, test, test_cell, generated, generated_cell, tau_samples):
    """C_T straight from the paper: an explicit loop over cells, nearest neighbours and U by brute force."""
    numerator = denominator = 0.0
    for cell in np.unique(train_cell):
        cell_train = train[train_cell == cell]
        p = np.sqrt(((test[test_cell == cell][:, None, :] - cell_train[None]) ** 2).sum(-1)).min(1)
        q = np.sqrt(((generated[generated_cell == cell][:, None, :] - cell_train[None]) ** 2).sum(-1)).min(1)
        m, n = len(q), len(p)
        if m <= tau_samples or n == 0:
            continue
        u = sum(1.0 if dq > dp else 0.5 if dq == dp else 0.0 for dq in q for dp in p)
        z = (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)
        numerator += (n / len(test)) * z
        denominator += n / len(test)
    return numerator / denominator


def gaussian_sets(dim: int = 5, train: int = 1000, test: int = 500, seed: int = 0):
    """Training and held-out test draws from one standard normal in `dim` dimensions, and the rng."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(train, dim)), rng.normal(size=(test, dim)), rng


def test_ct_equals_the_papers_formula_computed_by_hand():
    rng = np.random.default_rng(1)
    train = np.concatenate([blob(rng, b, 80) for b in range(4)])  # (320, 2)
    train_cell = np.repeat(np.arange(4), 80)
    copies = train[rng.choice(80, 25, replace=False)]  # training points of blob 0
    # blob 0: fresh test points plus 3 exact training points, so that test and generated distances tie at 0
    test = np.concatenate([blob(rng, 0, 57), train[:3], blob(rng, 1, 40), blob(rng, 2, 30)])
    test_cell = np.repeat([0, 1, 2], [60, 40, 30])  # blob 3 gets no test sample: skipped
    generated = np.concatenate([
        copies[:20] + 0.01 * rng.normal(size=(20, 2)), copies[20:], blob(rng, 0, 25),  # blob 0: part copied
        blob(rng, 1, 35, scale=2.0),  # blob 1: too wide
        blob(rng, 2, 20),  # blob 2: exactly tau_samples generated samples, not more: left out
        blob(rng, 3, 30),
    ])
    generated_cell = np.repeat([0, 1, 2, 3], [50, 35, 20, 30])

    result = data_copying(train, test, generated, cells=4, seed=0, tau_samples=20)

    expected = reference_ct(train, train_cell, test, test_cell, generated, generated_cell, 20)
    assert result["copying_ct"] == pytest.approx(expected, abs=1e-9)
    assert result["copying_cells"] == 2 and result["copying_cells_total"] == 4


def test_distances_are_taken_to_training_samples_of_the_same_cell():
    train = np.array([[-1.0], [0.0], [1.0], [6.0], [10.0]])
    train_cells = np.array([0, 0, 0, 1, 1])
    points = np.array([[4.4], [7.0]])  # 4.4 is nearest to 6.0 overall, but lies in cell 0
    distances = distances_within_cells(points, np.array([0, 1]), train, train_cells)
    np.testing.assert_allclose(distances, [3.4, 1.0], rtol=1e-12)


def test_nearest_distances_match_brute_force_across_blocks():
    rng = np.random.default_rng(2)
    # far from the origin, like image features: |q|^2 - 2 q.t + |t|^2 alone would leave rounding residue
    train, queries = 50.0 + rng.normal(size=(50, 7)), 50.0 + rng.normal(size=(23, 7))
    queries[:4] = train[10:14]  # exact copies read exactly 0
    brute = np.sqrt(((queries[:, None, :] - train[None]) ** 2).sum(-1)).min(1)
    distances = nearest_distances(queries, train, block=5)
    np.testing.assert_allclose(distances, brute, rtol=1e-12)
    assert (distances[:4] == 0.0).all()


@pytest.mark.parametrize("jitter", [0.0, 1e-3])
def test_a_generator_that_returns_training_points_is_flagged_as_copying(jitter):
    train, test, rng = gaussian_sets()
    generated = train[rng.choice(len(train), 500, replace=False)] + jitter * rng.normal(size=(500, 5))
    result = data_copying(train, test, generated)
    assert result["copying_ct"] < -3
    assert result["copying_generated_distance"] < 0.1 * result["copying_test_distance"]
    assert verdict(result["copying_ct"]).endswith("(data copying)")


def test_fresh_samples_from_the_data_distribution_are_not_flagged():
    train, test, rng = gaussian_sets()
    result = data_copying(train, test, rng.normal(size=(500, 5)))  # a third, independent draw
    assert abs(result["copying_ct"]) < 3
    assert result["copying_cells"] == result["copying_cells_total"] == 10


def test_samples_from_a_much_wider_distribution_read_as_underfitting():
    train, test, rng = gaussian_sets()
    result = data_copying(train, test, 3.0 * rng.normal(size=(500, 5)))
    assert result["copying_ct"] > 3
    assert verdict(result["copying_ct"]).endswith("(underfitting)")


def test_the_same_seed_gives_the_same_result():
    train, test, rng = gaussian_sets()
    generated = rng.normal(size=(500, 5))
    assert data_copying(train, test, generated, seed=7) == data_copying(train, test, generated, seed=7)


@pytest.mark.parametrize("test_samples, cells", [(30, 1), (60, 2), (249, 9), (400, 10)])
def test_automatic_cells_aim_at_25_test_samples_each_and_at_most_10(test_samples, cells):
    train, test, rng = gaussian_sets(train=300, test=test_samples)
    result = data_copying(train, test, rng.normal(size=(100, 5)))
    assert result["copying_cells_total"] == cells


def test_cells_left_without_training_samples_are_dropped_quietly():
    train = np.repeat([[0.0, 0.0], [1.0, 1.0]], 20, axis=0)  # 2 distinct points for 3 cells
    rng = np.random.default_rng(4)
    near_both = np.repeat([[0.0, 0.0], [1.0, 1.0]], 30, axis=0) + 0.1 * rng.normal(size=(60, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = data_copying(train, near_both, near_both[::-1] + 0.01, cells=3, tau_samples=5)
    assert result["copying_cells_total"] == result["copying_cells"] == 2
    assert math.isfinite(result["copying_ct"])


def test_no_cell_with_enough_generated_samples_gives_nan():
    train, test, rng = gaussian_sets()
    result = data_copying(train, test, rng.normal(size=(15, 5)), cells=2, tau_samples=20)
    assert math.isnan(result["copying_ct"]) and result["copying_cells"] == 0
    assert verdict(result["copying_ct"]).startswith("C_T undefined")


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "train": s["train"][:, 0]}, "train as a 2-D array"),
    (lambda s: {**s, "generated": s["generated"][:, :3]}, "one width D"),
    (lambda s: {**s, "test": s["test"][:1]}, "at least 2 test samples"),
    (lambda s: {**s, "generated": np.full((4, 5), np.nan)}, "NaN or infinite values in the generated"),
    (lambda s: {**s, "cells": 0}, "between 1 and 40 cells"),
    (lambda s: {**s, "cells": 41}, "between 1 and 40 cells"),
    (lambda s: {**s, "tau_samples": -1}, "tau_samples >= 0"),
])
def test_bad_inputs_raise_a_value_error_naming_the_problem(change, message):
    rng = np.random.default_rng(3)
    sets = {"train": rng.normal(size=(40, 5)), "test": rng.normal(size=(30, 5)),
            "generated": rng.normal(size=(30, 5))}
    with pytest.raises(ValueError, match=message):
        data_copying(**change(sets))


@pytest.mark.parametrize("ct, threshold, start, end", [
    (-7.24, 3.0, "C_T -7.2 < -3:", "(data copying)"),
    (-3.1, 3.0, "C_T -3.1 < -3:", "(data copying)"),
    (3.1, 3.0, "C_T 3.1 > 3:", "(underfitting)"),
    (-2.9, 3.0, "C_T -2.9 within ±3:", "(neither copying nor underfitting)"),
    (2.9, 3.0, "C_T 2.9 within ±3:", "(neither copying nor underfitting)"),
    (-4.0, 5.0, "C_T -4.0 within ±5:", "(neither copying nor underfitting)"),
    (4.0, 5.0, "C_T 4.0 within ±5:", "(neither copying nor underfitting)"),
])
def test_verdict_reads_the_statistic_against_the_threshold(ct, threshold, start, end):
    line = verdict(ct, threshold)
    assert line.startswith(start) and line.endswith(end)
