"""Whether the features behind the domain metrics can be trusted, checked in the features stage.

Two checks, both on real data only, before any generator is scored:

* **Chance.** A domain classifier that is no better than always guessing the held-out split's most
  common class has learned nothing about the images, and distances in its feature space mean
  nothing either: on 100 faces against 100 non-faces a 4-epoch classifier scored 0.50, and FID
  0.08 with coverage 1.0 followed. The test is one-sided binomial against that majority rate, so
  the margin it asks for grows as the held-out split shrinks (40 images at 0.5: 28 right).
* **Sanity.** Real images must score near the real-vs-real floor, damaged ones far from it, and
  uniform noise (which keeps nothing of the data) farthest: blurred and pixel-shuffled images keep
  something. Each extractor (classifier, self-supervised, random) is put through it, as Heusel et
  al. 2017 put FID through disturbances.
  The training split is cut in two halves A and B: A against the held-out split is the floor,
  B against it is "real", and B is what gets blurred and shuffled, so every score here compares
  the same number of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binomtest
from torchvision.transforms.v2 import functional as tv_functional

from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.kid import kernel_inception_distance

CHANCE_P_VALUE = 0.01  # above this, the held-out accuracy is not shown to beat chance
DAMAGES = ("blurred", "shuffled", "noise")  # in the order their scores must rise
NEAR_FLOOR = 0.5  # "real" may sit at most this share of the way from the floor to the nearest damage
SANITY_IMAGES = 1000  # at most this many images in each set of the ladder
KID_SUBSETS, KID_SUBSET_SIZE = 20, 500  # enough to order the ladder, a twentieth of evaluate's KID cost


@dataclass(frozen=True)
class ChanceCheck:
    accuracy: float  # held-out accuracy of the classifier
    chance: float  # accuracy of always answering the held-out split's most common class
    p_value: float  # one-sided binomial: P(at least this many right | chance)
    count: int  # held-out images

    @property
    def at_chance(self) -> bool:
        return self.p_value > CHANCE_P_VALUE

    def line(self) -> str:
        return (f"the domain classifier's held-out accuracy {self.accuracy:.2f} on {self.count} images is no "
                f"better than chance ({self.chance:.2f}, one-sided binomial p = {self.p_value:.2g} > "
                f"{CHANCE_P_VALUE})")


def chance_check(logits: np.ndarray, labels: np.ndarray) -> ChanceCheck:
    """Is the classifier's held-out accuracy better than the majority class's share, beyond sampling luck?"""
    labels = np.asarray(labels)
    correct = int(np.sum(np.asarray(logits).argmax(axis=1) == labels))
    chance = float(np.bincount(labels).max() / len(labels))
    p_value = binomtest(correct, len(labels), chance, alternative="greater").pvalue if chance < 1 else 1.0
    return ChanceCheck(correct / len(labels), chance, float(p_value), len(labels))


def damaged(images: np.ndarray, damage: str, seed: int) -> np.ndarray:
    """uint8 (N, H, W, C) images, blurred (Gaussian, sigma 1/32 of the side), pixel-shuffled (each image's
    pixels in a random order of its own) or replaced by uniform noise; the same for the same seed."""
    rng = np.random.default_rng(seed)
    n, h, w, c = images.shape
    if damage == "blurred":
        sigma = h / 32  # 1 px at 32 px: strokes and features still there, edges soft
        kernel = 2 * int(round(2 * sigma)) + 1
        chw = torch.from_numpy(images.copy()).permute(0, 3, 1, 2)  # (N, C, H, W)
        blurred = tv_functional.gaussian_blur(chw.float(), [kernel, kernel], [sigma, sigma])
        return blurred.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if damage == "shuffled":
        flat = images.reshape(n, h * w, c)
        order = np.argsort(rng.random((n, h * w)), axis=1)  # (N, H*W) a permutation per image
        return np.take_along_axis(flat, order[..., None], axis=1).reshape(images.shape)
    if damage == "noise":
        return rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    raise ValueError(f"unknown damage {damage!r}; one of {', '.join(DAMAGES)}")


def sanity_check(embed, train_x: np.ndarray, train_features: np.ndarray, test_features: np.ndarray,
                 seed: int) -> dict[str, float]:
    """FID and KID against the held-out features of: the floor (train half A), real (half B), and B
    blurred, shuffled and replaced by noise; `sanity_passed` is 1 when real is near the floor and the
    damages score in their order, under KID and, where the sets outnumber the feature dimensions, FID.
    `embed` maps uint8 images to (N, D) features; the halves' own features are rows of `train_features`."""
    half_a, half_b = slice(0, 2 * SANITY_IMAGES, 2), slice(1, 2 * SANITY_IMAGES, 2)
    sets = {"floor": train_features[half_a], "real": train_features[half_b],
            **{d: embed(damaged(train_x[half_b], d, seed)) for d in DAMAGES}}
    mu, sigma = gaussian_stats(test_features)
    out: dict[str, float] = {}
    for name, features in sets.items():
        out[f"sanity_fid_{name}"] = frechet_distance(*gaussian_stats(features), mu, sigma)
        out[f"sanity_kid_{name}"] = kernel_inception_distance(test_features, features, subsets=KID_SUBSETS,
                                                              subset_size=KID_SUBSET_SIZE, seed=seed)["kid_mean"]
    # FID fits a Gaussian: with fewer images than feature dimensions its covariance is singular and the
    # sampling noise of two real halves outgrows a mild blur (40 faces in 128-d: floor 19, real 26, blur 23).
    # KID is unbiased at any size, so small sets are held to the ladder in KID alone.
    images = len(sets["real"])
    out["sanity_fid_checked"] = int(min(images, len(test_features)) > test_features.shape[1])
    checked = ("fid", "kid") if out["sanity_fid_checked"] else ("kid",)
    out["sanity_passed"] = int(all(_in_order(out, metric) for metric in checked))
    out["sanity_images"] = images
    return out


def _in_order(scores: dict[str, float], metric: str) -> bool:
    """Real near the floor, every damage far from it, and noise the farthest: a blurred or shuffled image
    keeps something of the data, uniform noise nothing. No order is asked between blurred and shuffled:
    a classifier's features find blur worse than shuffling (it relies on stroke edges), a self-supervised
    network the reverse, and either is a fair view of the damage."""
    floor, real = scores[f"sanity_{metric}_floor"], scores[f"sanity_{metric}_real"]
    damage = {d: scores[f"sanity_{metric}_{d}"] for d in DAMAGES}
    nearest = min(damage.values())
    near = real - floor <= NEAR_FLOOR * (nearest - floor)
    return near and max(floor, real) < nearest and damage["noise"] == max(damage.values())


def sanity_line(scores: dict[str, float]) -> str:
    """One line: the KID ladder, and whether it held."""
    ladder = ", ".join(f"{name} {scores[f'sanity_kid_{name}']:.3g}" for name in ("floor", "real", *DAMAGES))
    verdict = "in order" if scores["sanity_passed"] else "OUT OF ORDER: these features do not rank damage"
    return f"sanity KID vs held-out ({scores['sanity_images']} images each): {ladder}: {verdict}"
