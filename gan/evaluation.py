"""The evaluate stage: score generated samples against held-out real data.

Images: the Fréchet distance between domain-classifier features of the generated samples
and of the held-out test split (FID-style, "fid_domain"), and how many classes the samples
cover by that classifier. 2-D mixtures: modes captured, % high-quality samples, reverse KL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gan import tracking
from gan.config import Config
from gan.data import load_prepared
from gan.errors import UserError
from gan.features import load_evaluator
from gan.metrics import class_coverage, frechet_distance, gaussian_stats, mode_metrics
from gan.runtime import resolve_device


@dataclass(frozen=True)
class EvaluatePaths:
    samples: Path  # data/generated/samples.npz
    prepared: Path  # data/prepared (its meta: kind, hash, modes)
    evaluator: Path  # models/evaluator.pt
    run_link: Path  # reports/train/run.json
    metrics: Path  # reports/metrics.json


def load_samples(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: no generated samples; run `dvc repro generate` first")
    try:
        with np.load(path) as saved:
            samples = saved["x"]
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: unreadable samples ({exc}); rerun `dvc repro -f generate`") from None
    if len(samples) < count:
        raise UserError(f"{path} holds {len(samples)} samples but evaluate.num_samples is {count}; "
                        f"raise generate.num_samples or lower evaluate.num_samples")
    return samples[:count]


def evaluate(cfg: Config, paths: EvaluatePaths) -> dict[str, Any]:
    """Score the first evaluate.num_samples generated samples; write metrics.json and log to MLflow."""
    meta = load_prepared(paths.prepared).meta
    evaluator = load_evaluator(paths.evaluator)
    if evaluator.data_sha256 != meta["sha256"]:
        raise UserError(f"{paths.evaluator} was built for other data (sha256 {evaluator.data_sha256[:12]}, "
                        f"prepared data is {meta['sha256'][:12]}); run `dvc repro features`")
    samples = load_samples(paths.samples, cfg.evaluate.num_samples)
    if meta["kind"] == "points":
        metrics = mode_metrics(samples, np.asarray(evaluator.modes), evaluator.mode_std)
    else:
        metrics = _image_metrics(evaluator, samples, cfg)
    metrics = {"num_samples": len(samples), **{k: _round(v) for k, v in metrics.items()}}
    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
    run = tracking.reopen_run(paths.run_link, {f"evaluate.{k}": v for k, v in cfg.to_dict()["evaluate"].items()})
    run.log_metrics([(0, {f"eval/{k}": v for k, v in metrics.items()})])
    run.log_artifact(paths.metrics, "evaluate")
    run.finish()
    print("evaluate: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))
    return metrics


def _image_metrics(evaluator: Any, samples: np.ndarray, cfg: Config) -> dict[str, float]:
    device = resolve_device(cfg.train.device)
    features, logits = evaluator.embed(samples, batch_size=cfg.evaluate.batch_size, device=device)
    mu, sigma = gaussian_stats(features)
    metrics = {"fid_domain": frechet_distance(mu, sigma, evaluator.ref_mu, evaluator.ref_sigma),
               "fid_reference_samples": evaluator.ref_count}
    if evaluator.num_classes:
        metrics.update(class_coverage(logits.argmax(1), evaluator.num_classes))
    return metrics


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")
