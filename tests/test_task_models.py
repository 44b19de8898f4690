"""The image-to-image models: pix2pix's U-Net and PatchGAN D, and the SRResNet of SRGAN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan.models import pix2pix, srresnet
from gan.models.pix2pix import PatchDiscriminator, UNet, receptive_field

WIDTH = 8


def input_gradient(model: nn.Module, x: torch.Tensor, pick) -> torch.Tensor:
    """|d pick(model(x)) / dx| summed over batch and channels: (H, W), nonzero where the output looks."""
    x = x.clone().requires_grad_(True)
    pick(model(x)).backward()
    return x.grad.abs().sum(dim=(0, 1))


def extent(mask: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) spanned by the True pixels of a (H, W) mask."""
    rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize("size, depth, bottleneck, dropouts", [(28, 2, 7, 1), (32, 5, 1, 3), (64, 6, 1, 3)])
def test_unet_depth_follows_the_image_side(size, depth, bottleneck, dropouts):
    g = UNet(size, 1, 1, WIDTH)
    assert (g.depth, g.bottleneck_side) == (depth, bottleneck)
    assert len(g.down) == len(g.up) == depth
    assert isinstance(g.bottleneck, nn.Identity) == (bottleneck == 1)
    assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == dropouts
    assert max(m.out_channels for m in g.modules() if isinstance(m, nn.Conv2d)) == WIDTH * min(2 ** (depth - 1), 8)


@pytest.mark.parametrize("size, sources, channels", [(28, 1, 1), (32, 2, 3), (64, 4, 3)])
def test_unet_maps_a_source_to_an_image_of_the_same_side(size, sources, channels):
    g = UNet(size, sources, channels, WIDTH)
    out = g(torch.rand(3, sources, size, size) * 2 - 1)
    assert out.shape == (3, channels, size, size)
    assert out.abs().max() < 1  # tanh


def test_unet_skip_connections_carry_the_source_past_the_bottleneck():
    torch.manual_seed(0)
    g = UNet(28, 1, 1, WIDTH).eval()
    with torch.no_grad():  # cut the path through the bottleneck: only the skips can still carry the source
        for conv in (m for m in g.down[-1].modules() if isinstance(m, nn.Conv2d)):
            conv.weight.zero_()
    grad = input_gradient(g, torch.randn(2, 1, 28, 28), lambda y: y[:, :, 14, 14].sum())
    assert grad[14, 14] > 0  # the output pixel sees its own source pixel
    assert grad[0, 0] == 0 and grad[27, 27] == 0  # and, without the bottleneck, only its neighbourhood


def test_unet_bottleneck_block_lets_a_central_pixel_see_the_whole_28px_source():
    torch.manual_seed(0)
    g = UNet(28, 1, 1, WIDTH).eval()
    grad = input_gradient(g, torch.randn(2, 1, 28, 28), lambda y: y[:, :, 14, 14].sum())
    assert bool((grad > 0).all())


def test_unet_dropout_is_its_noise_in_train_mode_only():
    torch.manual_seed(0)
    g = UNet(32, 1, 1, WIDTH)
    source = torch.randn(4, 1, 32, 32)
    assert not torch.equal(g(source), g(source))
    g.eval()
    assert torch.equal(g(source), g(source))


