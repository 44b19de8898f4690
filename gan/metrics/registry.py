"""The metric registry: a name states what a number is, so numbers of different protocols never mix.

A registered name is `<family>_<extractor>` (`fid_domain`, `kid_inception`) or, for 2-D data,
`modes`. Each result key also carries the number of generated samples it was computed on:
`fid_domain_5k`, `kid_domain_5k`, `kid_domain_5k_std`, `precision_inception_10k`. Scores are
comparable only when their keys are equal; the protocol file written beside metrics.json
holds the rest (reference split and count, extractor and its weights hash, resize, seed).

Adding a metric is one entry in METRICS (and its name in gan.catalog.METRICS, which params
validation reads) and its function in gan.metrics.families.COMPUTE. This module holds no metric
code, so the stages that only name or key metrics do not depend on how any of them is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureView:
    """Real (reference) and generated samples as one feature extractor sees them."""

    real: np.ndarray  # (M, D) features of the held-out reals, or (M, 2) points
    fake: np.ndarray  # (N, D) features of generated samples, or (N, 2) points
    real_mu: np.ndarray | None = None  # cached Gaussian statistics of `real`
    real_sigma: np.ndarray | None = None
    fake_logits: np.ndarray | None = None  # (N, K) class scores of the generated samples
    real_labels: np.ndarray | None = None  # (M,) int labels of the reals
    num_classes: int = 0
    modes: np.ndarray | None = None  # (K, 2) mixture centres, for 2-D data
    mode_std: float = 0.0
    fake_labels: np.ndarray | None = None  # (N,) classes a conditional G was asked for
    train: np.ndarray | None = None  # (T, D) features of the training images, for the data-copying test


@dataclass(frozen=True)
class Metric:
    extractor: str  # "domain", "inception" or "points": which FeatureView it reads
    needs_classes: bool = False  # labelled data (and class logits) only
    about: str = ""
    needs_conditional: bool = False  # samples of a conditional G, with the classes asked for


_FAMILIES: dict[str, str] = {
    "fid": "Fréchet distance of Gaussian fits to the features (Heusel et al. 2017)",
    "kid": "unbiased MMD² with a cubic polynomial kernel, 100 subsets of 1,000 (Bińkowski et al. 2018)",
    "pr": "k-NN precision and recall, k=3 (Kynkäänniemi et al. 2019)",
    "dc": "density and coverage, k=5 (Naeem et al. 2020)",
    "is": "Inception Score, 10 splits (Salimans et al. 2016)",
}

METRICS: dict[str, Metric] = {
    f"{family}_{extractor}": Metric(extractor, False, about)
    for extractor in ("domain", "inception")
    for family, about in _FAMILIES.items()
}
# the classifier's version of IS needs a classifier, i.e. labelled data
METRICS["is_domain"] = Metric("domain", True, "the Inception Score formula on the domain classifier's logits")
METRICS["fid_per_class_domain"] = Metric("domain", True, "FID within each class, by the classifier")
METRICS["classes_domain"] = Metric("domain", True, "classes covered and KL of the class histogram")
METRICS["agreement_domain"] = Metric("domain", True,
                                     "how often the classifier agrees with the class a conditional G was asked for",
                                     needs_conditional=True)
METRICS["copying_domain"] = Metric("domain", False, "data-copying test C_T: generated vs held-out distances to the "
                                   "nearest training image, per k-means cell (Meehan et al. 2020)")
METRICS["modes"] = Metric("points", False, "2-D mixtures: modes captured, % high quality, reverse KL, spread "
                                                "ratio; earth mover's distance to the mixture and its floor")


def significant(value: float | int) -> float | int:
    """Six significant digits for a metrics file: enough to compare, no float noise in diffs. Counts stay ints."""
    return value if isinstance(value, int) else float(f"{float(value):.6g}")


def count_tag(count: int) -> str:
    """5000 -> '5k', 1000 -> '1k', 2500 -> '2500'."""
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def result_key(name: str, key: str, count: int) -> str:
    """The stored name of one number: the metric's key with extractor and sample count.

    ("fid_domain", "fid", 5000) -> "fid_domain_5k"; ("kid_domain", "kid_std", 5000) ->
    "kid_domain_5k_std"; ("modes", "reverse_kl", 5000) -> "reverse_kl_5k".
    """
    extractor = METRICS[name].extractor
    tag = count_tag(count) if extractor == "points" else f"{extractor}_{count_tag(count)}"
    stem, suffix = (key[:-4], "_std") if key.endswith("_std") else (key, "")
    return f"{stem}_{tag}{suffix}"


def applies(name: str, data_kind: str, num_classes: int, conditional: bool = False) -> bool:
    metric = METRICS[name]
    if (metric.extractor == "points") != (data_kind == "points"):
        return False
    if metric.needs_conditional and not conditional:
        return False
    return not (metric.needs_classes and num_classes < 2)
