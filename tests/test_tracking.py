"""The MLflow linkage: one run per pipeline execution, reopened by later stages, in the right store."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from gan import tracking
from gan.errors import UserError


def test_the_default_store_is_sqlite_at_the_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)  # a queued experiment runs elsewhere; the store stays at the root
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_a_run_is_named_after_the_dvc_experiment_and_tagged(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "my-exp")
    run = tracking.start_run("fallback-name", {"data.sha256": "abc"})
    info = MlflowClient(tracking.tracking_uri()).get_run(run.run_id)
    assert info.info.run_name == "my-exp"
    assert info.data.tags["dvc.exp_name"] == "my-exp" and info.data.tags["data.sha256"] == "abc"
    assert "git.commit" in info.data.tags


def test_later_stages_reopen_the_train_run_and_add_their_params(tmp_path):
    run = tracking.start_run("train", {})
    run.log_params({"train.lr_g": 0.1})
    link = tmp_path / "run.json"
    run.write_link(link)
    assert json.loads(link.read_text())["run_id"] == run.run_id
    again = tracking.reopen_run(link, {"evaluate.num_samples": 100})
    assert again.run_id == run.run_id
    params = MlflowClient(tracking.tracking_uri()).get_run(run.run_id).data.params
    assert params == {"train.lr_g": "0.1", "evaluate.num_samples": "100"}


def test_new_params_for_a_cached_train_run_go_to_a_child_run_with_the_parents_params(tmp_path):
    run = tracking.start_run("train", {"data.sha256": "abc"})
    run.log_params({"train.lr_g": 0.1, "evaluate.num_samples": 100})
    link = tmp_path / "run.json"
    run.write_link(link)
    child = tracking.reopen_run(link, {"evaluate.num_samples": 200})
    assert child.run_id != run.run_id
    data = MlflowClient(tracking.tracking_uri()).get_run(child.run_id).data
    assert data.tags["mlflow.parentRunId"] == run.run_id and data.tags["data.sha256"] == "abc"
    assert data.params == {"train.lr_g": "0.1", "evaluate.num_samples": "200"}


def test_metrics_rows_arrive_in_one_batch_per_call_beyond_mlflows_limit():
    run = tracking.start_run("metrics", {})
    run.log_metrics([(step, {"a": step * 0.5, "b": -step}) for step in range(1, 801)])  # 1,600 values
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.run_id, "a")
    assert sorted((m.step, m.value) for m in history) == [(s, s * 0.5) for s in range(1, 801)]


def test_a_missing_or_foreign_run_link_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="run `dvc repro train` first"):
        tracking.reopen_run(tmp_path / "absent.json", {})
    link = tmp_path / "run.json"
    link.write_text(json.dumps({"run_id": "0" * 32, "tracking_uri": "sqlite:///elsewhere.db"}))
    with pytest.raises(UserError, match=r"is not in the store .*the store train used \(sqlite:///elsewhere.db\)"):
        tracking.reopen_run(link, {})


def test_an_unreachable_server_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(UserError, match="MLflow store http://127.0.0.1:9 is not reachable"):
        tracking.start_run("x", {})


def test_artifacts_of_a_sqlite_store_live_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "EXPERIMENT", "beside-the-store")
    (tmp_path / "store").mkdir()
    run = tracking.start_run("x", {})
    experiment = MlflowClient(tracking.tracking_uri()).get_experiment_by_name("beside-the-store")
    assert experiment.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert run.run_id
