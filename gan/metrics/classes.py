"""Class coverage of generated images, read through the domain classifier's predicted labels."""

from __future__ import annotations

import numpy as np

from gan.metrics.modes import kl_to_uniform

COVERED_SHARE = 0.25  # a class needs a quarter of its uniform share of the samples to count


def class_coverage(predicted: np.ndarray, num_classes: int) -> dict[str, float]:
    """How many classes the samples cover, and how far their class histogram is from uniform.

    A class is *covered* when it receives at least 0.25 * N / K of the N predicted labels.
    A quarter of the fair share is lenient enough that the natural imbalance of real data
    (MNIST classes range from 9% to 11%) and classifier errors never drop a class, while a
    class the generator has almost dropped (a few stray misclassified samples) is not
    counted. It is the class-level analogue of the 20% rule for mixture modes (PacGAN).

    class_kl = KL(p || uniform) = sum_k p_k log(p_k * K), where p is the predicted label
    histogram (0 log 0 = 0): 0 for balanced classes, log K when all samples share one class.
    Assumes balanced real classes, as in MNIST-like data sets.
    """
    predicted = np.asarray(predicted)
    if num_classes <= 0:
        raise ValueError(f"class_coverage needs num_classes > 0, got {num_classes}")
    if predicted.ndim != 1 or (predicted.size and (predicted.min() < 0 or predicted.max() >= num_classes)):
        raise ValueError(f"class_coverage needs a vector of labels in [0, {num_classes}), got shape "
                         f"{predicted.shape}")
    counts = np.bincount(predicted.astype(np.int64), minlength=num_classes)  # (K,)
    covered = int((counts >= COVERED_SHARE * len(predicted) / num_classes).sum()) if len(predicted) else 0
    return {
        "classes_covered": float(covered),
        "classes_total": float(num_classes),
        "class_kl": kl_to_uniform(counts),
    }
