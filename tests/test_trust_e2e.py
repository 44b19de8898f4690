"""What `dvc repro` reports is what the code produces: code edits retrain, queued runs run their snapshot,
and an edit reruns only the stages whose code it touches. On a real git + DVC copy of the repository.

Unlike test_pipeline_e2e, nothing here sets PYTHONPATH: the stages find gan/ as a user's do, with the
package installed in editable mode from another checkout (this one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import copy_repository, drain_queue, dvc

pytestmark = pytest.mark.system

POINTS = {
    "data": {"name": "grid25", "num_points": 2000},
    "model": {"arch": "mlp", "width": 32, "latent_dim": 2},
    "train": {"steps": 150, "batch_size": 32, "sample_every": 75, "checkpoint_every": 50, "log_every": 25,
              "eval_every": 0},  # eval_every 0 ("never") must run end to end
    "generate": {"num_samples": 1000},
    "evaluate": {"num_samples": 1000},
}
EDIT = ('\n\n# a behavioural edit: the default loss becomes the saturating minimax game\n'
        'LOSSES["nonsaturating"] = LOSSES["minimax"]\n')


def make_repo(dest: Path, edit_losses: bool = False) -> tuple[Path, dict[str, str]]:
    root, env = copy_repository(dest, POINTS)
    env["OMP_NUM_THREADS"] = "1"
    if edit_losses:  # left uncommitted, as a user's edit is
        (root / "gan/losses.py").write_text((root / "gan/losses.py").read_text() + EDIT)
    return root, env


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root, env = make_repo(tmp_path_factory.mktemp("trust"))
    dvc(root, env, "repro")
    return root, env


def changed_stages(root: Path, env: dict[str, str]) -> set[str]:
    status = json.loads(dvc(root, env, "status", "--json").stdout or "{}")
    return {name.split(":")[-1] for name in status}


def test_eval_every_0_runs_the_whole_pipeline(repo):
    root, env = repo
    assert (root / "reports/train/eval.tsv").read_text() == "step\n"
    assert json.loads((root / "reports/metrics.json").read_text())["modes_captured_1k"] >= 0
    assert changed_stages(root, env) == set()


@pytest.mark.parametrize(("path", "expected"), [("gan/losses.py", {"train"}),
                                                 ("gan/metrics/kid.py", {"features", "evaluate"}),
                                                 ("gan/augment.py", {"features", "train"}),
                                                 ("gan/selfsupervised.py", {"features"}),
                                                 ("gan/models/mlp.py", {"train", "generate", "evaluate"})])
def test_a_comment_reruns_only_the_stages_that_run_the_file(repo, path, expected):
    root, env = repo
    original = (root / path).read_text()
    (root / path).write_text(original + "\n# an edit\n")
    try:
        assert changed_stages(root, env) == expected
    finally:
        (root / path).write_text(original)
    assert changed_stages(root, env) == set()


def generator_weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "models/generator.pt", weights_only=True)["state_dict"]


def test_a_code_edit_retrains_from_step_0_and_matches_a_fresh_run_of_the_edited_code(repo, tmp_path):
    root, env = repo
    before = generator_weights(root)
    original = (root / "gan/losses.py").read_text()
    (root / "gan/losses.py").write_text(original + EDIT)
    try:
        rerun = dvc(root, env, "repro")
        assert "from scratch" in rerun.stdout and "resuming" not in rerun.stdout, rerun.stdout[-2000:]
        edited = generator_weights(root)
        history = (root / "reports/train/history.tsv").read_text()
    finally:
        (root / "gan/losses.py").write_text(original)
    fresh, fresh_env = make_repo(tmp_path / "fresh", edit_losses=True)
    dvc(fresh, fresh_env, "repro", "train")
    expected = generator_weights(fresh)
    assert all(torch.equal(edited[k], expected[k]) for k in expected)  # bit-identical to the edited code's run
    assert not all(torch.equal(edited[k], before[k]) for k in before)  # and the edit did change the result
    assert history == (fresh / "reports/train/history.tsv").read_text()
    dvc(root, env, "repro")  # back to the committed code: its checkpoint folder resumes at the last step


def test_a_queued_experiment_runs_the_code_it_snapshotted(repo):
    root, env = repo
    training = root / "gan/training.py"
    original = training.read_text()
    training.write_text(original + '\nprint("SNAPSHOT-CODE-RAN")\n')
    try:
        dvc(root, env, "exp", "run", "--queue", "-n", "snapshot", "-S", "train.steps=120")
        training.write_text(original + '\nraise SystemExit("WORKSPACE-CODE-RAN: the queued run imported the '
                                       'workspace, not its snapshot")\n')
        status = drain_queue(root, env, ["snapshot"], jobs=1)
        logs = dvc(root, env, "queue", "logs", "snapshot", ok=False)
        assert "Success" in status, status + logs.stdout[-3000:]
        assert "SNAPSHOT-CODE-RAN" in logs.stdout and "WORKSPACE-CODE-RAN" not in logs.stdout
    finally:
        training.write_text(original)


def test_eight_queued_experiments_on_four_workers_all_land_on_a_store_none_of_them_found(tmp_path):
    """A user's first sweep on a fresh clone: no mlflow.db yet, 4 queue workers start together. The store is
    created and migrated once (the first train takes its lock), so every run lands: its metrics in DVC and
    in MLflow, and its generator as a version of the registered model, with @best at the lowest score."""
    from mlflow.tracking import MlflowClient

    root, env = make_repo(tmp_path / "fresh")
    env["GAN_THREADS"] = "1"
    assert not (root / "mlflow.db").exists()
    # a sweep over the learning rate: one dataset (the seed makes the data), so @best ranks all eight
    names = [f"lr-{i}" for i in range(1, 9)]
    for i, name in enumerate(names, start=1):
        dvc(root, env, "exp", "run", "--queue", "-n", name, "-S", f"train.lr_g={i * 2e-4:.4f}",
            "-S", "train.steps=100", "-S", "train.checkpoint_every=100")
    status = drain_queue(root, env, names, jobs=4)
    failed = [line for line in status.splitlines() if "Failed" in line]
    assert not failed and status.count("Success") >= 8, status
    shown = json.loads(dvc(root, env, "exp", "show", "--json").stdout)
    scores = {rev["name"]: rev["data"]["metrics"]["reports/metrics.json"]["data"]["reverse_kl_1k"]
              for baseline in shown for group in baseline.get("experiments") or [] for rev in group["revs"]
              if rev.get("name") in names}
    assert sorted(scores) == sorted(names)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()].count("gan") == 1  # created once
    runs = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(names)
    assert all(r.info.status == "FINISHED" and "eval/reverse_kl_1k" in r.data.metrics for r in runs)
    versions = client.search_model_versions("name = 'gan-grid25-mlp'")
    assert len(versions) == 8 and len({v.tags["data.sha256"] for v in versions}) == 1
    best = client.get_model_version_by_alias("gan-grid25-mlp", "best")
    assert float(best.tags["reverse_kl_1k"]) == min(float(v.tags["reverse_kl_1k"]) for v in versions)
