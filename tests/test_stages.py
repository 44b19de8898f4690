"""Every stage script of dvc.yaml, run once in order on tiny params (conftest's `tiny_pipeline`), and what it
leaves behind: the outputs dvc.yaml declares, the numbers' ranges, the figures' layout, the MLflow run and
the registered generator that `gan sample` draws from. The same pipeline under real `dvc repro` is
tests/test_pipeline_e2e.py (`pytest -m system`)."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, TINY, run_gan

SAMPLES = TINY["evaluate"]["num_samples"]
STEPS = TINY["train"]["steps"]
TILE, PAD = 28, 2  # an mnist5k digit's side, and the padding gan.sampling.save_grid puts around every tile


def declared_outputs() -> list[str]:
    """Every file and folder the stages of dvc.yaml declare as outs, metrics or plots."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found = []
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            found += [entry if isinstance(entry, str) else next(iter(entry)) for entry in stage.get(key, [])]
    return found


def test_every_output_dvc_yaml_declares_is_written(tiny_pipeline):
    missing = [path for path in declared_outputs() if not (tiny_pipeline / path).exists()]
    assert not missing, missing
    history = (tiny_pipeline / "reports/train/history.tsv").read_text().splitlines()
    assert history[0].split("\t") == ["step", "loss_d", "loss_g", "d_real", "d_fake"] and len(history) == STEPS + 1
    scores = (tiny_pipeline / "reports/train/eval.tsv").read_text().splitlines()
    assert scores[0] == "step\tfid_domain_200" and [r.split("\t")[0] for r in scores[1:]] == ["0", str(STEPS)]
    with np.load(tiny_pipeline / "data/generated/samples.npz") as saved:
        assert saved["x"].shape == (TINY["generate"]["num_samples"], 28, 28, 1) and saved["x"].dtype == np.uint8
    protocol = json.loads((tiny_pipeline / "reports/evaluate/protocol.json").read_text())
    fid = protocol["metrics"]["fid_domain"]
    assert fid["generated_samples"] == SAMPLES and fid["reference_samples"] == 1000 and fid["reference_split"] == "test"
    assert len(fid["extractor_sha256"]) == 64 and protocol["skipped"]["modes"].startswith("does not apply")


def test_metrics_are_finite_and_within_their_ranges(tiny_pipeline):
    metrics = json.loads((tiny_pipeline / "reports/metrics.json").read_text())
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metrics.values()), metrics  # NaN -> null
    for name in ("precision", "recall", "coverage"):
        assert 0 <= metrics[f"{name}_domain_{SAMPLES}"] <= 1, name
    # density: the mean number of real k-NN balls (k = 5) holding a fake sample, over k; at most 1000 / 5
    assert 0 <= metrics[f"density_domain_{SAMPLES}"] <= 1000 / 5
    assert metrics[f"fid_domain_{SAMPLES}"] > 0 and metrics[f"kid_domain_{SAMPLES}_std"] >= 0
    assert 1 <= metrics[f"is_domain_{SAMPLES}"] <= 10  # between one class and all ten, evenly and confidently
    covered = metrics[f"classes_covered_domain_{SAMPLES}"]
    assert covered == int(covered) and 1 <= covered <= 10
    assert 0 <= metrics[f"class_kl_domain_{SAMPLES}"] <= math.log(10) * (1 + 1e-5)
    assert 0 < metrics[f"fid_per_class_mean_domain_{SAMPLES}"] <= metrics[f"fid_per_class_max_domain_{SAMPLES}"]
    features = json.loads((tiny_pipeline / "reports/features/metrics.json").read_text())
    assert 0.1 < features["classifier_test_accuracy"] <= 1, features
    assert features["classifier_p_value_vs_chance"] < 0.01 and features["domain_metrics_trusted"] == 1, features
    assert features["sanity_kid_noise"] > features["sanity_kid_floor"], features
    # 30 steps of G: far from the training images, so the data-copying test reads underfitting, never copying
    assert metrics[f"copying_ct_domain_{SAMPLES}"] > 3 and metrics[f"copying_cells_domain_{SAMPLES}"] >= 1, metrics
    protocol = json.loads((tiny_pipeline / "reports/evaluate/protocol.json").read_text())
    assert protocol["evaluator"]["kind"] == "classifier" and protocol["evaluator"]["trusted"] is True


def grid_tiles(path: Path, rows: int) -> list[np.ndarray]:
    """The rows x rows tiles of a sample grid PNG, (TILE, TILE) grey each, after checking the layout:
    its size, and black padding (save_grid's pad value) on every line between the tiles."""
    from PIL import Image

    image = np.asarray(Image.open(path).convert("L"))
    pitch = TILE + PAD
    assert image.shape == (PAD + rows * pitch,) * 2, (path.name, image.shape)
    lines = [slice(r * pitch, r * pitch + PAD) for r in range(rows + 1)]
    assert all((image[line] == 0).all() and (image[:, line] == 0).all() for line in lines), path.name
    return [image[PAD + r * pitch:PAD + r * pitch + TILE, PAD + c * pitch:PAD + c * pitch + TILE]
            for r in range(rows) for c in range(rows)]


@pytest.mark.parametrize("figure", ["reports/generate/grid.png", "reports/train/samples/step_000000.png",
                                    f"reports/train/samples/step_{STEPS:06d}.png"])
def test_sample_grids_hold_grid_rows_squared_different_samples(tiny_pipeline, figure):
    tiles = grid_tiles(tiny_pipeline / figure, TINY["generate"]["grid_rows"])
    assert len(tiles) == 16
    assert all(not np.array_equal(a, b) for a, b in combinations(tiles, 2))  # one sample per latent, no copies
    assert all(tile.std() > 0 for tile in tiles)  # a drawing in every tile, not a blank


