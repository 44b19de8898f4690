"""The evaluator file that the features stage writes, as train and evaluate read it.

Kept apart from its builder (gan.features), so that the stages that only read the file do not depend
on how the feature network was trained: editing the self-supervised trainer reruns features, and the
stages after it only when the file it writes changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan import checkpoint
from gan.checkpoint import file_sha256
from gan.classifier import DomainClassifier, embed
from gan.errors import UserError, one_line
from gan.metrics.registry import FeatureView

FIX = "run `dvc repro features`"
KINDS = ("classifier", "self_supervised", "random", "points")


@dataclass(frozen=True)
class Evaluator:
    """What evaluate needs: for images a feature extractor and reference statistics, for points the modes."""

    kind: str  # "classifier", "self_supervised", "random" or "points"
    data_sha256: str
    num_classes: int  # classes the model predicts; 0 for the other kinds
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
    train_features: np.ndarray | None = None  # (N, D) features of the train split, for the data-copying test
    warning: str = ""  # non-empty: the domain metrics of this evaluator are not to be read as scores
    checks: dict[str, float] | None = None  # what features measured: floor, sanity ladder, chance test

    @property
    def trusted(self) -> bool:
        return not self.warning

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
                           self.num_classes, fake_labels=labels, train=self.train_features)


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
                         labels if len(labels) else None, state["test_accuracy"], sha256=digest,
                         train_features=state["train_features"].double().numpy(), warning=str(state["warning"]),
                         checks=dict(state["checks"]))
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"{path}: not a valid evaluator ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); delete it and {FIX}") from None
