"""The `features` stage: what evaluate scores generated samples against, built once per data set.

Images: a feature network chosen by features.extractor (a domain classifier of the labels, a
SimCLR network trained on the images alone, or a fixed random one), checked by gan.trust (is the
classifier better than chance; do real, blurred, shuffled and noise images score in order), and
the features of the held-out split (reference) and the train split (data-copying test).
2-D mixtures: the mode centres and spread. Saved as plain tensors, loaded weights-only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import checkpoint
from gan.classifier import DomainClassifier, embed, new_classifier, train_classifier
from gan.config import Config
from gan.data import Prepared, load_prepared
from gan.errors import UserError
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.metrics.registry import significant
from gan.runtime import make_deterministic, resolve_device
from gan.selfsupervised import train_self_supervised
from gan.trust import chance_check, sanity_check, sanity_line


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
    """Train (or draw) the feature network that features.extractor asks for, check it can be trusted,
    and take the reference, floor and sanity statistics."""
    device = resolve_device(cfg.train.device)
    make_deterministic(cfg.seed, device)
    model, kind, metrics, warning = _feature_network(cfg, prepared, device)
    batch = cfg.features.batch_size

    def features_of(images: np.ndarray) -> np.ndarray:
        return embed(model, images, batch_size=batch, device=device)[0]

    test_features, train_features = features_of(prepared.test_x), features_of(prepared.train_x)
    ref_mu, ref_sigma = gaussian_stats(test_features)
    # What a generator that reproduced the training images would score against the test split.
    metrics["fid_real_train_vs_test"] = frechet_distance(*gaussian_stats(train_features), ref_mu, ref_sigma)
    metrics["fid_real_train_samples"] = len(prepared.train_x)
    metrics["reference_samples"] = len(test_features)
    sanity = sanity_check(features_of, prepared.train_x, train_features, test_features, cfg.seed)
    metrics.update(sanity)
    print(f"features: {sanity_line(sanity)}")
    if not sanity["sanity_passed"]:
        print("features: warning: these features do not rank real and damaged images in order; treat the "
              "domain metrics with care (try another features.extractor, docs/evaluation.md)")
    metrics["domain_metrics_trusted"] = int(not warning)
    state = {"version": checkpoint.FORMAT_VERSION, "kind": kind,
             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
             "channels": model.channels, "image_size": model.image_size, "num_classes": model.num_classes,
             "feature_dim": model.feature_dim, "data_sha256": prepared.meta["sha256"],
             "ref_mu": torch.from_numpy(ref_mu), "ref_sigma": torch.from_numpy(ref_sigma),
             "ref_features": torch.from_numpy(test_features.astype(np.float32)),
             "ref_labels": torch.from_numpy(np.asarray(prepared.test_y, np.int64))
             if prepared.test_y is not None and model.num_classes else torch.zeros(0, dtype=torch.int64),
             "train_features": torch.from_numpy(train_features.astype(np.float32)),
             "ref_count": len(test_features), "test_accuracy": metrics.get("classifier_test_accuracy"),
             "warning": warning, "checks": {k: float(v) for k, v in metrics.items()}}
    return state, metrics


def _feature_network(cfg: Config, prepared: Prepared,
                     device: torch.device) -> tuple[DomainClassifier, str, dict[str, float], str]:
    """(network, kind, metrics, warning): the classifier when asked for (or, under auto, when the data is
    labelled and it beats chance), else a self-supervised or random network. The warning is non-empty
    when the network cannot be trusted: a classifier at chance that features.extractor insisted on."""
    wanted = cfg.features.extractor
    _, size, _, channels = prepared.train_x.shape
    num_classes = int(prepared.meta["num_classes"])
    labelled = num_classes >= 2 and prepared.train_y is not None and prepared.test_y is not None
    if wanted == "classifier" and not labelled:
        raise UserError(f"features.extractor=classifier needs labelled data (2 or more classes), but "
                        f"data.name={cfg.data.name} has {num_classes}; set features.extractor: auto, "
                        f"self_supervised or random")
    metrics: dict[str, float] = {}
    if wanted in ("auto", "classifier") and labelled:
        model = train_classifier(prepared.train_x, prepared.train_y, num_classes, epochs=cfg.features.epochs,
                                 batch_size=cfg.features.batch_size, lr=cfg.features.lr, seed=cfg.seed,
                                 device=device)
        check = chance_check(embed(model, prepared.test_x, batch_size=cfg.features.batch_size, device=device)[1],
                             prepared.test_y)
        metrics.update(classifier_test_accuracy=check.accuracy, classifier_chance_accuracy=check.chance,
                       classifier_p_value_vs_chance=check.p_value)
        if not check.at_chance:
            return model, "classifier", metrics, ""
        if wanted == "classifier":
            warning = (f"{check.line()}: the domain metrics are not scores; set features.extractor: auto or "
                       f"self_supervised (docs/evaluation.md)")
            print(f"features: warning: {warning}")
            return model, "classifier", metrics, warning
        print(f"features: {check.line()}; its features would make every domain metric meaningless, so "
              f"features.extractor: auto uses self-supervised features instead")
    if wanted == "random":
        return new_classifier(channels, size, 0, cfg.seed).to(device).eval(), "random", metrics, ""
    model, losses = train_self_supervised(prepared.train_x, steps=cfg.features.ssl_steps,
                                          batch_size=cfg.features.batch_size, lr=cfg.features.lr,
                                          seed=cfg.seed, device=device)
    metrics["self_supervised_loss_first"] = float(np.mean(losses[:10]))
    metrics["self_supervised_loss_last"] = float(np.mean(losses[-10:]))
    return model, "self_supervised", metrics, ""


def _image_summary(kind: str, metrics: dict[str, float]) -> str:
    if kind == "classifier":
        extractor = f"classifier test accuracy {metrics['classifier_test_accuracy']:.4f}"
    elif kind == "self_supervised":
        extractor = (f"self-supervised features (SimCLR loss {metrics['self_supervised_loss_first']:.3g} -> "
                     f"{metrics['self_supervised_loss_last']:.3g})")
    else:
        extractor = "random-network features"
    return (f"{extractor}, real-data floor FID {metrics['fid_real_train_vs_test']:.4g} "
            f"({metrics['fid_real_train_samples']} train vs {metrics['reference_samples']} test images)")
