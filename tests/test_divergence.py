"""A diverged run stops with one line and saves nothing non-finite: no checkpoint, no generator, no model."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import make_run_dir, run_stage
from gan import checkpoint, tracking
from gan.config import parse_params
from gan.divergence import Guard, TrainingDiverged
from gan.losses import LOSSES
from gan.training import Batches, TrainPaths, _loop, build_state, checkpoint_path, run_fingerprint
from gan.updates import make_plan, train_step

DIVERGING = {
    "data": {"name": "grid25", "num_points": 2000},
    "model": {"arch": "mlp", "width": 32},
    "train": {"steps": 400, "batch_size": 32, "lr_g": 100000.0, "lr_d": 100000.0, "loss": "least_squares",
              "log_every": 20, "checkpoint_every": 50, "sample_every": 10_000, "eval_every": 100, "eval_samples": 200},
}


def test_a_diverging_run_exits_with_one_line_and_leaves_no_result(tmp_path, monkeypatch):
    directory = make_run_dir(tmp_path / "run", DIVERGING)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    result = run_stage("train", directory)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train: error: training diverged: at step ")
    assert "loss_" in last and ("nan" in last or "inf" in last)
    assert "train.lr_g=100000" in last and "train.loss=least_squares" in last  # what to try
    assert not (directory / "models" / "generator.pt").exists()
    assert not list((directory / "checkpoints").glob("*/*.pt"))
    run_id = json.loads((directory / "reports/train/run.json").read_text())["run_id"]
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure.reason"].startswith("training diverged: at step ")
    assert not any(a.path == "generator" for a in MlflowClient(store).list_artifacts(run_id))


def nan_after(calls: int):
    """The non-saturating D loss, which turns NaN from its `calls`-th use on (as an overflow would)."""
    count = {"n": 0}
    base = LOSSES["nonsaturating"]

    def d_loss(real, fake):
        count["n"] += 1
        loss = base.d_loss(real, fake)
        return loss * float("nan") if count["n"] >= calls else loss

    return dataclasses.replace(base, d_loss=d_loss)


def test_the_last_good_checkpoint_stays_when_a_later_step_diverges(tmp_path):
    params = {**DIVERGING, "train": {**DIVERGING["train"], "lr_g": 1e-3, "lr_d": 1e-3, "loss": "nonsaturating",
                                     "eval_every": 0}}
    directory = make_run_dir(tmp_path / "run", params)
    cfg = parse_params(params)
    paths = TrainPaths(directory / "data/prepared", directory / "models/generator.pt", directory / "checkpoints",
                       directory / "reports/train", directory / "models/evaluator.pt")
    state = build_state(cfg, (2,), torch.device("cpu"))
    plan = dataclasses.replace(make_plan(cfg, 0, None, torch.device("cpu")), loss=nan_after(130))
    data = torch.randn(500, 2).numpy()
    run_fp = run_fingerprint(cfg, "test-data")
    ckpt = checkpoint_path(paths, run_fp)
    run = tracking.start_run("divergence-test", {})
    with pytest.raises(TrainingDiverged, match=r"at step 130 loss_d=nan.*last good checkpoint \(step 100\)"):
        _loop(state, cfg, plan, paths, ckpt, run_fp, Batches(data, "points", torch.device("cpu"), state.index_rng),
              run)
    saved = checkpoint.load(ckpt, "checkpoint", "")
    assert saved["step"] == 100
    assert all(torch.isfinite(t).all() for t in saved["generator"].values())
    assert all(torch.isfinite(t).all() for t in saved["discriminator"].values())
    history = (paths.history).read_text().splitlines()
    assert len(history) == 1 + 140  # the curves up to the flush that found it are kept


def test_the_guard_checks_the_ema_weights_at_every_flush(tmp_path):
    cfg = parse_params({**DIVERGING, "train": {**DIVERGING["train"], "lr_g": 1e-3, "lr_d": 1e-3,
                                                "ema_half_life_images": 100.0}})
    state = build_state(cfg, (2,), torch.device("cpu"))
    plan = make_plan(cfg, 0, None, torch.device("cpu"))
    batches = Batches(torch.randn(64, 2).numpy(), "points", torch.device("cpu"), state.index_rng)

    class Rows:  # the Reporter's part the guard relies on: flush appends the finite losses to history
        def flush(self):
            state.history.append([float(state.step), 0.1, 0.2, 0.5, 0.5])

    train_step(state, plan, batches)
    guard = Guard(state, cfg, tmp_path / "last.pt", saved_step=None)
    guard.flush(Rows(), weights=False)
    next(state.ema.model.parameters()).data[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"the weights ema\.\S+ were not finite.*no checkpoint"):
        guard.flush(Rows(), weights=False)
