"""The scores of a paired task's outputs on the held-out pairs (evaluate), beside the baseline computed by
the same code in the same run (gan.tasks.outputs).

Every score is given three times where it can be (BasicSR's and pix2pix's tables, in one place):
- the outputs of G on the held-out sources: `psnr_y_crop4`, `fid_domain_1k`, ...;
- the baseline, `<key>_bicubic` (super-resolution: bicubic upsampling of the same inputs) or `<key>_source`
  (translation: the source itself, as an image);
- the real targets, `<key>_real`: the domain classifier's accuracy on the held-out targets and the FID of
  as many training targets against them, the floor no output can beat. (PSNR and SSIM of the targets
  against themselves are infinite and 1, so they are not repeated.)

PSNR and SSIM are on the Y channel (BT.601 luma of RGB; gray as is; gan.metrics.restoration, torchmetrics).
Super-resolution: BasicSR's per-image means with `scale` border pixels cropped (`psnr_y_crop4`). Translation:
the PSNR of the error pooled over the set (`psnr_y_pooled`: a source can equal its target, and a per-image
PSNR is then infinite), the per-image SSIM uncropped; inpainting adds `psnr_y_pooled_hole`, inside the
holes only, where G had nothing to copy. The domain classifier's
accuracy on the outputs against the targets' labels is the analogue of pix2pix's FCN score.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from gan import pairs
from gan.metrics import restoration
from gan.metrics.frechet import fid
from gan.metrics.registry import FeatureView, count_tag, result_key

from gan.tasks.outputs import baseline

def crop(saved: dict[str, Any]) -> int:
    """Border pixels left out of PSNR and SSIM: the scale for super-resolution (BasicSR), none for translation."""
    return int(saved["task_inputs"]["scale"]) if saved["task"] == "super_resolution" else 0


def pixel_scores(saved: dict[str, Any], images: np.ndarray, targets: np.ndarray,
                 sources: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of `images` against the targets on Y.

    Super-resolution: BasicSR's per-image scores with `scale` border pixels cropped, averaged. Translation:
    the PSNR of the pooled error (a source can equal its target, whose per-image PSNR is infinite) and the
    mean per-image SSIM; inpainting adds the pooled PSNR inside the holes.
    """
    border = crop(saved)
    ssim = {restoration.key("ssim_y", border): float(np.mean(restoration.ssim_y(images, targets, border)))}
    if saved["task"] == "super_resolution":
        return {restoration.key("psnr_y", border): float(np.mean(restoration.psnr_y(images, targets, border))),
                **ssim}
    scores = {"psnr_y_pooled": restoration.psnr_y_pooled(images, targets), **ssim}
    if sources.shape[-1] == targets.shape[-1] + 1:  # a mask source: the hole is its last channel
        scores["psnr_y_pooled_hole"] = restoration.psnr_y_pooled(images, targets, pairs.hole(sources))
    return scores


def domain_scores(view: FeatureView, labels: np.ndarray | None, seed: int) -> dict[str, float]:
    """The domain FID of some images against the held-out targets (`view`: the evaluator's view of them), and
    the classifier's accuracy on their labels."""
    n = len(view.fake)
    scores = {result_key("fid_domain", "fid", n): fid(view, seed)["fid"]}
    if labels is not None and view.fake_logits is not None:
        scores[f"accuracy_domain_{count_tag(n)}"] = float(np.mean(view.fake_logits.argmax(1) == labels))
    return scores


def real_scores(evaluator: Any, count: int, seed: int) -> dict[str, float]:
    """The floor: `count` training targets' FID against the held-out targets, and the accuracy on those."""
    train = evaluator.train_features[:count]
    view = FeatureView(evaluator.ref_features, train, evaluator.ref_mu, evaluator.ref_sigma)
    scores = {result_key("fid_domain", "fid", count) + "_real": fid(view, seed)["fid"]}
    if evaluator.test_accuracy is not None:  # the classifier on the whole held-out split
        scores[f"accuracy_domain_{count_tag(count)}_real"] = float(evaluator.test_accuracy)
    return scores


def score(saved: dict[str, Any], evaluator: Any, prepared: Any, images: np.ndarray,
          embed: Callable[[np.ndarray], FeatureView], seed: int) -> dict[str, float]:
    """Every score of a paired task's outputs, beside its baseline's and the real targets'. `embed` gives the
    domain evaluator's view of some images (evaluate's, which has already embedded the outputs)."""
    targets, sources, labels = prepared.test_x[:len(images)], prepared.test_source[:len(images)], prepared.test_y
    labels = labels[:len(images)] if labels is not None else None
    name, base = baseline(saved, sources)
    metrics = {**pixel_scores(saved, images, targets, sources), **domain_scores(embed(images), labels, seed)}
    for key, value in {**pixel_scores(saved, base, targets, sources),
                       **domain_scores(embed(base), labels, seed)}.items():
        metrics[f"{key}_{name}"] = value
    metrics.update(real_scores(evaluator, len(images), seed))
    return metrics
