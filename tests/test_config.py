"""params.yaml errors stop a stage before any work, with one line naming the key, the rule and the value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_stage
from gan.config import Config, load_params, parse_params
from gan.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def error_of(raw) -> str:
    with pytest.raises(UserError) as info:
        parse_params(raw)
    return str(info.value)


def test_defaults_are_typed_and_frozen():
    cfg = parse_params({})
    assert cfg == Config()
    assert cfg.train.betas_g == (0.5, 0.999)
    with pytest.raises(AttributeError):
        cfg.train.lr_g = 1.0  # type: ignore[misc]


def test_the_shipped_params_yaml_holds_exactly_the_defaults():
    # the dataclass defaults are the documented ones; an option key that an architecture does not read
    # is refused only when it differs from its default, so the two must agree
    assert load_params(Path(__file__).resolve().parents[1] / "params.yaml") == Config()


def test_values_are_read_into_their_sections():
    cfg = parse_params({"seed": 3, "train": {"lr_g": 1, "betas_d": [0.0, 0.9]}, "data": {"name": "ring8"},
                        "model": {"arch": "mlp"}})
    assert cfg.seed == 3 and cfg.train.lr_g == 1.0 and isinstance(cfg.train.lr_g, float)
    assert cfg.train.betas_d == (0.0, 0.9)
    assert cfg.data.name == "ring8" and cfg.model.arch == "mlp"


def test_unknown_key_names_its_full_path_and_suggests_the_near_one():
    message = error_of({"train": {"lr_gg": 0.1}})
    assert "unknown key train.lr_gg" in message and "did you mean 'lr_g'" in message


def test_unknown_section_is_refused():
    assert "unknown key trainer" in error_of({"trainer": {}})


def test_out_of_range_value_names_key_rule_and_value():
    assert error_of({"train": {"lr_d": -1}}) == "params.yaml: train.lr_d must be > 0, got -1"


def test_wrong_type_names_key_and_expected_type():
    assert "train.steps must be an integer, got '100'" in error_of({"train": {"steps": "100"}})
    assert "train.lr_g must be a number, got True" in error_of({"train": {"lr_g": True}})
    assert "data.download must be true or false" in error_of({"data": {"download": "yes"}})
    assert "train.betas_g must be a list" in error_of({"train": {"betas_g": 0.5}})
    assert "train.betas_g must be two numbers in [0, 1)" in error_of({"train": {"betas_g": [0.5, 1.5]}})


def test_unknown_registry_name_lists_the_allowed_names():
    message = error_of({"train": {"loss": "hingee"}})
    assert "train.loss must be one of" in message and "nonsaturating" in message and "'hingee'" in message
    assert "data.name must be one of" in error_of({"data": {"name": "imagenet"}})
    assert "model.arch must be one of" in error_of({"model": {"arch": "vit"}})


def test_cross_key_rules_name_both_keys():
    assert "model.arch=dcgan needs images data" in error_of({"data": {"name": "grid25"}})
    assert "data.image_size must be one of 28, 32, 64" in error_of({"data": {"image_size": 30}})
    message = error_of({"generate": {"num_samples": 100}, "evaluate": {"num_samples": 200}})
    assert "evaluate.num_samples (200) must be <= generate.num_samples (100)" in message


def test_bad_yaml_and_missing_file_are_user_errors(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(UserError, match="no such params file"):
        load_params(tmp_path / "absent.yaml")


def test_a_stage_given_bad_params_exits_2_with_one_line_and_writes_nothing(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["lr_d"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage("prepare", tmp_path, "--out", "prepared")
    assert result.returncode == 2
    assert result.stderr.strip() == "prepare: error: params.yaml: train.lr_d must be > 0, got -1"
    assert not (tmp_path / "prepared").exists()


def test_augment_policy_is_a_list_of_known_transformations_for_images_only():
    assert parse_params({"train": {"augment": ["color", "cutout"]}}).train.augment == ("color", "cutout")
    assert "train.augment[1] must be one of color, translation, cutout; got 'blur'" in error_of(
        {"train": {"augment": ["color", "blur"]}})
    assert "works on images" in error_of({"data": {"name": "ring8"}, "model": {"arch": "mlp"},
                                          "train": {"augment": ["color"]}})
    assert "train.batch_size (64) must be a multiple of train.pack (3)" in error_of({"train": {"pack": 3}})
    assert "does not combine with model.conditional" in error_of({"train": {"pack": 2},
                                                                 "model": {"conditional": True}})
    assert "train.augment must be a list without repeats" in error_of({"train": {"augment": ["color", "color"]}})



def test_the_mmd_term_needs_its_kernel_widths_and_the_generation_task():
    points = {"data": {"name": "grid25"}, "model": {"arch": "mlp"}}
    cfg = parse_params({**points, "train": {"mmd_weight": 1.0, "mmd_bandwidths": [0.05, 0.1]}})
    assert cfg.train.mmd_bandwidths == (0.05, 0.1)
    assert "train.mmd_weight=1.0 needs task.name: generation and a list of kernel widths" in error_of(
        {**points, "train": {"mmd_weight": 1.0}})
    assert "task.name=translation" in error_of({"task": {"name": "translation"}, "model": {"arch": "unet"},
                                                "train": {"mmd_weight": 1.0, "mmd_bandwidths": [1.0]}})
    assert "train.mmd_bandwidths must be a list of numbers > 0, got [0.1, 0]" in error_of(
        {**points, "train": {"mmd_bandwidths": [0.1, 0]}})

def test_a_gradient_penalty_with_a_batch_norm_discriminator_names_both_keys():
    message = error_of({"train": {"loss": "wasserstein"}})
    assert "train.loss=wasserstein" in message and "model.arch=dcgan" in message
    assert "model.spectral_norm: true" in message
    parse_params({"train": {"loss": "wasserstein"}, "model": {"spectral_norm": True}})  # D without batch norm
    parse_params({"train": {"loss": "wasserstein"}, "model": {"arch": "resnet"}, "data": {"image_size": 32}})
    parse_params({"train": {"loss": "hinge"}})


def test_the_catalog_of_names_matches_every_registry_behind_it():
    """params validation reads gan.catalog only; each heavy registry must have exactly its names."""
    from gan import augment, catalog, losses, models
    from gan.data import datasets
    from gan.metrics import families, registry

    assert {n: s.kind for n, s in datasets.DATASETS.items()} == catalog.DATASET_KINDS
    assert {n: a.spec for n, a in models.ARCHITECTURES.items()} == catalog.ARCHITECTURES
    assert set(losses.LOSSES) == set(catalog.LOSSES)
    assert {n for n, loss in losses.LOSSES.items() if loss.uses_gradient_penalty} == set(catalog.GRADIENT_PENALTY_LOSSES)
    assert tuple(augment.TRANSFORMATIONS) == catalog.AUGMENT_POLICIES
    assert set(registry.METRICS) == set(catalog.METRICS) == set(families.COMPUTE)


def test_the_dcgan_discriminator_has_batch_norm_exactly_when_the_catalog_says():
    import torch.nn as nn

    from gan import catalog, models

    for arch, shape in (("dcgan", (28, 28, 1)), ("resnet", (32, 32, 3)), ("mlp", (2,))):
        for spectral in (False, True):
            _, discriminator = models.build(arch, shape, 8, 8, spectral_norm=spectral)
            has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
            assert has_bn == (catalog.ARCHITECTURES[arch].d_batch_norm and not spectral), (arch, spectral)


def test_validating_params_imports_no_stage_code():
    """So that dvc.yaml can give each stage only its own code as deps."""
    probe = ("import sys; from gan.config import load_params; load_params('params.yaml'); "
             "print(' '.join(sorted(m for m in sys.modules if m == 'gan' or m.startswith('gan.'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gan", "gan.catalog", "gan.config", "gan.errors", "gan.task_params"]


@pytest.mark.parametrize(("model", "words"), [
    ({"arch": "dcgan", "depth": 2}, "model.depth applies to model.arch=mlp, not dcgan"),
    ({"arch": "mlp", "upsample": "nearest"}, "model.upsample applies to model.arch=dcgan, not mlp"),
    ({"arch": "dcgan", "upsample": "bilinear"}, "model.upsample must be one of transposed, nearest"),
    ({"latent_components": 10, "latent_dim": 1}, "model.latent_dim must be >= 2"),
])
def test_model_options_are_checked_against_the_architecture(model, words):
    with pytest.raises(UserError, match=re.escape(words)):
        parse_params({"model": model})
