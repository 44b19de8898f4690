"""The metric maths: Fréchet distance against pytorch-fid and by hand, mode and class coverage."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import chi2, wasserstein_distance
import pytest

from gan.metrics.classes import class_coverage
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.modes import earth_movers, mixture_draw, mode_metrics, mode_scores, transport_scores
from gan.metrics.registry import FeatureView


def random_stats(rng: np.random.Generator, dim: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    features = rng.normal(size=(samples, dim)) @ rng.normal(size=(dim, dim)) + rng.normal(size=dim)
    return gaussian_stats(features)


def reference_fid(*stats: np.ndarray) -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes sqrtm's `disp`, deprecated in scipy 1.16.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return float(calculate_frechet_distance(*stats))


# ---------------------------------------------------------------------------- frechet


@pytest.mark.parametrize("seed, dim", [(0, 2), (1, 8), (2, 32), (3, 64)])
def test_frechet_distance_matches_pytorch_fid(seed, dim):
    rng = np.random.default_rng(seed)
    mu1, sigma1 = random_stats(rng, dim, 500)
    mu2, sigma2 = random_stats(rng, dim, 400)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(reference_fid(mu1, sigma1, mu2, sigma2), rel=1e-6)


def test_frechet_distance_matches_pytorch_fid_on_near_singular_covariances():
    rng = np.random.default_rng(4)
    # 20 samples in 32 dimensions: rank-deficient covariances, as with too few samples.
    mu1, sigma1 = gaussian_stats(rng.normal(size=(20, 32)))
    mu2, sigma2 = gaussian_stats(rng.normal(size=(20, 32)) + 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning on the singular product
        ours = frechet_distance(mu1, sigma1, mu2, sigma2)
        expected = reference_fid(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(expected, rel=1e-6)


def test_a_non_finite_square_root_is_retried_with_eps_on_the_diagonals(monkeypatch):
    from gan.metrics import frechet as frechet_module

    seen = []
    real_sqrtm = frechet_module.linalg.sqrtm

    def first_call_fails(matrix):
        seen.append(matrix)
        return np.full_like(matrix, np.nan) if len(seen) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(frechet_module.linalg, "sqrtm", first_call_fails)
    sigma = np.diag([1.0, 4.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        distance = frechet_distance(np.zeros(2), sigma, np.zeros(2), sigma, eps=0.5)
    np.testing.assert_allclose(seen[1], (sigma + 0.5 * np.eye(2)) @ (sigma + 0.5 * np.eye(2)))
    assert distance == pytest.approx(2 * 5.0 - 2 * (1.5 + 4.5))  # traces 5 + 5, sqrt with eps: 1.5 + 4.5


def test_frechet_distance_of_identical_statistics_is_zero():
    mu, sigma = random_stats(np.random.default_rng(5), 16, 200)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_pure_mean_shift_is_its_squared_norm():
    mu, sigma = random_stats(np.random.default_rng(6), 4, 300)
    shift = np.array([1.0, -2.0, 0.5, 3.0])  # 1 + 4 + 0.25 + 9
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(14.25, rel=1e-8)


def test_frechet_distance_between_isotropic_gaussians_by_hand():
    # Tr(a I + b I - 2 sqrt(a b) I) = d (sqrt(a) - sqrt(b))^2 = 3 * (2 - 1)^2
    eye = np.eye(3)
    assert frechet_distance(np.zeros(3), 4 * eye, np.zeros(3), eye) == pytest.approx(3.0, rel=1e-10)


def test_frechet_distance_rejects_a_large_imaginary_part():
    not_a_covariance = np.diag([1.0, -1.0])  # sqrt of the product is diag(1, i)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), not_a_covariance, np.zeros(2), np.eye(2))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


def test_gaussian_stats_are_numpy_mean_and_covariance_in_float64():
    features = np.random.default_rng(7).normal(size=(100, 5)).astype(np.float32)
    mu, sigma = gaussian_stats(features)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-12)


# ---------------------------------------------------------------------------- modes

SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])  # K = 4 modes


def test_points_on_every_mode_capture_all_modes_with_zero_kl():
    points = np.repeat(SQUARE, 25, axis=0)
    result = mode_metrics(points, SQUARE, mode_std=0.1)
    assert result == {"modes_captured": 4, "modes_total": 4, "high_quality_pct": 100.0, "reverse_kl": 0.0,
                      "spread_ratio": 0.0}


def test_points_on_one_mode_capture_one_with_kl_log_k():
    result = mode_metrics(np.tile(SQUARE[1], (100, 1)), SQUARE, mode_std=0.1)
    assert result["modes_captured"] == 1
    assert result["high_quality_pct"] == 100.0
    assert result["reverse_kl"] == pytest.approx(math.log(4))


def test_points_beyond_three_std_are_not_high_quality():
    points = SQUARE + 0.31  # 0.31 * sqrt(2) = 0.44 > 3 * 0.1 from every mode
    result = mode_metrics(np.repeat(points, 10, axis=0), SQUARE, mode_std=0.1)
    assert result["high_quality_pct"] == 0.0
    assert result["modes_captured"] == 0
    assert result["reverse_kl"] == pytest.approx(math.log(4))  # the documented worst case


def test_points_within_three_std_are_high_quality():
    points = SQUARE + np.array([0.29, 0.0])  # 2.9 std from its mode
    assert mode_metrics(points, SQUARE, mode_std=0.1)["high_quality_pct"] == 100.0


def test_a_mode_needs_a_fifth_of_its_uniform_share_to_be_captured():
    # N = 100, K = 4: a mode needs 0.2 * 100 / 4 = 5 high-quality samples.
    at_threshold = np.repeat(SQUARE, [40, 40, 15, 5], axis=0)
    assert mode_metrics(at_threshold, SQUARE, mode_std=0.1)["modes_captured"] == 4


def test_a_mode_below_a_fifth_of_its_share_is_not_captured():
    counts = np.array([40, 40, 16, 4])
    result = mode_metrics(np.repeat(SQUARE, counts, axis=0), SQUARE, mode_std=0.1)
    assert result["modes_captured"] == 3
    p = counts / 100
    assert result["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(p * 4))))


def test_reverse_kl_counts_only_high_quality_samples():
    on_modes = np.repeat(SQUARE[:2], 10, axis=0)  # 10 HQ on each of two modes
    strays = np.full((20, 2), 5.0)  # centre of the square: far from all modes
    result = mode_metrics(np.concatenate([on_modes, strays]), SQUARE, mode_std=0.1)
    assert result["high_quality_pct"] == 50.0
    assert result["reverse_kl"] == pytest.approx(2 * 0.5 * math.log(0.5 * 4))  # = log 2


# ---------------------------------------------------------------------------- classes


def test_balanced_labels_cover_every_class_with_zero_kl():
    result = class_coverage(np.repeat(np.arange(10), 30), num_classes=10)
    assert result["classes_covered"] == 10
    assert result["class_kl"] == pytest.approx(0.0, abs=1e-12)


def test_a_class_below_a_quarter_of_its_share_is_not_covered():
    # N = 100, K = 4: a class needs 0.25 * 100 / 4 = 6.25, so 7 counts and 6 does not.
    labels = np.repeat(np.arange(4), [47, 40, 7, 6])
    result = class_coverage(labels, num_classes=4)
    assert result["classes_covered"] == 3
    p = np.array([0.47, 0.40, 0.07, 0.06])
    assert result["class_kl"] == pytest.approx(float(np.sum(p * np.log(4 * p))))


def test_missing_classes_count_as_uncovered_and_add_nothing_to_kl():
    labels = np.array([0, 0, 1, 1])  # classes 2 and 3 never predicted: p = (1/2, 1/2, 0, 0)
    result = class_coverage(labels, num_classes=4)
    assert result["classes_covered"] == 2
    assert result["class_kl"] == pytest.approx(math.log(2))


def test_class_coverage_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="labels"):
        class_coverage(np.array([0, 4]), num_classes=4)


@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_spread_ratio_is_the_samples_spread_around_their_modes_over_the_mixtures(scale):
    rng = np.random.default_rng(0)
    centres = SQUARE[rng.integers(0, 4, 40_000)]
    points = centres + rng.normal(0.0, 0.1 * scale, centres.shape)  # the mixture (std 0.1), narrowed by scale
    result = mode_metrics(points, SQUARE, mode_std=0.1)
    # both spreads are RMS distances of points kept within 3 std of the mixture: |x - mu|^2 / s^2 ~ chi2(2)
    cut_mean = lambda s: s**2 * 2 * chi2.cdf(9 / s**2, 4) / chi2.cdf(9 / s**2, 2)  # noqa: E731
    assert result["spread_ratio"] == pytest.approx(np.sqrt(cut_mean(scale) / cut_mean(1.0)), rel=0.015)
    assert result["spread_ratio"] == pytest.approx(scale, rel=0.03)
    assert result["high_quality_pct"] >= 98.7  # what PacGAN's numbers see: all three look perfect


def test_points_on_the_centres_have_spread_ratio_zero_and_perfect_pacgan_numbers():
    result = mode_metrics(np.repeat(SQUARE, 10, axis=0), SQUARE, mode_std=0.1)
    assert result["spread_ratio"] == 0.0 and result["high_quality_pct"] == 100.0 and result["modes_captured"] == 4


# ---------------------------------------------------------------------------- the whole mixture: transport


def test_earth_movers_distance_of_a_translated_set_is_the_translation():
    points = np.random.default_rng(1).normal(size=(300, 2))
    assert earth_movers(points, points + np.array([0.3, -0.4])) == pytest.approx(0.5, rel=1e-9)


def test_earth_movers_distance_on_a_line_is_scipys_one_dimensional_wasserstein():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=400), rng.exponential(size=400)
    on_line = lambda x: np.stack([x, np.zeros_like(x)], axis=1)  # noqa: E731
    assert earth_movers(on_line(a), on_line(b)) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)


def test_a_sample_of_the_mixture_scores_its_floor_and_squeezed_or_missing_modes_score_above_it():
    # one mode: no mass moves between modes, so the floor is the within-mode sampling noise alone
    one, rng = SQUARE[:1], np.random.default_rng(3)
    faithful = mixture_draw(one, 0.1, 2000, rng)
    squeezed = one + rng.normal(0.0, 0.1 / 3, (2000, 2))  # spread ratio about 1/3: PacGAN's numbers are perfect
    scores = {name: transport_scores(points, one, 0.1, seed=0) for name, points in (("faithful", faithful),
                                                                                  ("squeezed", squeezed))}
    floor = scores["faithful"]["emd_floor"]
    assert scores["squeezed"]["emd_floor"] == floor > 0  # the same reference draws for every sample
    assert abs(scores["faithful"]["emd"] - floor) < 0.5 * floor
    assert scores["squeezed"]["emd"] > 4 * floor
    # four modes 10 apart, one of them missing: a quarter of the mass moves about 10, far above the floor
    three = SQUARE[rng.integers(0, 3, 2000)] + rng.normal(0.0, 0.1, (2000, 2))
    missing, four = transport_scores(three, SQUARE, 0.1, seed=0), transport_scores(
        mixture_draw(SQUARE, 0.1, 2000, rng), SQUARE, 0.1, seed=0)
    assert missing["emd"] > 2.0 and missing["emd"] > 5 * four["emd_floor"]


def test_mode_scores_carry_the_transport_distance_and_refuse_a_matrix_too_large():
    view = FeatureView(np.zeros((0, 2)), mixture_draw(SQUARE, 0.1, 500, np.random.default_rng(4)), modes=SQUARE,
                       mode_std=0.1)
    assert set(mode_scores(view, seed=0)) == {"modes_captured", "high_quality_pct", "reverse_kl", "spread_ratio",
                                              "emd", "emd_floor"}
    with pytest.raises(ValueError, match="at most 10000"):
        transport_scores(np.zeros((10_001, 2)), SQUARE, 0.1, seed=0)
