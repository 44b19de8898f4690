"""Adapters from a FeatureView to each metric's numbers; the registry names them by string."""

from __future__ import annotations

import numpy as np

from gan.metrics.classes import class_coverage
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.inception_score import inception_score
from gan.metrics.kid import kernel_inception_distance
from gan.metrics.modes import mode_metrics
from gan.metrics.prdc import density_coverage, precision_recall
from gan.metrics.registry import FeatureView


def fid(view: FeatureView, seed: int) -> dict[str, float]:
    mu, sigma = (view.real_mu, view.real_sigma) if view.real_mu is not None else gaussian_stats(view.real)
    return {"fid": frechet_distance(*gaussian_stats(view.fake), mu, sigma)}


def kid(view: FeatureView, seed: int) -> dict[str, float]:
    out = kernel_inception_distance(view.real, view.fake, seed=seed)
    return {"kid": out["kid_mean"], "kid_std": out["kid_std"]}


def pr(view: FeatureView, seed: int) -> dict[str, float]:
    return precision_recall(view.real, view.fake, k=3)


def dc(view: FeatureView, seed: int) -> dict[str, float]:
    return density_coverage(view.real, view.fake, k=5)


def inception_score_of(view: FeatureView, seed: int) -> dict[str, float]:
    out = inception_score(view.fake_logits)
    return {"is": out["is_mean"], "is_std": out["is_std"]}


def fid_per_class(view: FeatureView, seed: int) -> dict[str, float]:
    """FID of the generated samples the classifier assigns to class c against the reals of class c.

    Classes with fewer than 2 samples on either side have no covariance and are left out;
    `fid_per_class_missing` counts them, since a collapsed G that never draws a class
    should not look better for it.
    """
    predicted = view.fake_logits.argmax(1)
    scores, missing = {}, 0
    for c in range(view.num_classes):
        real, fake = view.real[view.real_labels == c], view.fake[predicted == c]
        if len(real) < 2 or len(fake) < 2:
            missing += 1
            continue
        scores[c] = frechet_distance(*gaussian_stats(fake), *gaussian_stats(real))
    values = list(scores.values())
    out = {"fid_per_class_mean": float(np.mean(values)) if values else float("nan"),
           "fid_per_class_max": float(np.max(values)) if values else float("nan"),
           "fid_per_class_missing": float(missing)}
    out.update({f"fid_class{c}": v for c, v in scores.items()})
    return out


def classes(view: FeatureView, seed: int) -> dict[str, float]:
    out = class_coverage(view.fake_logits.argmax(1), view.num_classes)
    return {"classes_covered": out["classes_covered"], "class_kl": out["class_kl"]}


def modes(view: FeatureView, seed: int) -> dict[str, float]:
    out = mode_metrics(view.fake, view.modes, view.mode_std)
    return {k: out[k] for k in ("modes_captured", "high_quality_pct", "reverse_kl")}



def agreement(view: FeatureView, seed: int) -> dict[str, float]:
    """Share of conditional samples that the domain classifier puts in the class G was asked for."""
    if view.fake_labels is None:
        raise ValueError("class agreement needs the classes a conditional G was asked for")
    return {"class_agreement": float(np.mean(view.fake_logits.argmax(1) == view.fake_labels))}
