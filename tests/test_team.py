"""A team: the pipeline logs to an `mlflow server` on PostgreSQL behind basic auth (two queue workers at
once), and a teammate's fresh clone pulls the outputs and experiments from a DVC remote, no retraining."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import copy_repository, drain_queue, dvc, run
from team import AuthServer, Postgres

pytestmark = pytest.mark.system

POINTS = {
    "data": {"name": "grid25", "num_points": 2000},
    "model": {"arch": "mlp", "width": 32, "latent_dim": 2},
    "train": {"steps": 150, "batch_size": 32, "sample_every": 75, "checkpoint_every": 50, "log_every": 25,
              "eval_every": 0},
    "generate": {"num_samples": 1000},
    "evaluate": {"num_samples": 1000},
}
SHARED_STAGES = ("plots_page", "features", "reference")  # with prepare: what train's params do not reach


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    database = Postgres()
    database.start()
    server = AuthServer(tmp_path_factory.mktemp("server"), database.uri)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        database.stop()


def test_two_queue_workers_log_to_a_postgresql_server_behind_basic_auth(team, tmp_path, monkeypatch):
    root, env = copy_repository(tmp_path / "repo", POINTS)
    env.update(team.credentials)
    # the stages every experiment shares, once, before the workers start, as docs/scale.md says: two workers
    # that commit the same output to DVC's cache at the same instant can fail one of them (seen in CI)
    dvc(root, {**env, "GAN_THREADS": "1"}, "repro", *SHARED_STAGES)
    for lr in ("0.0005", "0.001"):
        dvc(root, env, "exp", "run", "--queue", "-n", f"lr-{lr}", "-S", f"train.lr_g={lr}")
    status = drain_queue(root, {**env, "GAN_THREADS": "1"}, ["lr-0.0005", "lr-0.001"], jobs=2)
    assert status.count("Success") == 2, status + dvc(root, env, "queue", "logs", "lr-0.001", ok=False).stdout
    for lr in ("0.0005", "0.001"):  # the shared stages came from the cache: no worker added them again
        log = dvc(root, env, "queue", "logs", f"lr-{lr}").stdout
        assert "Running stage 'train'" in log and not any(f"Running stage '{s}'" in log for s in SHARED_STAGES), log

    for key, value in team.credentials.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(team.uri)
    runs = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    by_name = {r.data.tags.get("dvc.exp_name"): r for r in runs}
    assert set(by_name) == {"lr-0.0005", "lr-0.001"}
    for name, found in by_name.items():
        assert found.info.status == "FINISHED" and found.data.params["train.lr_g"] == name.split("-")[1]
        assert "eval/modes_captured_1k" in found.data.metrics
        assert {d.dataset.name for d in found.inputs.dataset_inputs} == {"grid25-train", "grid25-test"}
    versions = client.search_model_versions("name = 'gan-grid25-mlp'")
    assert len(versions) == 2
    best = client.get_model_version_by_alias("gan-grid25-mlp", "best")
    assert float(best.tags["reverse_kl_1k"]) == min(float(v.tags["reverse_kl_1k"]) for v in versions)

    out = run([sys.executable, "-m", "gan", "sample", "--model", "models:/gan-grid25-mlp@best", "-n", "16", "-o",
               str(tmp_path / "points.npz")], root, env)  # the weights come through the server's artifact proxy
    assert np.load(tmp_path / "points.npz")["x"].shape == (16, 2), out.stdout

    search = team.uri + "/api/2.0/mlflow/experiments/search?max_results=5"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(search, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(search)
    wrong = base64.b64encode(f"{team.user}:not-the-password".encode()).decode()
    request.add_header("Authorization", f"Basic {wrong}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def _git(cwd, env, *args: str) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd, env)


def test_a_teammate_s_clone_pulls_outputs_and_experiments_from_the_dvc_remote_without_retraining(tmp_path):
    root, env = copy_repository(tmp_path / "repo", POINTS)
    env["OMP_NUM_THREADS"] = "1"
    remote, origin = tmp_path / "dvc-remote", tmp_path / "origin.git"
    _git(tmp_path, env, "init", "-q", "--bare", "-b", "main", str(origin))
    _git(root, env, "remote", "add", "origin", str(origin))
    dvc(root, env, "remote", "add", "-d", "shared", str(remote))
    dvc(root, env, "repro")
    _git(root, env, "add", "-A")
    _git(root, env, "commit", "-qm", "results")
    _git(root, env, "push", "-q", "origin", "main")
    dvc(root, env, "push")
    outputs = ("models/generator.pt", "models/evaluator.pt", "data/prepared/train.npz")
    committed = {output: (root / output).read_bytes() for output in outputs}
    dvc(root, env, "exp", "run", "-n", "fast-g", "-S", "train.lr_g=0.0005")  # leaves its outputs in the workspace
    dvc(root, env, "exp", "push", "origin", "fast-g")

    clone = tmp_path / "clone"
    _git(tmp_path, env, "clone", "-q", str(origin), str(clone))
    dvc(clone, env, "pull")
    for output in outputs:
        assert (clone / output).read_bytes() == committed[output], output
    status = dvc(clone, env, "status").stdout
    assert "up to date" in status, status
    dvc(clone, env, "exp", "pull", "origin", "fast-g")
    shown = json.loads(dvc(clone, env, "exp", "show", "--json").stdout)
    names = {rev.get("name") for base in shown for group in base.get("experiments") or [] for rev in group["revs"]}
    assert "fast-g" in names