@pytest.mark.parametrize("patch, scores", [(1, 128 * 128), (16, 62 * 62), (34, 30 * 30), (70, 14 * 14)])
def test_patch_d_scores_see_a_patch_of_the_chosen_side(patch, scores):
    torch.manual_seed(0)
    d = PatchDiscriminator(128, 3, 0, WIDTH, patch, batch_norm=False).eval()
    x = torch.randn(1, 3, 128, 128)
    assert d(x).shape == (1, scores)
    side = math.isqrt(scores)
    centre = (side // 2) * side + side // 2  # a score whose window lies inside the image, away from the padding
    grad = input_gradient(d, x, lambda s: s[0, centre])
    assert extent(grad > 0) == (patch, patch)
    assert receptive_field(d.body) == patch


def test_whole_image_d_gives_one_score_that_depends_on_every_pixel():
    torch.manual_seed(0)
    d = PatchDiscriminator(28, 1, 2, WIDTH, 0).eval()
    source = torch.randn(2, 2, 28, 28)
    x = torch.randn(2, 1, 28, 28)
    assert d(x, source).shape == (2, 1)
    grad = input_gradient(lambda image: d(image, source), x, lambda s: s.sum())
    assert bool((grad > 0).all())


def test_conditional_d_judges_the_pair():
    torch.manual_seed(0)
    d = PatchDiscriminator(28, 1, 2, WIDTH, 16).eval()
    x, source = torch.randn(2, 1, 28, 28), torch.randn(2, 2, 28, 28)
    assert d(x, source).shape == (2, 12 * 12)
    assert not torch.allclose(d(x, source), d(x, torch.randn(2, 2, 28, 28)))  # the source matters
    with pytest.raises(ValueError, match="source"):
        d(x)
    with pytest.raises(ValueError, match="source_channels=0"):
        PatchDiscriminator(28, 1, 0, WIDTH, 16)(x, source)


@pytest.mark.parametrize("patch", [0, 1, 16, 34, 70])
def test_spectral_norm_builds_a_d_without_batch_norm(patch):
    _, d = pix2pix.build((64, 64, 3), 100, WIDTH, source_channels=1, patch=patch, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    _, d = pix2pix.build((64, 64, 3), 100, WIDTH, source_channels=1, patch=patch)
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


@pytest.mark.parametrize("size, scale", [(28, 2), (28, 4), (32, 4), (64, 2)])
def test_srresnet_upsamples_by_its_scale(size, scale):
    g, d = srresnet.build((size, size, 3), 100, WIDTH, scale=scale, blocks=2)
    out = g(torch.rand(2, 3, size // scale, size // scale) * 2 - 1)
    assert out.shape == (2, 3, size, size)
    assert d(out).shape[0] == 2  # D judges the high-resolution image alone


def test_srresnet_adds_what_its_body_learns_to_bilinear_upsampling():
    torch.manual_seed(0)
    g = srresnet.SRResNet(3, WIDTH, 2, 4)
    lowres = torch.rand(2, 3, 7, 7) * 2 - 1
    bilinear = F.interpolate(lowres, scale_factor=4, mode="bilinear", align_corners=False)
    assert not torch.allclose(g(lowres), bilinear)
    with torch.no_grad():
        g.tail[-1].weight.zero_()
        g.tail[-1].bias.zero_()
    assert torch.allclose(g(lowres), bilinear, atol=1e-6)


def test_srresnet_convs_start_ten_times_smaller_than_kaiming():
    """BasicSR's MSRResNet: every conv kaiming-normal x 0.1, so G starts near its bilinear base."""
    torch.manual_seed(0)
    g = srresnet.SRResNet(3, 64, 2, 2)
    he = math.sqrt(2 / (64 * 9))  # kaiming normal's std for a 3x3 conv from 64 channels
    for block in g.body:
        for conv in (block.conv1, block.conv2):
            assert conv.weight.std().item() == pytest.approx(0.1 * he, rel=0.05)
    assert g.tail[0].weight.std().item() == pytest.approx(0.1 * he, rel=0.05)


@pytest.mark.parametrize("build, kwargs, match", [
    (pix2pix.build, {"source_channels": 1, "num_classes": 10}, "model.conditional: false"),
    (pix2pix.build, {"source_channels": 1, "pack": 2}, "train.pack: 1"),
    (srresnet.build, {"scale": 4, "num_classes": 10}, "model.conditional: false"),
    (srresnet.build, {"scale": 4, "pack": 2}, "train.pack: 1"),
    (srresnet.build, {"scale": 3}, "task.scale"),
    (srresnet.build, {"scale": 4, "shape": (30, 30, 1)}, r"data.image_size \(30\).*task.scale \(4\)"),
    (pix2pix.build, {"source_channels": 1, "shape": (27, 27, 1)}, "even data.image_size"),
    (pix2pix.build, {"source_channels": 1, "patch": 50}, "model.patch"),
])
def test_build_rejects_what_it_cannot_make(build, kwargs, match):
    shape = kwargs.pop("shape", (28, 28, 1))
    with pytest.raises(ValueError, match=match) as caught:
        build(shape, 100, WIDTH, **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("build, kwargs", [(pix2pix.build, {"source_channels": 2}), (srresnet.build, {"scale": 4})])
def test_builds_are_reproducible_from_the_seed(build, kwargs):
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        g, d = build((28, 28, 3), 100, WIDTH, **kwargs)
        return [*g.state_dict().values(), *d.state_dict().values()]

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
