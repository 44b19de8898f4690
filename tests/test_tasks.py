"""The paired tasks (translation, inpainting, super-resolution) through the same stages as generation.

Each tiny pipeline runs every stage script in a fresh folder on mnist5k: prepare derives the sources,
train fits U-Net/SRResNet against a PatchGAN, generate writes the outputs on the held-out sources and the
triptychs, evaluate scores them beside the baseline and registers gan-<data>-<task>-<arch>. The tests
read what a user reads: metrics.json, the figures, the registry, and `gan apply`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import ROOT, TINY, assert_refused, dvc_stage_args, run_gan, run_pipeline, run_stage, write_params
from gan.config import parse_params
from gan.data import load_prepared
from gan.errors import UserError
from gan.metrics.restoration import to_y

STAGES = ("prepare", "features", "reference", "train", "generate", "evaluate")
TASK_TRAIN = {"steps": 150, "batch_size": 32, "lr_g": 0.001, "lr_d": 0.0002, "sample_every": 75,
              "checkpoint_every": 75, "log_every": 25, "eval_every": 150, "eval_samples": 200}
PIPELINES = {
    "edges": {"task": {"name": "translation", "source": "edges"}, "model": {"arch": "unet", "width": 16}},
    "mask": {"task": {"name": "translation", "source": "mask", "mask": "centre"},
             "model": {"arch": "unet", "width": 16}},
    "sr4": {"task": {"name": "super_resolution", "scale": 4, "content_weight": 1.0, "adversarial_weight": 0.005},
            "model": {"arch": "srresnet", "width": 16, "blocks": 2}},
}
REGISTERED = {"edges": "gan-mnist5k-translation-edges-unet", "mask": "gan-mnist5k-translation-mask-unet",
              "sr4": "gan-mnist5k-super_resolution-x4-srresnet"}
# the score each task must improve over its no-learning baseline, and that baseline's key
BEATS = {"edges": ("psnr_y_pooled", "psnr_y_pooled_source"), "mask": ("psnr_y_pooled_hole", "psnr_y_pooled_hole_source"),
         "sr4": ("psnr_y_crop4", "psnr_y_crop4_bicubic")}


@pytest.fixture(scope="session", params=sorted(PIPELINES))
def paired(request, tmp_path_factory):
    name = request.param
    params = {**TINY, **PIPELINES[name], "train": TASK_TRAIN}
    params["model"] = {**TINY["model"], **PIPELINES[name]["model"]}
    return name, run_pipeline(tmp_path_factory.mktemp(f"task-{name}"), params, STAGES)


def _metrics(root):
    return json.loads((root / "reports" / "metrics.json").read_text())


def test_each_task_beats_its_own_baseline_on_the_held_out_pairs(paired):
    name, root = paired
    metrics = _metrics(root)
    score, baseline = BEATS[name]
    assert metrics[score] > metrics[baseline] + 1.0, (score, metrics[score], baseline, metrics[baseline])
    # and the distribution scores stand beside the baseline's and the real targets' floor
    fid = next(k for k in metrics if k.startswith("fid_domain_") and k.count("_") == 2)
    assert metrics[f"{fid}_real"] < metrics[fid]
    assert {f"{fid}_source", f"{fid}_bicubic"} & set(metrics)


def test_psnr_and_ssim_agree_with_scikit_image(paired):
    """On Y: super-resolution's per-image PSNR and SSIM with `scale` border pixels cropped, averaged (BasicSR);
    translation's PSNR of the error pooled over the set (and inside the holes), SSIM per image uncropped."""
    name, root = paired
    metrics = _metrics(root)
    pairs = TINY["evaluate"]["num_samples"]  # evaluate scores the first evaluate.num_samples held-out pairs
    outputs = np.load(root / "data" / "generated" / "samples.npz")["x"][:pairs]
    targets = load_prepared(root / "data" / "prepared").test_x[:pairs]
    crop = 4 if name == "sr4" else 0
    inner = slice(crop, -crop or None)
    a, b = to_y(outputs)[:, inner, inner], to_y(targets)[:, inner, inner]
    ssim = np.mean([structural_similarity(o, t, data_range=255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False) for o, t in zip(a, b)])
    assert metrics[f"ssim_y_crop{crop}"] == pytest.approx(ssim, abs=2e-3)
    if name == "sr4":
        psnr = np.mean([peak_signal_noise_ratio(t, o, data_range=255) for o, t in zip(a, b)])
        assert metrics["psnr_y_crop4"] == pytest.approx(psnr, rel=1e-4)
        return
    assert metrics["psnr_y_pooled"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), rel=1e-4)
    if name == "mask":
        hole = load_prepared(root / "data" / "prepared").test_source[:pairs, ..., 1] > 127
        assert metrics["psnr_y_pooled_hole"] == pytest.approx(
            peak_signal_noise_ratio(b[hole], a[hole], data_range=255), rel=1e-4)


