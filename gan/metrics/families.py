"""Every metric's computation, by registry name: adapters from a FeatureView to its numbers.

Only evaluate imports this module (and with it every metric). The score taken during training
uses two of them, `gan.metrics.frechet.fid` and `gan.metrics.modes.mode_scores`, straight from
their own modules, so that editing any other metric leaves the train stage up to date.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from gan.metrics.classes import class_coverage
from gan.metrics.copying import data_copying
from gan.metrics.frechet import fid, frechet_distance, gaussian_stats
from gan.metrics.inception_score import inception_score
from gan.metrics.kid import kernel_inception_distance
from gan.metrics.modes import mode_scores
from gan.metrics.prdc import density_coverage, precision_recall
from gan.metrics.registry import METRICS, FeatureView


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


def agreement(view: FeatureView, seed: int) -> dict[str, float]:
    """Share of conditional samples that the domain classifier puts in the class G was asked for."""
    if view.fake_labels is None:
        raise ValueError("class agreement needs the classes a conditional G was asked for")
    return {"class_agreement": float(np.mean(view.fake_logits.argmax(1) == view.fake_labels))}


def copying(view: FeatureView, seed: int) -> dict[str, float]:
    """C_T of the generated samples, the held-out reals and the training reals (gan.metrics.copying)."""
    if view.train is None:
        raise ValueError("the data-copying test needs the training images' features")
    out = data_copying(view.train, view.real, view.fake, seed=seed)
    return {"copying_ct": out["copying_ct"], "copying_cells": out["copying_cells"]}


_BY_FAMILY: dict[str, Callable[[FeatureView, int], dict[str, float]]] = {
    "fid": fid, "kid": kid, "pr": pr, "dc": dc, "is": inception_score_of}
COMPUTE: dict[str, Callable[[FeatureView, int], dict[str, float]]] = {
    **{f"{family}_{extractor}": f for family, f in _BY_FAMILY.items() for extractor in ("domain", "inception")},
    "fid_per_class_domain": fid_per_class, "classes_domain": classes, "agreement_domain": agreement,
    "copying_domain": copying,
    "modes": mode_scores,
}
assert COMPUTE.keys() == METRICS.keys(), "every registered metric needs its computation here"


def compute(name: str, view: FeatureView, seed: int) -> dict[str, float]:
    """The numbers of registry metric `name` on `view` (keys without extractor or sample count)."""
    return COMPUTE[name](view, seed)
