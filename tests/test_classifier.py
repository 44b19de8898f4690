"""The domain classifier and the features stage, on small data sets each test makes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.classifier import DomainClassifier, accuracy, embed, train_classifier
from gan.config import Config, FeaturesConfig, TrainConfig
from gan.data import content_hash
from gan.errors import UserError
from gan.evaluator import load_evaluator
from gan.features import build_evaluator
from gan.metrics.frechet import gaussian_stats


def quadrant_images(count: int, size: int = 28, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size, C) noise whose label (0..3) decides which quadrant is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=count)
    images = rng.integers(0, 80, size=(count, size, size, channels))
    half = size // 2
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 2)
        images[i, row * half:(row + 1) * half, col * half:(col + 1) * half] += 150
    return images.astype(np.uint8), labels.astype(np.int64)


def small_config(**features) -> Config:
    return Config(features=FeaturesConfig(**{"epochs": 1, "batch_size": 32, **features}),
                  train=replace(TrainConfig(), device="cpu"))


def write_prepared(directory: Path, train: tuple, test: tuple, meta: dict) -> Path:
    """The prepared format: train.npz / test.npz with x (and y when labelled), and meta.json."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in {"train": train, "test": test}.items():
        np.savez(directory / f"{name}.npz", **({"x": x} if y is None else {"x": x, "y": y}))
    shape = list(train[0].shape[1:])
    full_meta = {"name": "test", "shape": shape, "train_size": len(train[0]), "test_size": len(test[0]),
                 "sha256": content_hash([*train, *test]), **meta}  # load_prepared checks the arrays against it
    (directory / "meta.json").write_text(json.dumps(full_meta))
    return directory


def recorded_sha256(prepared: Path) -> str:
    return json.loads((prepared / "meta.json").read_text())["sha256"]


def image_meta(images: np.ndarray, num_classes: int) -> dict:
    return {"kind": "images", "image_size": images.shape[1], "channels": images.shape[3],
            "num_classes": num_classes}


# ---------------------------------------------------------------------------- the network


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_classifier_gives_features_and_logits_for_each_image_size(size, channels):
    model = DomainClassifier(channels, size, num_classes=10, feature_dim=128)
    x = torch.rand(5, channels, size, size) * 2 - 1
    assert model.features(x).shape == (5, 128)
    assert model(x).shape == (5, 10)


def test_classifier_without_classes_gives_features_and_empty_logits():
    model = DomainClassifier(1, 28, num_classes=0, feature_dim=32)
    x = torch.zeros(3, 1, 28, 28)
    assert model.features(x).shape == (3, 32)
    assert model(x).shape == (3, 0)


def test_training_is_bit_identical_for_the_same_seed():
    images, labels = quadrant_images(64)
    runs = [train_classifier(images, labels, 4, epochs=1, batch_size=32, lr=1e-3, seed=3, device="cpu")
            for _ in range(2)]
    first, second = (r.state_dict() for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train_classifier(images, labels, 4, epochs=1, batch_size=32, lr=1e-3, seed=4, device="cpu")
    assert not torch.equal(other.state_dict()["embedding.weight"], first["embedding.weight"])


def test_training_separates_a_learnable_task_within_two_epochs():
    train_x, train_y = quadrant_images(128, seed=0)
    test_x, test_y = quadrant_images(200, seed=1)
    model = train_classifier(train_x, train_y, 4, epochs=2, batch_size=32, lr=1e-3, seed=0, device="cpu")
    features, logits = embed(model, test_x, batch_size=64, device="cpu")
    assert features.shape == (200, 128) and features.dtype == np.float64
    assert logits.shape == (200, 4) and logits.dtype == np.float32
    assert accuracy(logits, test_y) > 0.9


def test_embed_does_not_depend_on_the_batch_size():
    images, _ = quadrant_images(50)
    model = DomainClassifier(1, 28, num_classes=4).eval()
    whole, _ = embed(model, images, batch_size=50, device="cpu")
    pieces, _ = embed(model, images, batch_size=7, device="cpu")
    np.testing.assert_allclose(whole, pieces, rtol=1e-5, atol=1e-6)


def test_accuracy_is_the_share_of_correct_argmax():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, np.array([0, 1, 1, 1])) == 0.75