def test_the_mlflow_run_holds_params_every_step_images_metrics_datasets_and_the_registered_generator(tiny_pipeline):
    from mlflow.tracking import MlflowClient

    from gan import tracking

    client = MlflowClient(tracking.tracking_uri())
    run_id = json.loads((tiny_pipeline / "reports/train/run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.steps"] == str(STEPS) and run.data.params["evaluate.num_samples"] == str(SAMPLES)
    assert run.data.tags["data.sha256"] == json.loads((tiny_pipeline / "data/prepared/meta.json").read_text())["sha256"]
    assert [m.step for m in client.get_metric_history(run_id, "loss_d")] == list(range(1, STEPS + 1))
    assert f"eval/fid_domain_{SAMPLES}" in run.data.metrics
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"mnist5k-train", "mnist5k-test"}
    assert {a.path for a in client.list_artifacts(run_id, "samples")} >= {"samples/step_000000.png",
                                                                          f"samples/step_{STEPS:06d}.png"}
    assert "curves.png" in {a.path for a in client.list_artifacts(run_id)}
    assert "generate/neighbours.png" in {a.path for a in client.list_artifacts(run_id, "generate")}
    assert f"eval/copying_ct_domain_{SAMPLES}" in run.data.metrics
    versions = [v for v in client.search_model_versions("name = 'gan-mnist5k-dcgan'") if v.run_id == run_id]
    assert len(versions) == 1 and versions[0].tags["primary_metric"] == f"fid_domain_{SAMPLES}"


def test_gan_sample_draws_the_same_samples_from_the_run_the_registry_and_the_file(tiny_pipeline, tmp_path):
    from mlflow.tracking import MlflowClient

    from gan import tracking

    run_id = json.loads((tiny_pipeline / "reports/train/run.json").read_text())["run_id"]
    (version,) = [v.version for v in MlflowClient(tracking.tracking_uri()).search_model_versions(
        "name = 'gan-mnist5k-dcgan'") if v.run_id == run_id]  # the session's store holds other tests' runs too
    drawn = []
    for i, uri in enumerate((f"models:/gan-mnist5k-dcgan/{version}", f"runs:/{run_id}",
                             str(tiny_pipeline / "models/generator.pt"))):
        result = run_gan("sample", "--model", uri, "-n", "6", "--seed", "3", "-o", str(tmp_path / f"{i}.npz"))
        assert result.returncode == 0, result.stderr
        drawn.append(np.load(tmp_path / f"{i}.npz")["x"])
    assert drawn[0].shape == (6, 28, 28, 1) and all(np.array_equal(drawn[0], other) for other in drawn[1:])
    walk = run_gan("interpolate", "--model", str(tiny_pipeline / "models/generator.pt"), "--rows", "2",
                   "--steps", "4", "-o", str(tmp_path / "walk.png"))  # generate's params in TINY, seed 0
    assert walk.returncode == 0, walk.stderr
    assert (tmp_path / "walk.png").read_bytes() == (tiny_pipeline / "reports/generate/interpolation.png").read_bytes()
    wrong = run_gan("sample", "--model", "models:/gan-mnist5k-dcgan@champion", "-o", str(tmp_path / "x.png"))
    assert wrong.returncode == 2 and "has no alias @champion; its aliases: @best" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_the_best_alias_moves_to_the_lowest_score_on_the_same_data_and_key(tiny_pipeline):
    from gan import tracking

    run_id = json.loads((tiny_pipeline / "reports/train/run.json").read_text())["run_id"]
    name, key, data = "gan-alias-test", "fid_domain_300", {"data.sha256": "a" * 64}

    def register(score: float, tags: dict, primary: str = key) -> str:
        return tracking.register_generator(run_id, name, primary, {primary: score}, tags)

    assert "@best is version 1" in register(50.0, data)
    assert "@best is version 2" in register(40.0, data)
    assert "@best is version 2" in register(45.0, data)
    assert "@best stays version 2" in register(10.0, {"data.sha256": "b" * 64})  # other data: not comparable
    assert "@best stays version 2" in register(1.0, data, primary="fid_domain_1k")  # another protocol: neither
    assert "@best is version 6" in register(30.0, data)


@pytest.mark.parametrize("source, copies", [("train", True), ("test", False)])
def test_the_data_copying_test_flags_a_generator_that_returns_training_images_and_not_one_that_returns_held_out_ones(
        tiny_pipeline, source, copies):
    """The evaluator's features and evaluate's copying_domain metric, on 'samples' that are real images."""
    from gan.data import load_prepared
    from gan.evaluator import load_evaluator
    from gan.metrics.families import compute

    prepared = load_prepared(tiny_pipeline / "data/prepared")
    evaluator = load_evaluator(tiny_pipeline / "models/evaluator.pt")
    images = {"train": prepared.train_x, "test": prepared.test_x}[source]
    samples = images[np.random.default_rng(0).choice(len(images), 600, replace=False)]
    ct = compute("copying_domain", evaluator.view(samples, batch_size=200), seed=0)["copying_ct"]
    assert (ct < -3) is copies and (abs(ct) < 3 or copies), ct


def test_generate_draws_each_sample_beside_its_nearest_training_images(tiny_pipeline):
    from PIL import Image

    figure = Image.open(tiny_pipeline / "reports/generate/neighbours.png")
    assert figure.format == "PNG" and figure.size[1] > 400  # 8 rows of a sample and its 3 neighbours
