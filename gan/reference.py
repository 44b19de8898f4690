"""The `reference` stage: Inception features of the held-out reals, computed once per
(data hash, weights hash, sample count) and shared by every experiment through DVC.

The domain classifier's reference statistics live in the evaluator (the `features` stage);
this stage exists because Inception is expensive on a CPU and its weights are optional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import checkpoint
from gan.config import Config
from gan.data import load_prepared
from gan.metrics.frechet import gaussian_stats
from gan.metrics.inception import INPUT_SIZE, InceptionFeatures, InceptionWeightsMissing, resolve_weights
from gan.metrics.registry import METRICS
from gan.runtime import resolve_device

FIX = "run `dvc repro reference`"


def build_reference(cfg: Config, prepared_dir: Path, out_path: Path) -> dict[str, Any]:
    """Write the Inception reference of the test split, or a record of why there is none.

    Missing weights are not a failure here: the domain metrics must still run. The record
    keeps the message, and evaluate repeats it for every Inception metric it had to skip.
    """
    prepared = load_prepared(prepared_dir)
    state: dict[str, Any] = {"version": checkpoint.FORMAT_VERSION, "data_sha256": prepared.meta["sha256"]}
    wanted = [m for m in cfg.evaluate.metrics if METRICS[m].extractor == "inception"]
    if not wanted or prepared.meta["kind"] != "images":
        state["status"] = "not_requested"
        print("reference: no Inception metric requested in evaluate.metrics; nothing to compute")
    else:
        try:
            weights = resolve_weights(cfg.evaluate.inception_weights)
        except InceptionWeightsMissing as exc:
            state.update(status="weights_missing", message=str(exc))
            print(f"reference: warning: {exc}\nreference: after placing the file, run `dvc repro -f reference`")
        else:
            state.update(_inception_state(cfg, prepared.test_x, weights))
    checkpoint.save_atomic(state, out_path)
    return state


def _inception_state(cfg: Config, images: np.ndarray, weights: Path) -> dict[str, Any]:
    network = InceptionFeatures(weights, resolve_device(cfg.train.device))
    features, _ = network.embed(images, cfg.evaluate.batch_size, logits=None)
    mu, sigma = gaussian_stats(features)
    print(f"reference: Inception features of {len(features)} held-out images, weights sha256 "
          f"{network.sha256[:12]}")
    return {"status": "ok", "weights_sha256": network.sha256, "weights_path": str(weights),
            "features": torch.from_numpy(features.astype(np.float32)), "mu": torch.from_numpy(mu),
            "sigma": torch.from_numpy(sigma), "count": len(features), "resize": f"bilinear to {INPUT_SIZE}"}


def load_reference(path: Path) -> dict[str, Any]:
    return checkpoint.load(Path(path), "Inception reference", FIX)