# ---------------------------------------------------------------------------- the features stage


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_image_evaluator_round_trip(tmp_path):
    from pytorch_fid.fid_score import calculate_frechet_distance

    train, test = quadrant_images(128, seed=0), quadrant_images(100, seed=1)
    prepared = write_prepared(tmp_path / "prepared", train, test, image_meta(train[0], 4))
    metrics = build_evaluator(small_config(epochs=2), prepared, tmp_path / "evaluator.pt", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == metrics
    assert metrics["classifier_test_accuracy"] > 0.9
    assert (metrics["fid_real_train_samples"], metrics["reference_samples"]) == (128, 100)

    saved = torch.load(tmp_path / "evaluator.pt", weights_only=True)
    assert (saved["version"], saved["kind"], saved["data_sha256"]) == (1, "classifier", recorded_sha256(prepared))
    evaluator = load_evaluator(tmp_path / "evaluator.pt")
    assert (evaluator.kind, evaluator.num_classes, evaluator.ref_count) == ("classifier", 4, 100)
    features, logits = evaluator.embed(test[0], batch_size=32, device="cpu")
    train_features, _ = evaluator.embed(train[0], batch_size=32, device="cpu")
    # the real-data floor: train split against test split, as pytorch-fid computes it
    floor = calculate_frechet_distance(*gaussian_stats(train_features), *gaussian_stats(features))
    assert metrics["fid_real_train_vs_test"] == pytest.approx(floor, rel=1e-5) and floor > 0.01
    mu, sigma = gaussian_stats(features)
    np.testing.assert_allclose(mu, evaluator.ref_mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sigma, evaluator.ref_sigma, rtol=1e-5, atol=1e-9)
    assert accuracy(logits, test[1]) == pytest.approx(metrics["classifier_test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("extractor, kind", [("auto", "self_supervised"), ("self_supervised", "self_supervised"),
                                             ("random", "random")])
def test_unlabelled_images_get_self_supervised_features_under_auto_and_random_ones_when_asked(tmp_path, extractor,
                                                                                               kind):
    (train_x, _), (test_x, _) = quadrant_images(64, 32, 3, seed=0), quadrant_images(32, 32, 3, seed=1)
    prepared = write_prepared(tmp_path / "prepared", (train_x, None), (test_x, None), image_meta(train_x, 0))
    config = small_config(extractor=extractor, ssl_steps=5)
    metrics = build_evaluator(config, prepared, tmp_path / "a.pt", tmp_path / "a.json")
    build_evaluator(config, prepared, tmp_path / "b.pt", tmp_path / "b.json")
    assert "classifier_test_accuracy" not in metrics and metrics["domain_metrics_trusted"] == 1
    first, second = load_evaluator(tmp_path / "a.pt"), load_evaluator(tmp_path / "b.pt")
    assert (first.kind, first.num_classes, first.trusted) == (kind, 0, True)
    np.testing.assert_array_equal(first.ref_mu, second.ref_mu)  # same seed, same extractor
    features, logits = first.embed(test_x, batch_size=16, device="cpu")
    assert features.shape == (32, 128) and logits.shape == (32, 0)
    assert first.train_features.shape == (64, 128)


def test_a_classifier_asked_for_on_unlabelled_images_is_one_line_naming_the_choices(tmp_path):
    (train_x, _), (test_x, _) = quadrant_images(16, 32, 3, seed=0), quadrant_images(8, 32, 3, seed=1)
    prepared = write_prepared(tmp_path / "prepared", (train_x, None), (test_x, None), image_meta(train_x, 0))
    with pytest.raises(UserError, match="features.extractor=classifier needs labelled data .* set "
                                        "features.extractor: auto, self_supervised or random"):
        build_evaluator(small_config(extractor="classifier"), prepared, tmp_path / "a.pt", tmp_path / "a.json")
    assert not (tmp_path / "a.pt").exists()


def test_points_evaluator_round_trip(tmp_path):
    modes = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    points = np.zeros((30, 2), np.float32), np.zeros(30, np.int64)
    prepared = write_prepared(tmp_path / "prepared", points, points,
                              {"kind": "points", "num_classes": 3, "modes": modes, "mode_std": 0.05})
    metrics = build_evaluator(small_config(), prepared, tmp_path / "evaluator.pt", tmp_path / "m.json")
    assert metrics == {"modes_total": 3}
    evaluator = load_evaluator(tmp_path / "evaluator.pt")
    assert evaluator.kind == "points" and evaluator.model is None
    np.testing.assert_array_equal(evaluator.modes, np.array(modes))
    assert evaluator.mode_std == 0.05 and evaluator.data_sha256 == recorded_sha256(prepared)


def test_missing_evaluator_is_a_user_error_naming_the_fix(tmp_path):
    with pytest.raises(UserError, match="dvc repro features"):
        load_evaluator(tmp_path / "evaluator.pt")


def test_corrupt_evaluator_is_a_user_error_naming_the_fix(tmp_path):
    (tmp_path / "evaluator.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="dvc repro features"):
        load_evaluator(tmp_path / "evaluator.pt")


def test_evaluator_with_missing_fields_is_a_user_error(tmp_path):
    torch.save({"version": 1, "kind": "classifier"}, tmp_path / "evaluator.pt")
    with pytest.raises(UserError, match="not a valid evaluator"):
        load_evaluator(tmp_path / "evaluator.pt")
