"""Mode coverage of samples from a 2-D Gaussian mixture (ring8, grid25): the mode-collapse metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import chi2, entropy

if TYPE_CHECKING:
    from gan.metrics.registry import FeatureView

HIGH_QUALITY_STDS = 3.0  # VEEGAN: a sample within 3 std of its nearest mode is "high quality"
CAPTURE_SHARE = 0.2  # PacGAN: a mode needs 20% of its uniform share (20 of 2,500 / 25) of HQ samples
TRANSPORT_LIMIT = 10_000  # exact transport between N and N points holds an N x N cost matrix (10k: 800 MB)


def mode_metrics(points: np.ndarray, modes: np.ndarray, mode_std: float) -> dict[str, float]:
    """Modes captured, high-quality share and reverse KL of generated 2-D points.

    Definitions of Srivastava et al. 2017 (VEEGAN, section 5.1) and Lin et al. 2018
    (PacGAN, section 5.1):
    - a sample is *high quality* when it lies within 3 * mode_std of its nearest mode,
      and is then assigned to that mode;
    - a mode is *captured* when at least 0.2 * N / K of the N samples are high-quality
      samples assigned to it (PacGAN counts 20 of 2,500 samples for 25 modes);
    - *reverse KL* = KL(p_gen || uniform) = sum_k p_k log(p_k * K), where p_k is the
      share of the high-quality samples assigned to mode k (0 log 0 = 0). It is 0 when
      the high-quality samples spread evenly and log K when they all sit on one mode.
      With no high-quality sample at all it is reported as log K, the worst case.

    None of these sees a generator that puts every sample on the mode centres: it scores 100%
    high quality. So beside them, *spread ratio* = the RMS distance (per axis) of the
    high-quality samples from their modes, over the same for the mixture itself (a Gaussian of
    std mode_std cut at the 3-std radius). 1 is the data's spread; below 1, G is under-dispersed
    (a partial collapse inside the modes); 0 when there is no high-quality sample.

    points: (N, 2), modes: (K, 2). Returns modes_captured, modes_total,
    high_quality_pct (0..100), reverse_kl and spread_ratio.
    """
    points = np.asarray(points, dtype=np.float64)
    modes = np.asarray(modes, dtype=np.float64)
    if points.ndim != 2 or modes.ndim != 2 or points.shape[1] != modes.shape[1] or len(modes) == 0:
        raise ValueError(f"mode_metrics needs points (N, D) and modes (K, D), got {points.shape} and {modes.shape}")
    if mode_std <= 0:
        raise ValueError(f"mode_metrics needs mode_std > 0, got {mode_std}")
    num_samples, num_modes = len(points), len(modes)
    distances = np.linalg.norm(points[:, None, :] - modes[None, :, :], axis=-1)  # (N, K)
    nearest = distances.argmin(axis=1)  # (N,)
    high_quality = distances[np.arange(num_samples), nearest] <= HIGH_QUALITY_STDS * mode_std
    counts = np.bincount(nearest[high_quality], minlength=num_modes)  # (K,)
    captured = int((counts >= CAPTURE_SHARE * num_samples / num_modes).sum()) if num_samples else 0
    return {
        "modes_captured": float(captured),
        "modes_total": float(num_modes),
        "high_quality_pct": 100.0 * float(high_quality.mean()) if num_samples else 0.0,
        "reverse_kl": kl_to_uniform(counts),
        "spread_ratio": spread_ratio(distances[np.arange(num_samples), nearest][high_quality], points.shape[1],
                                     mode_std),
    }


def spread_ratio(distances: np.ndarray, dim: int, mode_std: float) -> float:
    """RMS per-axis distance of high-quality samples from their modes, over the mixture's own.

    For x ~ N(mu, s^2 I_D), |x - mu|^2 / s^2 is chi-squared with D degrees of freedom; kept within
    the 3-std radius, its mean is D * P(chi2_{D+2} <= 9) / P(chi2_D <= 9).
    """
    if len(distances) == 0:
        return 0.0
    limit = HIGH_QUALITY_STDS**2
    expected = mode_std**2 * dim * chi2.cdf(limit, dim + 2) / chi2.cdf(limit, dim)  # E|x - mu|^2, cut at 3 std
    return float(np.sqrt(np.mean(distances**2) / expected))


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform over K bins) for a histogram of K counts; log K when all counts are 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() == 0:  # no sample in any bin: as far from uniform as one full bin
        return float(np.log(len(counts)))
    return float(entropy(counts, np.ones_like(counts)))  # both normalised; empty bins add 0 log 0 = 0


def mixture_draw(modes: np.ndarray, mode_std: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, D) points of the true mixture: equal-weight Gaussians of std mode_std at `modes` (as prepare draws)."""
    modes = np.asarray(modes, dtype=np.float64)
    return modes[rng.integers(0, len(modes), size=count)] + rng.normal(0.0, mode_std, size=(count, modes.shape[1]))


def earth_movers(a: np.ndarray, b: np.ndarray) -> float:
    """The exact earth mover's distance (Wasserstein-1, Euclidean ground cost) between two equal-weight point sets.

    POT's network simplex (Bonneel et al. 2011) solves the transport problem exactly, so the number is
    the distance between these two samples, with no entropic blur and no tuning knob.
    """
    import ot  # POT: imported here, so that naming metrics does not load it

    cost = ot.dist(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), metric="euclidean")
    return float(ot.emd2([], [], cost, numItermax=100 * cost.size))


def transport_scores(points: np.ndarray, modes: np.ndarray, mode_std: float, seed: int,
                     floor: bool = True) -> dict[str, float]:
    """The whole distribution in one number, beside its floor.

    emd: the exact earth mover's distance between the N generated points and N fresh draws of
    the true mixture. It sees everything the mode metrics split apart (a missing mode, uneven
    modes, points off the modes, modes too narrow or too wide), in the data's units. Between
    two finite samples it is not 0 even for a perfect G, so emd_floor is the same distance
    between two independent draws of N points of the mixture: a G that matches the mixture
    scores about the floor, and every gap above it is G's. floor=False: emd alone (a training curve).
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) > TRANSPORT_LIMIT:
        raise ValueError(f"the earth mover's distance holds an N x N matrix; got N={len(points)} generated points, "
                         f"at most {TRANSPORT_LIMIT}")
    rng = np.random.default_rng(seed)
    reference = mixture_draw(modes, mode_std, len(points), rng)
    scores = {"emd": earth_movers(points, reference)}
    if floor:
        scores["emd_floor"] = earth_movers(mixture_draw(modes, mode_std, len(points), rng), reference)
    return scores


def mode_scores(view: FeatureView, seed: int, floor: bool = True) -> dict[str, float]:
    """The registry's `modes` metric: generated points of `view` against the mixture, its modes and itself."""
    out = mode_metrics(view.fake, view.modes, view.mode_std)
    scores = {k: out[k] for k in ("modes_captured", "high_quality_pct", "reverse_kl", "spread_ratio")}
    return scores | transport_scores(view.fake, view.modes, view.mode_std, seed, floor)
