"""The `features` stage: what evaluate scores generated samples against, built once per data set.

Images: a domain classifier trained on the train split (or, for unlabelled data, a fixed
random CNN) and the Gaussian statistics of its features on the held-out test split.
2-D mixtures: the mode centres and spread. Saved as plain tensors, loaded weights-only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import checkpoint
from gan.checkpoint import file_sha256
from gan.classifier import DomainClassifier, accuracy, embed, new_classifier, train_classifier
from gan.config import Config
from gan.data import Prepared, load_prepared
from gan.errors import UserError, one_line
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.registry import FeatureView, significant
from gan.runtime import make_deterministic, resolve_device

FIX = "run `dvc repro features`"
KINDS = ("classifier", "random_cnn", "points")


@dataclass(frozen=True)
class Evaluator:
    """What evaluate needs: for images a feature extractor and reference statistics, for points the modes."""

    kind: str  # "classifier", "random_cnn" or "points"
    data_sha256: str
    num_classes: int  # classes the model predicts; 0 for random_cnn and points
    model: DomainClassifier | None = None
    ref_mu: np.ndarray | None = None  # (D,) float64, features of the test split
    ref_sigma: np.ndarray | None = None  # (D, D) float64
    ref_count: int = 0
    ref_features: np.ndarray | None = None  # (M, D) float32 features of the test split, for KID/PR/DC
    ref_labels: np.ndarray | None = None  # (M,) int64 labels of the test split, when labelled
    test_accuracy: float | None = None
    sha256: str = ""  # of the evaluator file: recorded with every score it produced
    modes: np.ndarray | None = None  # (K, 2) mixture centres
    mode_std: float = 0.0

    def embed(self, images: np.ndarray, batch_size: int,
              device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, C) -> features float64 (N, D) and logits float32 (N, num_classes)."""
        if self.model is None:
            raise ValueError(f"a {self.kind} evaluator has no feature extractor")
        return embed(self.model, images, batch_size=batch_size, device=device)

    def view(self, samples: np.ndarray, batch_size: int, device: torch.device | str = "cpu",
             labels: np.ndarray | None = None) -> FeatureView:
        """Generated samples, stored like the data (uint8 images or 2-D points), beside this evaluator's reals.

        Points are compared with the mixture's modes as they are; images through the domain
        features (and logits), with the test split's features, statistics and labels as reference.
        `labels` are the classes a conditional G was asked for.
        """
        if self.kind == "points":
            return FeatureView(np.zeros((0, 2)), samples, modes=self.modes, mode_std=self.mode_std)
        features, logits = self.embed(samples, batch_size=batch_size, device=device)
        return FeatureView(self.ref_features, features, self.ref_mu, self.ref_sigma, logits, self.ref_labels,
                           self.num_classes, fake_labels=labels)


def build_evaluator(cfg: Config, prepared_dir: Path, out_path: Path, metrics_path: Path) -> dict[str, Any]:
    """Build the evaluator for the prepared data, save it to `out_path` and its numbers to `metrics_path`."""
    started = time.perf_counter()
    prepared = load_prepared(Path(prepared_dir))
    if prepared.meta["kind"] == "points":
        state = {"version": checkpoint.FORMAT_VERSION, "kind": "points", "data_sha256": prepared.meta["sha256"],
                 "modes": torch.tensor(prepared.meta["modes"], dtype=torch.float64),
                 "mode_std": float(prepared.meta["mode_std"])}
        metrics = {"modes_total": len(prepared.meta["modes"])}
        summary = f"{metrics['modes_total']} modes, std {state['mode_std']}"
    else:
        state, metrics = _image_evaluator(cfg, prepared)
        summary = _image_summary(state["kind"], metrics)
    checkpoint.save_atomic(state, Path(out_path))
    metrics = {k: significant(v) for k, v in metrics.items()}
    metrics_path = Path(metrics_path)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"features: {summary}; {time.perf_counter() - started:.1f} s -> {out_path}")
    return metrics


