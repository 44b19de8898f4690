"""Architectures: every G and D builds, conditions on labels, packs, takes spectral norm, and saves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan import models, stabilizers
from gan.models import mlp
from gan.models.latent import ComponentLatent
from gan.config import ModelConfig
from gan.models.conditional import ConditionalBatchNorm2d

LATENT = 16
WIDTH = 8
CLASSES = 10
CASES = {  # every architecture on each data kind and image size it accepts
    "mlp-points": ("mlp", (2,)),
    "mlp-images": ("mlp", (28, 28, 1)),
    "dcgan-28": ("dcgan", (28, 28, 1)),
    "dcgan-32": ("dcgan", (32, 32, 3)),
    "dcgan-64": ("dcgan", (64, 64, 3)),
    "resnet-32-rgb": ("resnet", (32, 32, 3)),
    "resnet-32-grey": ("resnet", (32, 32, 1)),
}
IMAGE_CASES = sorted(k for k, (_, shape) in CASES.items() if len(shape) == 3)
NORMALISED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def build(case: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    arch, shape = CASES[case]
    torch.manual_seed(0)
    return models.build(arch, shape, LATENT, WIDTH, **kwargs)


def sample_shape(shape: tuple[int, ...], count: int) -> tuple[int, ...]:
    """(count, C, H, W) for images stored (H, W, C); (count, 2) for points."""
    return (count, shape[2], shape[0], shape[1]) if len(shape) == 3 else (count, *shape)


def labels(count: int) -> torch.Tensor:
    return torch.arange(count) % CLASSES


def randomise_class_embeddings(generator: nn.Module) -> None:
    """Conditional BN starts class-blind (gain 1, bias 0); training is what makes classes differ."""
    for m in generator.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            nn.init.normal_(m.gain.weight, 1.0, 0.5)
            nn.init.normal_(m.bias.weight, 0.0, 0.5)


def test_registry_lists_the_sngan_resnet_for_32px_images_only():
    resnet = models.ARCHITECTURES["resnet"].spec
    assert resnet.data_kinds == ("images",) and resnet.image_sizes == (32,)
    with pytest.raises(ValueError, match="32x32"):
        models.build("resnet", (28, 28, 1), LATENT, WIDTH)


@pytest.mark.parametrize("spectral_norm", [False, True], ids=["plain", "sn"])
@pytest.mark.parametrize("num_classes", [0, CLASSES], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_architecture_builds_samples_scores_and_backpropagates(case, num_classes, spectral_norm):
    generator, discriminator = build(case, num_classes=num_classes, spectral_norm=spectral_norm)
    shape = CASES[case][1]
    y = labels(6) if num_classes else None
    assert generator.latent_dim == LATENT and generator.num_classes == num_classes
    fake = generator(torch.randn(6, LATENT), y)
    assert fake.shape == sample_shape(shape, 6)
    if len(shape) == 3:
        assert fake.min() >= -1 and fake.max() <= 1
    scores = discriminator(fake, y)
    assert scores.shape == (6,)
    scores.mean().backward()
    assert all(p.grad is not None for p in generator.parameters())
    assert all(p.grad is not None for p in discriminator.parameters())


def test_the_positional_call_of_the_trainer_builds_an_unconditional_pair():
    generator, discriminator = models.build("dcgan", (32, 32, 3), LATENT, WIDTH)
    assert generator.num_classes == 0
    assert any(isinstance(m, nn.BatchNorm2d) for m in discriminator.modules())  # DCGAN's D as before


@pytest.mark.parametrize("case", sorted(CASES))
def test_unconditional_models_refuse_labels_and_conditional_ones_require_them(case):
    shape = CASES[case][1]
    generator, discriminator = build(case)
    with pytest.raises(ValueError, match="unconditional"):
        generator(torch.randn(2, LATENT), labels(2))
    with pytest.raises(ValueError, match="unconditional"):
        discriminator(torch.zeros(sample_shape(shape, 2)), labels(2))
    generator, discriminator = build(case, num_classes=CLASSES)
    with pytest.raises(ValueError, match="pass labels"):
        generator(torch.randn(2, LATENT))
    with pytest.raises(ValueError, match="pass labels"):
        discriminator(torch.zeros(sample_shape(shape, 2)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_conditional_generator_draws_one_sample_per_asked_label(case):
    generator, _ = build(case, num_classes=CLASSES)
    fake = generator.eval()(torch.randn(CLASSES, LATENT), torch.arange(CLASSES))
    assert fake.shape == sample_shape(CASES[case][1], CLASSES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_label_changes_what_the_generator_draws_from_the_same_noise(case):
    generator, _ = build(case, num_classes=CLASSES)
    randomise_class_embeddings(generator)
    z = torch.randn(1, LATENT).expand(CLASSES, LATENT)
    fake = generator.eval()(z, torch.arange(CLASSES)).flatten(1)  # (classes, features)
    distances = torch.cdist(fake, fake)
    assert (distances + torch.eye(CLASSES)).min() > 1e-4  # every pair of classes differs


@pytest.mark.parametrize("case", [k for k in IMAGE_CASES if CASES[k][0] != "mlp"])  # MLP: an embedding
def test_conditional_batch_norm_starts_as_plain_batch_norm(case):
    generator, _ = build(case, num_classes=CLASSES)
    z = torch.randn(1, LATENT).expand(CLASSES, LATENT)
    fake = generator.eval()(z, torch.arange(CLASSES))
    torch.testing.assert_close(fake, fake[:1].expand_as(fake))  # every class: the same image


@pytest.mark.parametrize("case", sorted(CASES))
def test_projection_discriminator_scores_the_same_sample_differently_per_class(case):
    _, discriminator = build(case, num_classes=CLASSES)
    x = torch.rand(sample_shape(CASES[case][1], 1)).expand(sample_shape(CASES[case][1], CLASSES))
    scores = discriminator.eval()(x, torch.arange(CLASSES))
    assert len(set(scores.tolist())) == CLASSES


@pytest.mark.parametrize("case", sorted(CASES))
def test_projection_with_a_zero_class_embedding_is_the_unconditional_head(case):
    _, conditional = build(case, num_classes=CLASSES)
    _, unconditional = build(case)
    weights = conditional.state_dict()
    unconditional.load_state_dict({k: v for k, v in weights.items() if not k.endswith("embed.weight")})
    embeddings = [m for m in conditional.modules() if isinstance(m, nn.Embedding)]
    assert len(embeddings) == 1
    nn.init.zeros_(embeddings[0].weight)
    x = torch.rand(sample_shape(CASES[case][1], 6))
    torch.testing.assert_close(conditional.eval()(x, labels(6)), unconditional.eval()(x))


@pytest.mark.parametrize("case", sorted(CASES))
def test_packed_discriminator_gives_one_score_per_pack(case):
    shape = CASES[case][1]
    generator, discriminator = build(case, pack=4)
    fake = generator(torch.randn(8, LATENT))  # (8, C, H, W) or (8, 2)
    packed = stabilizers.pack(fake, 4)
    channels = shape[2] if len(shape) == 3 else shape[0]
    assert packed.shape[1] == 4 * channels
    assert discriminator(packed).shape == (2,)


def test_packing_a_conditional_discriminator_is_refused():
    with pytest.raises(ValueError, match="pack"):
        models.build("dcgan", (32, 32, 3), LATENT, WIDTH, num_classes=CLASSES, pack=4)


@pytest.mark.parametrize("num_classes", [0, CLASSES], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_spectral_norm_wraps_every_weight_of_the_discriminator_and_removes_batch_norm(case, num_classes):
    generator, discriminator = build(case, num_classes=num_classes, spectral_norm=True)
    layers = [m for m in discriminator.modules() if isinstance(m, NORMALISED_LAYERS)]
    assert len(layers) >= 3  # at least two convs or linears and the head
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
    assert not any(parametrize.is_parametrized(m) for m in generator.modules())  # G is left alone


def test_resnet_has_the_sngan_channel_widths():
    generator, discriminator = models.build("resnet", (32, 32, 3), 128, 64)
    assert generator.project.out_features == 256 * 4 * 4
    assert all(block.conv1.out_channels == 256 for block in generator.blocks)
    assert all(block.conv2.out_channels == 128 for block in discriminator.blocks)
    assert discriminator.head.in_features == 128


def fake_cfg(arch: str, conditional: bool) -> SimpleNamespace:
    return SimpleNamespace(model=ModelConfig(arch=arch, latent_dim=LATENT, width=WIDTH, conditional=conditional))


def data_meta(shape: tuple[int, ...]) -> dict:
    return {"shape": list(shape), "num_classes": CLASSES, "sha256": "0" * 64, "kind": "images"}


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_a_saved_conditional_generator_loads_back_and_draws_the_same_samples(tmp_path, arch):
    shape = (32, 32, 3)
    generator, _ = models.build(arch, shape, LATENT, WIDTH, num_classes=CLASSES,
                                options=fake_cfg(arch, True).model.options())
    randomise_class_embeddings(generator)
    models.save_generator(generator, fake_cfg(arch, True), data_meta(shape), 7, tmp_path / "g.pt")
    loaded, saved = models.load_generator(tmp_path / "g.pt")
    assert saved["num_classes"] == CLASSES and saved["step"] == 7
    assert loaded.num_classes == CLASSES and not loaded.training
    z, y = torch.randn(CLASSES, LATENT), torch.arange(CLASSES)
    torch.testing.assert_close(loaded(z, y), generator.eval()(z, y))


def test_a_generator_file_from_before_conditioning_loads_as_unconditional(tmp_path):
    shape = (32, 32, 3)
    generator, _ = models.build("dcgan", shape, LATENT, WIDTH, options=fake_cfg("dcgan", False).model.options())
    path = tmp_path / "g.pt"
    models.save_generator(generator, fake_cfg("dcgan", False), data_meta(shape), 1, path)
    old = torch.load(path, weights_only=True)
    del old["num_classes"]
    torch.save(old, path)
    loaded, saved = models.load_generator(path)
    assert loaded.num_classes == 0 and saved["num_classes"] == 0


def test_saving_a_generator_that_disagrees_with_the_config_fails():
    generator, _ = models.build("dcgan", (32, 32, 3), LATENT, WIDTH)
    with pytest.raises(ValueError, match="num_classes"):
        models.save_generator(generator, fake_cfg("dcgan", True), data_meta((32, 32, 3)), 1, None)


def test_the_mlp_is_pacgans_2d_architecture_by_default():
    generator, discriminator = models.build("mlp", (2,), 2, 400, options={"d_width": 200})
    linears = [m for m in generator.net if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [400] * 4 + [2]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in generator.modules()) == 4
    maxouts = [m for m in discriminator.modules() if isinstance(m, mlp.Maxout)]
    assert [(m.out_features, m.pieces) for m in maxouts] == [(200, 5)] * 3
    x = torch.randn(7, 2)
    torch.testing.assert_close(maxouts[0](x), maxouts[0].linear(x).view(7, 200, 5).amax(2))


def test_mlp_options_give_the_plain_pair():
    generator, discriminator = models.build("mlp", (2,), 2, 32, options={
        "depth": 2, "d_depth": 1, "d_width": 0, "g_norm": "none", "d_activation": "leaky_relu"})
    assert not any(isinstance(m, nn.BatchNorm1d) for m in generator.modules())
    assert sum(isinstance(m, nn.Linear) for m in generator.modules()) == 3
    assert not any(isinstance(m, mlp.Maxout) for m in discriminator.modules())
    assert sum(isinstance(m, nn.LeakyReLU) for m in discriminator.modules()) == 1


def test_nearest_upsampling_replaces_every_transposed_conv_by_resize_convolution():
    for size in (28, 32, 64):
        generator, _ = models.build("dcgan", (size, size, 1), LATENT, 8, options={"upsample": "nearest"})
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in generator.modules())
        assert sum(isinstance(m, nn.Upsample) for m in generator.modules()) == {28: 2, 32: 3, 64: 4}[size]
        assert generator(torch.randn(3, LATENT)).shape == (3, 1, size, size)
    transposed, _ = models.build("dcgan", (28, 28, 1), LATENT, 8)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in transposed.modules()) == 2


def test_an_option_the_architecture_does_not_read_is_refused():
    with pytest.raises(ValueError, match="does not read upsample"):
        models.build("mlp", (2,), 2, 8, options={"upsample": "nearest"})


def test_the_saved_generator_remembers_its_options(tmp_path):
    cfg = SimpleNamespace(model=ModelConfig(arch="mlp", latent_dim=2, width=8, depth=2, g_norm="none"))
    generator, _ = models.build("mlp", (2,), 2, 8, options=cfg.model.options())
    models.save_generator(generator, cfg, {**data_meta((2,)), "kind": "points"}, 1, tmp_path / "g.pt")
    loaded, saved = models.load_generator(tmp_path / "g.pt")
    assert saved["options"]["depth"] == 2 and saved["options"]["g_norm"] == "none"
    z = torch.randn(5, 2)
    torch.testing.assert_close(loaded(z), generator.eval()(z))


def test_a_generator_file_from_before_model_options_loads_as_the_old_mlp(tmp_path):
    old_options = {"depth": 3, "d_depth": 3, "g_norm": "none", "d_activation": "leaky_relu"}
    cfg = SimpleNamespace(model=ModelConfig(arch="mlp", latent_dim=2, width=8, **old_options))
    generator, _ = models.build("mlp", (2,), 2, 8, options=cfg.model.options())
    path = tmp_path / "g.pt"
    models.save_generator(generator, cfg, {**data_meta((2,)), "kind": "points"}, 1, path)
    old = torch.load(path, weights_only=True)
    del old["options"]
    torch.save(old, path)
    loaded, _ = models.load_generator(path)
    z = torch.randn(5, 2)
    torch.testing.assert_close(loaded(z), generator.eval()(z))


def test_component_latents_are_equally_likely():
    latent = ComponentLatent(8, 25)
    counts = torch.bincount(latent.component(torch.randn(200_000, 8, generator=torch.Generator().manual_seed(0))),
                            minlength=25)
    assert counts.min() > 0.95 * 8000 and counts.max() < 1.05 * 8000  # 200k / 25 each


@pytest.mark.parametrize("arch,shape", [("mlp", (2,)), ("dcgan", (28, 28, 1))])
def test_the_first_latent_coordinate_only_picks_the_component(arch, shape):
    generator, _ = models.build(arch, shape, 4, 8, latent_components=5)
    generator.eval()
    z = torch.randn(3, 4)
    same = z.clone()
    same[:, 0] = 0.01  # Phi(0.01) and Phi(0.2) are both in the third fifth: component 2
    z[:, 0] = 0.2
    torch.testing.assert_close(generator(z), generator(same))
    other = z.clone()
    other[:, 0] = -2.0  # component 0
    assert not torch.allclose(generator(other), generator(z))
    changed = z.clone()
    changed[:, 1] += 1.0  # the other coordinates stay continuous noise
    assert not torch.allclose(generator(changed), generator(z))


def test_a_generator_with_latent_components_loads_back(tmp_path):
    cfg = SimpleNamespace(model=ModelConfig(arch="mlp", latent_dim=3, width=8, latent_components=6))
    generator, _ = models.build("mlp", (2,), 3, 8, options=cfg.model.options(), latent_components=6)
    models.save_generator(generator, cfg, {**data_meta((2,)), "kind": "points"}, 1, tmp_path / "g.pt")
    loaded, saved = models.load_generator(tmp_path / "g.pt")
    assert saved["latent_components"] == 6 and loaded.latent_dim == 3
    z = torch.randn(5, 3)
    torch.testing.assert_close(loaded(z), generator.eval()(z))
