"""The evaluate stage: every number carries its protocol, repeats reseed, Inception is optional."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.config import parse_params
from gan.data.datasets import prepare
from gan.errors import UserError
from gan.evaluation import EvaluatePaths, evaluate, recipe_hint
from gan.evaluator import load_evaluator
from gan.features import build_evaluator
from gan.generation import GeneratePaths, generate
from gan.metrics.inception import WEIGHTS_FILE, WEIGHTS_URL
from gan.metrics.registry import METRICS, result_key
from gan.reference import build_reference
from gan.training import TrainPaths, train

SMALL = {
    "data": {"test_fraction": 0.01},  # 50 held-out digits, 5 a class: fast, and enough for class statistics
    "model": {"width": 8, "latent_dim": 8},
    "train": {"steps": 10, "batch_size": 16, "sample_every": 10, "checkpoint_every": 10, "eval_every": 5,
              "eval_samples": 100},
    "features": {"epochs": 1},
    "generate": {"num_samples": 200, "grid_rows": 2, "interpolation_rows": 1, "interpolation_steps": 2},
    "evaluate": {"num_samples": 200},
}


def config(**evaluate):
    return parse_params({**SMALL, "evaluate": {**SMALL["evaluate"], **evaluate}})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """prepare, features, train and generate once, by their library calls, in a temp dir."""
    root = tmp_path_factory.mktemp("pipeline")
    cfg = config()
    prepare(cfg, root / "prepared")
    build_evaluator(cfg, root / "prepared", root / "evaluator.pt", root / "features.json")
    train(cfg, TrainPaths(root / "prepared", root / "generator.pt", root / "checkpoints", root / "train",
                          root / "evaluator.pt"))
    generate(cfg, GeneratePaths(root / "generator.pt", root / "prepared", root / "train" / "run.json",
                                root / "generated", root / "figures", root / "evaluator.pt"))
    return root


def run_evaluate(root: Path, cfg, tag: str) -> tuple[dict, dict]:
    build_reference(cfg, root / "prepared", root / f"reference-{tag}.pt")
    paths = EvaluatePaths(root / "generated" / "samples.npz", root / "generator.pt", root / "prepared",
                          root / "evaluator.pt", root / f"reference-{tag}.pt", root / "train" / "run.json",
                          root / f"metrics-{tag}.json", root / f"details-{tag}")
    metrics = evaluate(cfg, paths)
    assert json.loads(paths.metrics.read_text()) == metrics
    return metrics, json.loads((paths.details / "protocol.json").read_text())


def test_every_default_metric_reports_under_a_name_with_its_extractor_and_sample_count(pipeline):
    metrics, protocol = run_evaluate(pipeline, config(), "default")
    assert set(metrics) == {
        "fid_domain_200", "kid_domain_200", "kid_domain_200_std", "precision_domain_200", "recall_domain_200",
        "density_domain_200", "coverage_domain_200", "is_domain_200", "is_domain_200_std",
        "fid_per_class_mean_domain_200", "fid_per_class_max_domain_200", "fid_per_class_missing_domain_200",
        "classes_covered_domain_200", "class_kl_domain_200", "copying_ct_domain_200", "copying_cells_domain_200"}
    assert 0 <= metrics["precision_domain_200"] <= 1 and 1 <= metrics["is_domain_200"] <= 10
    entry = protocol["metrics"]["kid_domain"]
    assert entry["generated_samples"] == 200 and entry["reference_samples"] == 50 and entry["seeds"] == "0..0"
    assert entry["resize"] == "none (28px)" and len(entry["extractor_sha256"]) == 64
    assert "modes" in protocol["skipped"]
    per_class = json.loads((pipeline / "details-default" / "per_class.json").read_text())
    assert per_class and all(k.startswith("fid_class") for k in per_class)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # pytorch-fid 0.3.0
def test_an_untrusted_evaluator_s_numbers_leave_metrics_json_for_untrusted_json_and_are_not_registered(
        pipeline, tmp_path, capsys):
    """A classifier at chance (a learning rate of 1e-12 leaves it at its random start), insisted on by
    features.extractor: classifier: its domain numbers are not presented as scores."""
    cfg = parse_params({**SMALL, "features": {"extractor": "classifier", "epochs": 1, "lr": 1e-12}})
    build_evaluator(cfg, pipeline / "prepared", tmp_path / "evaluator.pt", tmp_path / "features.json")
    assert json.loads((tmp_path / "features.json").read_text())["domain_metrics_trusted"] == 0
    paths = EvaluatePaths(pipeline / "generated" / "samples.npz", pipeline / "generator.pt", pipeline / "prepared",
                          tmp_path / "evaluator.pt", pipeline / "reference-default.pt", pipeline / "train" / "run.json",
                          tmp_path / "metrics.json", tmp_path / "details")
    build_reference(cfg, pipeline / "prepared", paths.reference)
    capsys.readouterr()
    metrics = evaluate(cfg, paths)
    said = capsys.readouterr().out
    assert metrics == {"domain_metrics_trusted": 0} == json.loads(paths.metrics.read_text())
    untrusted = json.loads((paths.details / "untrusted.json").read_text())
    assert "no better than chance" in untrusted["why"] and "fid_domain_200" in untrusted["metrics"]
    assert "evaluate: warning: the domain metrics (fid_domain_200," in said, said
    assert "not registered in gan-mnist5k-dcgan: the domain metrics are not scores" in said, said
    protocol = json.loads((paths.details / "protocol.json").read_text())
    assert protocol["evaluator"]["trusted"] is False and protocol["evaluator"]["kind"] == "classifier"


def test_evaluate_scores_what_the_reference_packages_score_on_the_evaluators_features(pipeline, tmp_path):
    """Real training digits stand in for generated samples, so that no score is 0 or degenerate and a
    swap of real and fake shows. Expected: FID by pytorch-fid, P/R/D/C by the prdc package, IS by
    torch-fidelity, classes covered by counting, on the evaluator's features of those digits against
    its features of the held-out split."""
    from prdc import compute_prdc
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_isc import isc_features_to_metric

    with np.load(pipeline / "prepared" / "train.npz") as prepared:
        digits = prepared["x"][:200]
    np.savez(tmp_path / "samples.npz", x=digits)
    cfg = config(metrics=["fid_domain", "pr_domain", "dc_domain", "is_domain", "classes_domain"])
    build_reference(cfg, pipeline / "prepared", tmp_path / "reference.pt")
    metrics = evaluate(cfg, EvaluatePaths(tmp_path / "samples.npz", pipeline / "generator.pt", pipeline / "prepared",
                                          pipeline / "evaluator.pt", tmp_path / "reference.pt",
                                          pipeline / "train" / "run.json", tmp_path / "metrics.json", tmp_path / "d"))

    evaluator = load_evaluator(pipeline / "evaluator.pt")
    fake, logits = evaluator.embed(digits, batch_size=64)  # (200, 128), (200, 10)
    real = evaluator.ref_features  # (50, 128)
    pr, dc = compute_prdc(real, fake, nearest_k=3), compute_prdc(real, fake, nearest_k=5)
    counts = np.bincount(logits.argmax(1), minlength=10)
    expected = {
        "fid_domain_200": calculate_frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), evaluator.ref_mu,
                                                     evaluator.ref_sigma),
        "precision_domain_200": pr["precision"], "recall_domain_200": pr["recall"],
        "density_domain_200": dc["density"], "coverage_domain_200": dc["coverage"],
        "is_domain_200": isc_features_to_metric(torch.from_numpy(logits.astype(np.float64)), splits=10,
                                                shuffle=False)["inception_score_mean"],
        "classes_covered_domain_200": float((counts >= 0.25 * 200 / 10).sum()),
    }
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(float(value), rel=1e-5), key  # metrics.json keeps 6 digits
    assert metrics["precision_domain_200"] != metrics["recall_domain_200"]  # so that swapped sets would show


def test_repeats_resample_with_new_seeds_and_report_mean_and_std(pipeline):
    single, _ = run_evaluate(pipeline, config(metrics=["fid_domain"]), "once")
    repeated, protocol = run_evaluate(pipeline, config(metrics=["fid_domain"], repeats=3), "thrice")
    assert set(repeated) == {"fid_domain_200", "fid_domain_200_repeats_std"}
    assert repeated["fid_domain_200_repeats_std"] > 0  # the three sample sets differ
    assert repeated["fid_domain_200"] != single["fid_domain_200"]
    assert protocol["metrics"]["fid_domain"]["seeds"] == "0..2"


def test_missing_inception_weights_skip_inception_metrics_with_the_fix_and_domain_metrics_still_run(
        pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    metrics, protocol = run_evaluate(pipeline, config(metrics=["fid_domain", "fid_inception"]), "noweights")
    assert set(metrics) == {"fid_domain_200"}
    reason = protocol["skipped"]["fid_inception"]
    assert WEIGHTS_URL in reason and str(tmp_path / "empty-torch-home" / "hub" / "checkpoints" / WEIGHTS_FILE) in reason
    assert "evaluate.inception_weights" in reason


def test_inception_metrics_use_the_shared_reference_and_record_the_weights_hash(pipeline, tmp_path):
    from test_inception import random_inception_weights

    weights = tmp_path / WEIGHTS_FILE
    torch.save(random_inception_weights(0), weights)
    cfg = config(metrics=["fid_inception", "kid_inception", "is_inception"], num_samples=40,
                 inception_weights=str(weights), batch_size=20)
    metrics, protocol = run_evaluate(pipeline, cfg, "inception")
    assert metrics["fid_inception_40"] > 0 and "kid_inception_40" in metrics and metrics["is_inception_40"] >= 1
    entry = protocol["metrics"]["fid_inception"]
    from gan.checkpoint import file_sha256

    assert entry["extractor_sha256"] == file_sha256(weights) and entry["reference_samples"] == 50
    assert entry["resize"].startswith("28px bilinear to 299px")


def test_inception_weights_changed_after_the_reference_are_refused(pipeline, tmp_path):
    from test_inception import random_inception_weights

    weights = tmp_path / WEIGHTS_FILE
    torch.save(random_inception_weights(1), weights)
    cfg = config(metrics=["fid_inception"], num_samples=10, inception_weights=str(weights), batch_size=10)
    build_reference(config(metrics=["fid_domain"]), pipeline / "prepared", pipeline / "reference-x.pt")
    ref = torch.load(pipeline / "reference-x.pt", weights_only=True)
    assert ref["status"] == "not_requested"
    build_reference(cfg, pipeline / "prepared", pipeline / "reference-y.pt")
    torch.save(random_inception_weights(2), weights)  # the file changes after the reference was taken
    paths = EvaluatePaths(pipeline / "generated" / "samples.npz", pipeline / "generator.pt", pipeline / "prepared",
                          pipeline / "evaluator.pt", pipeline / "reference-y.pt", pipeline / "train" / "run.json",
                          tmp_path / "m.json", tmp_path / "d")
    with pytest.raises(UserError, match="differ from those of the reference statistics"):
        evaluate(cfg, paths)


def test_an_unknown_metric_name_is_refused_with_the_known_names():
    with pytest.raises(UserError) as info:
        parse_params({"evaluate": {"metrics": ["fid_domain", "fid_imagenet"]}})
    message = str(info.value)
    assert "evaluate.metrics[1] must be one of" in message and "'fid_imagenet'" in message
    assert all(name in message for name in METRICS)


def test_result_keys_state_extractor_and_count():
    assert result_key("fid_domain", "fid", 5000) == "fid_domain_5k"
    assert result_key("kid_inception", "kid_std", 10000) == "kid_inception_10k_std"
    assert result_key("pr_domain", "precision", 2500) == "precision_domain_2500"
    assert result_key("modes", "reverse_kl", 5000) == "reverse_kl_5k"


def test_a_conditional_generator_writes_one_row_per_class_and_is_scored_for_class_agreement(pipeline, tmp_path):
    from PIL import Image

    cfg = parse_params({**SMALL, "model": {**SMALL["model"], "conditional": True},
                        "generate": {**SMALL["generate"], "grid_rows": 3},
                        "evaluate": {**SMALL["evaluate"], "metrics": ["agreement_domain", "fid_domain"]}})
    root = tmp_path
    train(cfg, TrainPaths(pipeline / "prepared", root / "generator.pt", root / "checkpoints", root / "train",
                          pipeline / "evaluator.pt"))
    generate(cfg, GeneratePaths(root / "generator.pt", pipeline / "prepared", root / "train" / "run.json",
                                root / "generated", root / "figures", pipeline / "evaluator.pt"))
    with np.load(root / "generated" / "samples.npz") as saved:
        assert saved["y"].tolist() == [i % 10 for i in range(200)]
    grid = Image.open(root / "figures" / "grid.png")
    assert grid.size == (2 + 3 * 30, 2 + 10 * 30)  # 3 columns, 10 rows (one per class), 28 px + 2 px padding
    build_reference(cfg, pipeline / "prepared", root / "reference.pt")
    metrics = evaluate(cfg, EvaluatePaths(root / "generated" / "samples.npz", root / "generator.pt",
                                          pipeline / "prepared", pipeline / "evaluator.pt", root / "reference.pt",
                                          root / "train" / "run.json", root / "metrics.json", root / "details"))
    evaluator = load_evaluator(pipeline / "evaluator.pt")
    with np.load(root / "generated" / "samples.npz") as saved:
        _, logits = evaluator.embed(saved["x"], batch_size=100)
        asked = saved["y"]
    assert metrics["class_agreement_domain_200"] == pytest.approx(float(np.mean(logits.argmax(1) == asked)), rel=1e-5)
    assert "fid_domain_200" in metrics


def test_class_agreement_is_skipped_for_an_unconditional_generator(pipeline):
    _, protocol = run_evaluate(pipeline, config(metrics=["fid_domain", "agreement_domain"]), "agree")
    assert "unconditional" in protocol["skipped"]["agreement_domain"]


@pytest.mark.parametrize(("captured", "quality", "hinted"),
                         [(25, 100.0, False), (24, 100.0, True), (25, 91.1, False), (25, 80.0, True)])
def test_a_poor_2d_result_points_at_the_datas_recipe(tmp_path, captured, quality, hinted):
    (tmp_path / "grid25.yaml").write_text("data:\n  name: grid25\n")
    cfg = parse_params({"data": {"name": "grid25"}, "model": {"arch": "mlp"}})
    meta = {"modes": [[0.0, 0.0]] * 25}
    metrics = {"modes_captured_5k": float(captured), "high_quality_pct_5k": quality, "reverse_kl_5k": 0.1}
    hint = recipe_hint(cfg, meta, metrics, recipes=tmp_path)
    if not hinted:
        assert hint is None
    else:
        assert hint.startswith(f"evaluate: note: {captured} of 25 modes, {quality:.1f}% high quality")
        assert "`gan recipe run grid25`" in hint and "100%" not in hint  # the recipe scores 91-97% on grid25


def test_no_recipe_hint_without_a_recipe_for_the_data_or_for_images(tmp_path):
    metrics = {"modes_captured_5k": 1.0, "high_quality_pct_5k": 1.0}
    cfg = parse_params({"data": {"name": "ring8"}, "model": {"arch": "mlp"}})
    assert recipe_hint(cfg, {"modes": [[0.0, 0.0]] * 8}, metrics, recipes=tmp_path) is None
    assert recipe_hint(parse_params({}), {}, {"fid_domain_5k": 300.0}, recipes=Path("recipes")) is None