def _image_evaluator(cfg: Config, prepared: Prepared) -> tuple[dict[str, Any], dict[str, float]]:
    """Train (or, without labels, draw) the feature network; take reference and floor statistics."""
    device = resolve_device(cfg.train.device)
    make_deterministic(cfg.seed, device)
    _, size, _, channels = prepared.train_x.shape
    num_classes = int(prepared.meta["num_classes"])
    # One class (or none) gives nothing to learn: a fixed random CNN is the consistent fallback.
    if num_classes >= 2 and prepared.train_y is not None:
        kind = "classifier"
        model = train_classifier(prepared.train_x, prepared.train_y, num_classes, epochs=cfg.features.epochs,
                                 batch_size=cfg.features.batch_size, lr=cfg.features.lr, seed=cfg.seed,
                                 device=device)
    else:
        kind, num_classes = "random_cnn", 0
        model = new_classifier(channels, size, 0, cfg.seed).to(device).eval()
    batch = cfg.features.batch_size
    test_features, test_logits = embed(model, prepared.test_x, batch_size=batch, device=device)
    train_features, _ = embed(model, prepared.train_x, batch_size=batch, device=device)
    ref_mu, ref_sigma = gaussian_stats(test_features)
    metrics: dict[str, float] = {}
    if kind == "classifier" and prepared.test_y is not None:
        metrics["classifier_test_accuracy"] = accuracy(test_logits, prepared.test_y)
    # What a generator that reproduced the training images would score against the test split.
    metrics["fid_real_train_vs_test"] = frechet_distance(*gaussian_stats(train_features), ref_mu, ref_sigma)
    metrics["fid_real_train_samples"] = len(train_features)
    metrics["reference_samples"] = len(test_features)
    state = {"version": checkpoint.FORMAT_VERSION, "kind": kind,
             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
             "channels": channels, "image_size": size, "num_classes": num_classes,
             "feature_dim": model.feature_dim, "data_sha256": prepared.meta["sha256"],
             "ref_mu": torch.from_numpy(ref_mu), "ref_sigma": torch.from_numpy(ref_sigma),
             "ref_features": torch.from_numpy(test_features.astype(np.float32)),
             "ref_labels": torch.from_numpy(np.asarray(prepared.test_y, np.int64)) if prepared.test_y is not None
             else torch.zeros(0, dtype=torch.int64),
             "ref_count": len(test_features), "test_accuracy": metrics.get("classifier_test_accuracy")}
    return state, metrics


def _image_summary(kind: str, metrics: dict[str, float]) -> str:
    extractor = (f"classifier test accuracy {metrics['classifier_test_accuracy']:.4f}"
                 if "classifier_test_accuracy" in metrics else f"{kind} features (unlabelled data)")
    return (f"{extractor}, real-data floor FID {metrics['fid_real_train_vs_test']:.4g} "
            f"({metrics['fid_real_train_samples']} train vs {metrics['reference_samples']} test images)")


def load_evaluator(path: Path) -> Evaluator:
    """Read what build_evaluator saved; a missing, corrupt or foreign file is a UserError."""
    path = Path(path)
    state = checkpoint.load(path, "evaluator", FIX)
    digest = file_sha256(path)
    try:
        if state["kind"] == "points":
            return Evaluator("points", str(state["data_sha256"]), 0,
                             modes=state["modes"].double().numpy(), mode_std=float(state["mode_std"]),
                             sha256=digest)
        if state["kind"] not in KINDS:
            raise ValueError(f"unknown kind {state['kind']!r}")
        model = DomainClassifier(state["channels"], state["image_size"], state["num_classes"],
                                 state["feature_dim"])
        model.load_state_dict(state["state_dict"])
        labels = state["ref_labels"].numpy()
        return Evaluator(state["kind"], str(state["data_sha256"]), int(state["num_classes"]), model.eval(),
                         state["ref_mu"].double().numpy(), state["ref_sigma"].double().numpy(),
                         int(state["ref_count"]), state["ref_features"].double().numpy(),
                         labels if len(labels) else None, state["test_accuracy"], sha256=digest)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"{path}: not a valid evaluator ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); delete it and {FIX}") from None
