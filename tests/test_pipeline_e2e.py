"""End to end: `dvc repro` in a temporary copy of the repository, with small params.

A real git repo with DVC initialised, the real stage scripts, and the default MLflow
store (SQLite at the repo root), as a user gets them. What the stages write is checked in the
fast suite (tests/test_stages.py, the stage scripts without DVC); this file holds what needs DVC,
the default store, an `mlflow server` or a browser.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from browser import drawn, rendered_dom, rendered_until, screenshot
from conftest import Server, copy_repository, dvc, run
from gan.data import content_hash

pytestmark = pytest.mark.system

SMALL = {
    "model": {"width": 16, "latent_dim": 16},
    # learning rates 10x the default, so that 60 steps visibly train G (about a third of the untrained FID)
    "train": {"steps": 60, "batch_size": 16, "lr_g": 0.002, "lr_d": 0.002, "sample_every": 20,
              "checkpoint_every": 20, "log_every": 5, "eval_every": 100},
    "features": {"epochs": 1},
    "generate": {"num_samples": 300, "grid_rows": 4, "interpolation_rows": 2, "interpolation_steps": 4},
    "evaluate": {"num_samples": 300},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A fresh clone-like copy of the repository, after `dvc repro`."""
    dest, env = copy_repository(tmp_path_factory.mktemp("repo"), SMALL)
    first = dvc(dest, env, "repro")
    return dest, env, first


def test_the_trained_generator_scores_better_than_the_untrained_one(repo):
    """The in-training FID falls from step 0 to step 60, and the final metric beats the untrained score.
    FID is biased upwards at few samples, so the trained G's 300-sample FID against the untrained G's
    1000-sample one favours the untrained G."""
    root, _, _ = repo
    rows = [line.split("\t") for line in (root / "reports/train/eval.tsv").read_text().splitlines()[1:]]
    untrained, trained = (float(fid) for _, fid in rows)
    assert trained < 0.8 * untrained, (untrained, trained)
    final = json.loads((root / "reports/metrics.json").read_text())["fid_domain_300"]
    assert final < 0.8 * untrained, (untrained, final)


def _run_count(root: Path) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return len(client.search_runs([client.get_experiment_by_name("gan").experiment_id]))


def test_a_second_repro_with_nothing_changed_runs_nothing_and_opens_no_run(repo):
    root, env, _ = repo
    runs = _run_count(root)
    again = dvc(root, env, "repro")
    assert "Running stage" not in again.stdout, again.stdout
    status = dvc(root, env, "status")
    assert "changed" not in status.stdout
    assert _run_count(root) == runs == 1


def test_mlflow_store_holds_one_run_with_params_curves_images_metrics_and_a_loadable_generator(repo):
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.tracking import MlflowClient

    from gan.models import load_generator

    root, _, first = repo
    store = f"sqlite:///{root / 'mlflow.db'}"  # the default store: no MLFLOW_TRACKING_URI was set
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)
    try:
        client = MlflowClient(store)
        run_id = json.loads((root / "reports/train/run.json").read_text())["run_id"]
        run = client.get_run(run_id)
        assert run.data.params["train.steps"] == "60" and run.data.params["evaluate.num_samples"] == "300"
        assert run.data.tags["data.sha256"] == json.loads((root / "data/prepared/meta.json").read_text())["sha256"]
        assert len(run.data.tags["git.commit"]) == 40
        assert [m.step for m in client.get_metric_history(run_id, "loss_d")] == list(range(1, 61))
        assert "eval/fid_domain_300" in run.data.metrics and "eval/kid_domain_300" in run.data.metrics
        assert [m.step for m in client.get_metric_history(run_id, "train_eval/fid_domain_1k")] == [0, 60]
        assert run.data.tags["protocol.generated_samples"] == "300"
        protocol_tags = [k for k in run.data.tags if k.startswith("protocol.")]
        assert len(protocol_tags) <= 6, protocol_tags  # the rest is the evaluate/protocol.json artifact
        datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert set(datasets) == {"mnist5k-train", "mnist5k-test"}
        train_set = datasets["mnist5k-train"].dataset
        prepared = np.load(root / "data/prepared/train.npz")
        assert train_set.digest == content_hash([prepared["x"], prepared["y"]])[:36]
        assert json.loads(train_set.source)["uri"] == "data/prepared/train.npz"
        assert {t.value for t in datasets["mnist5k-test"].tags} == {"evaluation"}
        found = client.search_runs([run.info.experiment_id], filter_string=f"dataset.digest = '{train_set.digest}'")
        assert [r.info.run_id for r in found] == [run_id]
        printed = f"#/experiments/{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning"
        assert printed in first.stdout, "evaluate says where the run is, in the UI's model-training view"
        kind = client.get_experiment(run.info.experiment_id).tags.get("mlflow.experimentKind")
        assert kind == "custom_model_development", "the UI opens the experiment in its model-training view"
        artifacts = {a.path for a in client.list_artifacts(run_id, "samples")}
        assert "samples/step_000000.png" in artifacts and "samples/step_000060.png" in artifacts
        assert {a.path for a in client.list_artifacts(run_id, "generate")} >= {"generate/grid.png"}
        assert "curves.png" in {a.path for a in client.list_artifacts(run_id)}
        generator = mlflow.pytorch.load_model(f"runs:/{run_id}/generator")
        z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            images = generator(z)
            trained, _ = load_generator(root / "models/generator.pt")  # what generate and evaluate used
            torch.testing.assert_close(images, trained(z))  # the logged model is the trained G, not a copy of another
        assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    finally:
        mlflow.set_tracking_uri(previous)