def test_gan_apply_gives_generate_s_outputs_for_the_same_inputs(paired, tmp_path):
    """Weights only, from the registry: the held-out sources as an .npz, and one of them as a PNG."""
    name, root = paired
    uri = f"models:/{REGISTERED[name]}@best"
    result = run_gan("apply", "--model", uri, "-i", str(root / "data/prepared/test.npz"), "-o", str(tmp_path / "o.npz"))
    assert result.returncode == 0, result.stderr
    generated = np.load(root / "data" / "generated" / "samples.npz")["x"]
    assert np.array_equal(np.load(tmp_path / "o.npz")["x"], generated)
    source = load_prepared(root / "data" / "prepared").test_source[5]
    if name == "mask":  # a PNG with the hole transparent
        rgba = np.dstack([source[..., 0]] * 3 + [np.where(source[..., 1] > 127, 0, 255)]).astype(np.uint8)
        Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    else:
        Image.fromarray(source[..., 0]).save(tmp_path / "in.png")
    result = run_gan("apply", "--model", uri, "-i", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), generated[5, ..., 0])


def test_the_run_holds_the_task_s_loss_terms_figures_and_registered_version(paired):
    name, root = paired
    header = (root / "reports" / "train" / "history.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["step", "loss_d", "loss_g", "d_real", "d_fake", "loss_adversarial", "loss_content"]
    figures = {p.name for p in (root / "reports" / "generate").glob("*.png")}
    assert figures == ({"triptych.png", "zoom.png"} if name == "sr4" else {"triptych.png"})
    assert Image.open(root / "reports" / "generate" / "triptych.png").size[1] > 3 * 28  # 8 rows of pairs
    run_id = json.loads((root / "reports" / "train" / "run.json").read_text())["run_id"]
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{REGISTERED[name]}'")
    assert run_id in {v.run_id for v in versions}
    artifacts = {a.path for a in client.list_artifacts(run_id, "generate")}
    assert "generate/triptych.png" in artifacts
    protocol = json.loads((root / "reports" / "evaluate" / "protocol.json").read_text())
    assert protocol["task"]["name"] == PIPELINES[name]["task"]["name"] and protocol["task"]["pairs"] == TINY["evaluate"]["num_samples"]


def test_the_prepared_sources_are_hashed_with_the_targets(tmp_path):
    write_params(tmp_path, {**PIPELINES["edges"], "model": {"arch": "unet"}})
    assert run_stage("prepare", tmp_path, *dvc_stage_args("prepare")).returncode == 0
    prepared = load_prepared(tmp_path / "data" / "prepared")
    assert prepared.test_source.shape == (1000, 28, 28, 1) and set(np.unique(prepared.test_source)) == {0, 255}
    assert prepared.meta["task"]["source"] == "edges" and prepared.meta["source_shape"] == [28, 28, 1]
    with np.load(tmp_path / "data/prepared/test.npz") as saved:
        arrays = dict(saved)
    arrays["source"][0, 0, 0, 0] ^= 255  # one pixel of one source
    np.savez(tmp_path / "data/prepared/test.npz", **arrays)
    with pytest.raises(UserError, match="do not match meta.json"):
        load_prepared(tmp_path / "data" / "prepared")


@pytest.mark.parametrize("overrides, says", [
    ({"task": {"name": "translation"}}, "model.arch=dcgan is a generation architecture, but task.name=translation; "
                                        "set model.arch: unet"),
    ({"model": {"arch": "unet"}}, "model.arch=unet is a translation architecture, but task.name=generation"),
    ({"task": {"scale": 2}}, "task.scale applies to task.name=super_resolution, not generation"),
    ({"task": {"name": "super_resolution", "scale": 4}, "model": {"arch": "srresnet"}, "data": {"image_size": 30}},
     "data.image_size (30) must be divisible by task.scale (4)"),
    ({"task": {"name": "translation"}, "model": {"arch": "unet", "conditional": True}},
     "model.conditional=true is not implemented for task.name=translation; set model.conditional: false"),
    ({"task": {"name": "translation"}, "model": {"arch": "unet"}, "train": {"augment": ["color"]}},
     "train.augment=[color] is not implemented for task.name=translation"),
    ({"task": {"name": "translation", "content_weight": 0, "adversarial_weight": 0}, "model": {"arch": "unet"}},
     "all 0"),
    ({"task": {"name": "translation"}, "model": {"arch": "unet", "patch": 50}}, "model.patch must be"),
    ({"task": {"name": "translation", "hole": 0.25}, "model": {"arch": "unet"}},
     "task.hole applies to task.source=mask, not edges; remove it"),
    ({"task": {"name": "translation", "source": "mask", "hole": 0}, "model": {"arch": "unet"}}, "task.hole must be"),
])
def test_task_params_are_checked_before_any_work(overrides, says):
    assert_refused(overrides, says)


def test_every_catalog_task_has_a_task_and_an_architecture():
    from gan import catalog
    from gan.tasks import make_task

    meta = {"shape": [28, 28, 1], "source_shape": [7, 7, 1], "text": {"vocabulary": [29955], "max_len": 16}}
    for name in catalog.TASKS:
        arch = next(a for a, spec in catalog.ARCHITECTURES.items() if spec.task == name or (name == "text" and spec.text))
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["task"]["name"], params["model"]["arch"] = name, arch
        assert make_task(parse_params(params), meta).name == name


RESUME = {"task": {"name": "super_resolution", "scale": 4, "content_weight": 1.0, "adversarial_weight": 0.005},
          "model": {"arch": "srresnet", "width": 8, "blocks": 1},
          "features": {"epochs": 1},
          "train": {"steps": 120, "batch_size": 16, "checkpoint_every": 30, "sample_every": 60, "log_every": 10,
                    "eval_every": 60, "eval_samples": 100}}


@pytest.mark.system
def test_a_killed_paired_run_resumes_and_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    """The paired task's batches (targets and sources by one index draw), its loss terms and its progress
    triptychs go through the same checkpoint and resume as generation."""
    import torch

    from conftest import crash_and_resume

    straight, crashed, _, _ = crash_and_resume(tmp_path, RESUME)
    a, b = (torch.load(d / "models/generator.pt", weights_only=True)["state_dict"] for d in (straight, crashed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    for report in ("history.tsv", "eval.tsv"):
        assert (straight / "reports/train" / report).read_text() == (crashed / "reports/train" / report).read_text()
    assert (straight / "reports/train/samples/step_000120.png").read_bytes() == \
        (crashed / "reports/train/samples/step_000120.png").read_bytes()


@pytest.mark.parametrize("arch, task", [("unet", {"name": "translation", "source": "mask", "mask": "centre"}),
                                        ("srresnet", {"name": "super_resolution", "scale": 2})])
def test_a_paired_step_runs_in_bf16_with_channels_last_on_the_cpu(arch, task):
    """The CUDA fast path (bf16 autocast, channels_last) on the paired models, run where CI can: the CPU."""
    import torch

    from gan import pairs
    from gan.state import Batches
    from gan.tasks import make_task
    from gan.training import build_state
    from gan.updates import make_plan, train_step

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"].update(task)
    params["model"].update(arch=arch, width=8, **({"blocks": 1} if arch == "srresnet" else {}))
    params["train"].update(precision="bf16", batch_size=8)
    cfg = parse_params(params)
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
    sources = (pairs.masked(images, "centre", np.random.default_rng(0)) if arch == "unet"
               else pairs.downsample(images, 2))
    meta = {"shape": [28, 28, 1], "source_shape": list(sources.shape[1:])}
    cpu = torch.device("cpu")
    task_ = make_task(cfg, meta)
    state = build_state(cfg, (28, 28, 1), cpu, 0, task=task_, fixed_inputs=torch.zeros(4, sources.shape[3], 7, 7))
    plan = make_plan(cfg, 0, None, cpu, task=task_)
    assert plan.precision == "bf16" and plan.channels_last
    before = [p.detach().clone() for p in state.generator.parameters()]
    stats = train_step(state, plan, Batches(images, "images", cpu, state.index_rng, source=sources))
    assert set(stats) == set(task_.columns) and all(torch.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, state.generator.parameters()))


def test_the_feature_matching_term_joins_g_s_loss_with_its_weight():
    """task.feature_weight: L1 between D's activations for the output and the target, reported and added."""
    import torch

    from gan.state import Batches
    from gan.tasks import make_task
    from gan.training import build_state
    from gan.updates import make_plan, train_step

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"].update(name="super_resolution", scale=2, content_weight=1.0, adversarial_weight=0.01,
                          feature_weight=0.5)
    params["model"].update(arch="srresnet", width=8, blocks=1)
    params["train"].update(batch_size=8)
    cfg = parse_params(params)
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
    from gan import pairs

    sources = pairs.downsample(images, 2)
    cpu = torch.device("cpu")
    task = make_task(cfg, {"shape": [28, 28, 1], "source_shape": [14, 14, 1]})
    assert task.columns[-1] == "loss_features"
    state = build_state(cfg, (28, 28, 1), cpu, 0, task=task, fixed_inputs=torch.zeros(4, 1, 14, 14))
    stats = train_step(state, make_plan(cfg, 0, None, cpu, task=task),
                       Batches(images, "images", cpu, state.index_rng, source=sources))
    assert stats["loss_features"] > 0
    total = 0.01 * stats["loss_adversarial"] + 1.0 * stats["loss_content"] + 0.5 * stats["loss_features"]
    assert torch.isclose(stats["loss_g"], total, rtol=1e-5)
