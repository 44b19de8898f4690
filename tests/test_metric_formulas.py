"""The feature-set metrics against their reference packages and by hand: KID, P/R/D/C, Inception Score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.metrics import pairwise
from gan.metrics.inception_score import inception_score
from gan.metrics.kid import kernel_inception_distance, mmd2_unbiased
from gan.metrics.prdc import density_coverage, precision_recall


def gaussian_features(seed: int, samples: int, dim: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, size=(samples, dim))


# ---------------------------------------------------------------------------- KID


def test_mmd2_unbiased_by_hand_on_two_points_each():
    # k(a, b) = (a b + 1)^3 in one dimension. Within x: k(1, 2) = 27 for both ordered pairs,
    # within y: k(0, 1) = 1; across: k(1,0) + k(1,1) + k(2,0) + k(2,1) = 1 + 8 + 1 + 27 = 37.
    # MMD^2_u = 54 / 2 + 2 / 2 - 2 * 37 / 4 = 9.5
    x, y = np.array([[1.0], [2.0]]), np.array([[0.0], [1.0]])
    assert mmd2_unbiased(x, y, degree=3, gamma=1.0, coef0=1.0) == pytest.approx(9.5, rel=1e-15)


def test_mmd2_unbiased_on_sets_of_different_sizes_matches_the_double_sums():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))

    def k(a, b):
        return (a @ b / 3 + 1.0) ** 3

    within_x = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    within_y = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    across = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / (7 * 5)
    assert mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * across, rel=1e-12)


@pytest.mark.parametrize("seed, dim", [(0, 8), (1, 128), (2, 2048)])
def test_mmd2_unbiased_matches_torch_fidelity_per_subset_estimator(seed, dim):
    from torch_fidelity.metric_kid import kernel_mmd

    real, fake = gaussian_features(seed, 300, dim), gaussian_features(seed + 100, 300, dim, shift=0.1)
    expected = kernel_mmd(real, fake, kid_kernel="poly", kid_kernel_poly_degree=3,
                          kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    assert mmd2_unbiased(real, fake) == pytest.approx(expected, rel=1e-10)


def test_kid_over_one_full_subset_matches_torch_fidelity():
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = gaussian_features(3, 400, 64), gaussian_features(4, 400, 64, shift=0.2)
    expected = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=1,
                                      kid_subset_size=400, verbose=False, rng_seed=0)
    ours = kernel_inception_distance(real, fake, subsets=1, subset_size=400)
    assert ours["kid_mean"] == pytest.approx(expected["kernel_inception_distance_mean"], rel=1e-10)
    assert ours["kid_std"] == 0.0


def test_kid_caps_the_subset_size_at_the_smaller_set():
    real, fake = gaussian_features(5, 60, 16), gaussian_features(6, 50, 16, shift=0.5)
    capped = kernel_inception_distance(real, fake, subsets=3, subset_size=10_000)
    # Every subset of the fake set is then the whole set; only the 50 real rows drawn vary.
    explicit = kernel_inception_distance(real, fake, subsets=3, subset_size=50)
    assert capped == explicit


def test_kid_is_deterministic_given_the_seed():
    real, fake = gaussian_features(7, 300, 16), gaussian_features(8, 300, 16, shift=0.3)
    first = kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=1)
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=1) == first
    assert kernel_inception_distance(real, fake, subsets=5, subset_size=100, seed=2) != first


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    real = gaussian_features(9, 1000, 32)
    same = kernel_inception_distance(real, gaussian_features(10, 1000, 32), subsets=20, subset_size=500)
    shifted = kernel_inception_distance(real, gaussian_features(11, 1000, 32, shift=0.5), subsets=20,
                                        subset_size=500)
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 1e-3
    assert shifted["kid_mean"] > 10 * (abs(same["kid_mean"]) + same["kid_std"])


# ---------------------------------------------------------------------------- precision, recall, density, coverage


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    from prdc import compute_prdc

    return {name: float(value) for name, value in compute_prdc(real, fake, nearest_k=k).items()}


@pytest.mark.parametrize("seed, dim, shift", [(0, 2, 0.0), (1, 16, 0.3), (2, 128, 0.1)])
def test_precision_recall_density_coverage_match_the_prdc_package(seed, dim, shift):
    real, fake = gaussian_features(seed, 500, dim), gaussian_features(seed + 100, 400, dim, shift)
    expected_pr, expected_dc = reference_prdc(real, fake, k=3), reference_prdc(real, fake, k=5)
    ours_pr, ours_dc = precision_recall(real, fake, k=3), density_coverage(real, fake, k=5)
    for name in ("precision", "recall"):
        assert ours_pr[name] == pytest.approx(expected_pr[name], abs=1e-12)
    for name in ("density", "coverage"):
        assert ours_dc[name] == pytest.approx(expected_dc[name], abs=1e-12)


def test_prdc_matches_the_prdc_package_on_ties_and_duplicates():
    # Integer coordinates in {0, 1, 2}^3: many duplicate samples and equal distances, all exact
    # in float64, so every tie on a k-NN radius is a true tie.
    rng = np.random.default_rng(3)
    real, fake = rng.integers(0, 3, size=(120, 3)).astype(float), rng.integers(0, 3, size=(90, 3)).astype(float)
    for k in (1, 3, 5):
        expected = reference_prdc(real, fake, k)
        assert precision_recall(real, fake, k=k) == {n: expected[n] for n in ("precision", "recall")}
        assert density_coverage(real, fake, k=k) == {n: expected[n] for n in ("density", "coverage")}


def test_a_fake_sample_exactly_on_the_knn_radius_is_outside_the_manifold():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # every radius at k = 1 is 1
    assert precision_recall(real, np.array([[4.0], [5.0]]), k=1)["precision"] == 0.0
    assert precision_recall(real, np.array([[3.5], [5.0]]), k=1)["precision"] == 0.5


def test_identical_sets_score_one():
    features = gaussian_features(4, 200, 8)
    assert precision_recall(features, features.copy(), k=3) == {"precision": 1.0, "recall": 1.0}
    assert density_coverage(features, features.copy(), k=5)["coverage"] == 1.0


def test_density_of_identical_sets_is_one():
    # Each sample's ball holds itself and its k - 1 nearer neighbours; its k-th neighbour sits
    # on the boundary and is outside. Powers of two have distinct distances from each point,
    # all exact in float64, so no neighbour ties with the boundary.
    features = 2.0 ** np.arange(21)[:, None]
    assert density_coverage(features, features.copy(), k=5)["density"] == 1.0


def test_far_apart_sets_score_zero():
    real, fake = gaussian_features(6, 200, 8), gaussian_features(7, 150, 8, shift=100.0)
    assert precision_recall(real, fake, k=3) == {"precision": 0.0, "recall": 0.0}
    assert density_coverage(real, fake, k=5) == {"density": 0.0, "coverage": 0.0}


def test_the_sample_itself_is_not_its_own_nearest_neighbour():
    # At k = 1 the radius of each real point is the distance to the other one (2), not 0.
    real = np.array([[0.0], [2.0]])
    assert density_coverage(real, np.array([[1.0]]), k=1) == {"density": 2.0, "coverage": 1.0}


def test_prdc_rejects_k_not_smaller_than_the_set():
    with pytest.raises(ValueError, match="1 <= k <"):
        precision_recall(np.zeros((3, 2)), np.ones((10, 2)), k=3)


@pytest.mark.parametrize("block, blocks", [(1, 60), (100, 30), (1000, 3)])  # 1, 2 and 22 rows of 45 a block
def test_walking_the_sets_in_row_blocks_gives_the_same_numbers(monkeypatch, block, blocks):
    real, fake = gaussian_features(8, 60, 4), gaussian_features(9, 45, 4, shift=0.2)
    whole = (mmd2_unbiased(real, fake), precision_recall(real, fake, k=3), density_coverage(real, fake, k=5),
             kernel_inception_distance(real, fake, subsets=3, subset_size=20, seed=1))
    monkeypatch.setattr(pairwise, "BLOCK_ELEMENTS", block)
    assert len(list(pairwise.row_blocks(60, 45))) == blocks
    blocked = (mmd2_unbiased(real, fake), precision_recall(real, fake, k=3), density_coverage(real, fake, k=5),
               kernel_inception_distance(real, fake, subsets=3, subset_size=20, seed=1))
    assert blocked[1:3] == whole[1:3]
    assert blocked[0] == pytest.approx(whole[0], rel=1e-12)
    assert blocked[3] == pytest.approx(whole[3], rel=1e-12)


# ---------------------------------------------------------------------------- inception score


@pytest.mark.parametrize("seed, samples, classes, splits",
                         [(0, 1000, 10, 10), (1, 1003, 1008, 10), (2, 500, 7, 3)])
def test_inception_score_matches_torch_fidelity(seed, samples, classes, splits):
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = 3.0 * gaussian_features(seed, samples, classes)
    # torch-fidelity shuffles the rows by default; ours keeps their order, so compare unshuffled.
    expected = isc_features_to_metric(torch.from_numpy(logits), splits=splits, shuffle=False)
    ours = inception_score(logits, splits=splits)
    assert ours["is_mean"] == pytest.approx(expected["inception_score_mean"], rel=1e-12)
    assert ours["is_std"] == pytest.approx(expected["inception_score_std"], rel=1e-9, abs=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    scores = inception_score(np.zeros((100, 10)), splits=5)
    assert scores["is_mean"] == pytest.approx(1.0, abs=1e-12)
    assert scores["is_std"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 1000])
def test_inception_score_of_confident_predictions_spread_over_all_classes_is_the_class_count(classes):
    labels = np.tile(np.arange(classes), 10)  # each of the 10 splits holds every class once
    logits = 1000.0 * np.eye(classes)[labels]  # p(y|x) is one-hot to the last bit
    assert inception_score(logits, splits=10)["is_mean"] == pytest.approx(classes, rel=1e-12)


def test_inception_score_is_one_when_every_sample_is_the_same_class():
    logits = np.zeros((50, 10))
    logits[:, 3] = 1000.0
    assert inception_score(logits, splits=5)["is_mean"] == pytest.approx(1.0, abs=1e-12)