def gan_command(root: Path, env: dict[str, str], *args: str):
    """The installed `gan` command line, run in the repository (its store: ./mlflow.db)."""
    return run([sys.executable, "-m", "gan", *args], root, env, ok=False)


def test_evaluate_registers_the_generator_and_gan_sample_draws_it_from_every_kind_of_uri(repo, tmp_path):
    root, env, first = repo
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'gan-mnist5k-dcgan'")
    (generator,) = client.search_logged_models([client.get_experiment_by_name("gan").experiment_id])
    assert version.source == f"models:/{generator.model_id}" and version.run_id == generator.source_run_id
    log = first.stdout + first.stderr
    assert "already exists" not in log and "has no artifacts" not in log, "MLflow's noise on a first registration"
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert float(version.tags["fid_domain_300"]) == pytest.approx(metrics["fid_domain_300"])
    assert version.tags["primary_metric"] == "fid_domain_300"
    assert client.get_model_version_by_alias("gan-mnist5k-dcgan", "best").version == version.version
    run_id = json.loads((root / "reports/train/run.json").read_text())["run_id"]
    assert version.run_id == run_id

    grid = gan_command(root, env, "sample", "--model", "models:/gan-mnist5k-dcgan@best", "-n", "16", "-o",
                       str(tmp_path / "grid.png"))
    assert grid.returncode == 0, grid.stderr
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)  # 4 x 4, 2 px padding
    drawn_samples = []
    for i, uri in enumerate(("models:/gan-mnist5k-dcgan@best", f"models:/gan-mnist5k-dcgan/{version.version}",
                             f"runs:/{run_id}", "models/generator.pt")):
        out = gan_command(root, env, "sample", "--model", uri, "-n", "10", "--seed", "3", "-o", str(tmp_path / f"{i}.npz"))
        assert out.returncode == 0, out.stderr
        drawn_samples.append(np.load(tmp_path / f"{i}.npz")["x"])
    assert drawn_samples[0].shape == (10, 28, 28, 1) and drawn_samples[0].dtype == np.uint8
    assert all(np.array_equal(drawn_samples[0], other) for other in drawn_samples[1:])

    walk = gan_command(root, env, "interpolate", "--model", "models:/gan-mnist5k-dcgan@best", "--rows", "2",
                       "--steps", "4", "-o", str(tmp_path / "walk.png"))  # generate's params in SMALL, seed 0
    assert walk.returncode == 0, walk.stderr
    assert (tmp_path / "walk.png").read_bytes() == (root / "reports/generate/interpolation.png").read_bytes()

    arithmetic = gan_command(root, env, "arithmetic", "--model", "models:/gan-mnist5k-dcgan@best", "--samples", "300",
                             "-o", str(tmp_path / "arithmetic.png"))
    assert arithmetic.returncode == 0, arithmetic.stderr
    assert "thickness along its direction" in arithmetic.stdout and (tmp_path / "arithmetic.png").is_file()
    few = gan_command(root, env, "arithmetic", "--model", "models/generator.pt", "--samples", "4", "--expr", "7 - 1",
                      "-o", str(tmp_path / "few.png"))
    assert few.returncode == 2 and "samples '7' with confidence >= 0.9; draw more (--samples)" in few.stderr, few.stderr

    for uri, says in (("models:/nope@best", "no registered model 'nope'"),
                      ("models:/gan-mnist5k-dcgan@champion", "has no alias @champion; its aliases: @best"),
                      ("models:/gan-mnist5k-dcgan/9", "has no version '9'"),
                      ("missing.pt", "no such generator file")):
        failed = gan_command(root, env, "sample", "--model", uri, "-o", str(tmp_path / "x.png"))
        assert failed.returncode == 2 and says in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_dvc_plots_show_renders_the_curves_and_the_figures(repo, tmp_path):
    root, env, _ = repo
    dvc(root, env, "plots", "show", "-o", str(tmp_path))
    page = (tmp_path / "index.html").read_text()
    for title in ("Losses", "Discriminator outputs"):  # the vega charts of history.tsv, from dvc.yaml
        assert title in page, title
    for figure in ("reports/train/curves.png", "reports/generate/grid.png", "reports/generate/interpolation.png"):
        name = "workspace_" + figure.replace("/", "_")
        assert (tmp_path / "static" / name).read_bytes() == (root / figure).read_bytes(), figure
        assert page.count(f"static/{name}") == 1, f"{figure} is shown {page.count(f'static/{name}')} times"


def test_dvc_plots_show_draws_every_chart_offline_in_a_browser(repo, tmp_path):
    """The page loads no script from the network (the libraries are inlined from vl-convert-python through
    .dvc/config's plots.html_template), and in headless Chromium with the network off every chart draws."""
    root, env, _ = repo
    dvc(root, env, "plots", "show", "-o", str(tmp_path))
    page = (tmp_path / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", page), re.findall(r"<script[^>]+src=[^>]+>", page)
    assert "cdn.jsdelivr" not in page
    charts = set(re.findall(r"vegaEmbed\('#([^']+)'", page))
    assert len(charts) >= 4, charts  # losses, D outputs, and the columns of history.tsv and eval.tsv
    result = drawn(rendered_dom((tmp_path / "index.html").as_uri()), charts)
    assert all(result.values()), f"charts that did not draw: {sorted(k for k, ok in result.items() if not ok)}"


def _experiments(show: list[dict]) -> dict[str, dict]:
    """{experiment name: its data} from `dvc exp show --json`."""
    found = {}
    for baseline in show:
        for group in baseline.get("experiments") or []:
            for rev in group.get("revs", []):
                if rev.get("name"):
                    found[rev["name"]] = rev["data"]
    return found


def test_the_mlflow_ui_shows_the_run_s_params_metrics_datasets_charts_and_sample_grids(repo, tmp_path):
    """A real `mlflow server` over the run's store, read in headless Chromium as a user's browser does."""
    root, _, _ = repo
    server = Server(tmp_path, store=root / "mlflow.db")
    server.start()
    try:
        run_id = json.loads((root / "reports/train/run.json").read_text())["run_id"]
        page, view = f"{server.uri}/#/experiments/1/runs/{run_id}", "?workflowType=machine_learning"
        expected = ("train.lr_g 0.002", "model.arch dcgan", "eval/fid_domain_300", "loss_d", "mnist5k-train",
                    "gan-mnist5k-dcgan", "Model registry")  # the last: the model-training view's sidebar

        def text_of(dom: str) -> str:
            return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))

        # each part of the page comes from its own request (the registered model last, seen in CI): wait for all
        text = text_of(rendered_until(page + view, lambda dom: all(s in text_of(dom) for s in expected)))
        for shown in expected:
            assert shown in text, f"{shown!r} is not on the run page"
        assert "Evaluation runs" not in text, "the page opened in the GenAI view"
        def plots_in(dom: str) -> list[str]:
            return re.findall(r'class="[^"]*js-plotly-plot[^"]*"', dom)

        curves = ("loss_d", "loss_g", "d_real", "d_fake")

        def drew(dom: str) -> bool:
            plots = plots_in(dom)
            return len(plots) >= 4 and dom.count('class="main-svg"') >= len(plots) and all(
                f">{curve}<" in dom for curve in curves)

        charts = rendered_until(page + "/model-metrics" + view, drew, size="1600,4000")
        assert drew(charts), f"the metric charts did not draw: {len(plots_in(charts))} plots"
        preview = re.compile(r'<img alt="samples/step_000060.png" src="blob:')
        artifact = rendered_until(page + "/artifacts/samples/step_000060.png" + view, preview.search)
        assert preview.search(artifact), "the grid did not preview"
        screenshot(page + view, str(tmp_path / "run.png"))  # docs/screenshots.py takes the docs' pictures so
        assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.kill()


def test_experiments_change_params_show_side_by_side_and_name_their_mlflow_runs(repo):
    root, env, _ = repo
    dvc(root, env, "exp", "run", "-n", "slow-g", "-S", "train.lr_g=0.0001")
    dvc(root, env, "exp", "run", "-n", "grid", "-S", "data.name=grid25", "-S", "model.arch=mlp")
    exps = _experiments(json.loads(dvc(root, env, "exp", "show", "--json").stdout))
    assert exps["slow-g"]["params"]["params.yaml"]["data"]["train"]["lr_g"] == 0.0001
    assert exps["slow-g"]["metrics"]["reports/metrics.json"]["data"]["fid_domain_300"] > 0
    grid = exps["grid"]["metrics"]["reports/metrics.json"]["data"]
    assert 0 <= grid["modes_captured_300"] <= 25 and "reverse_kl_300" in grid and "high_quality_pct_300" in grid

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["grid"].data.tags["dvc.exp_name"] == "grid"
    assert by_name["grid"].data.params["data.name"] == "grid25"
    assert "eval/modes_captured_300" in by_name["grid"].data.metrics
    assert by_name["slow-g"].data.params["train.lr_g"] == "0.0001"
