"""Spectral norm bounds each layer's largest singular value; the EMA is the formula it claims;
PacGAN packing groups consecutive samples."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan.ema import EMA, ema_beta
from gan.stabilizers import apply_spectral_norm, pack, unpack


def largest_singular_value(weight: torch.Tensor, dim: int = 0) -> float:
    matrix = weight.detach().movedim(dim, 0).flatten(1)  # conv (out, in, k, k) -> (out, in·k·k)
    return torch.linalg.matrix_norm(matrix, ord=2).item()


def large_layers() -> tuple[nn.Linear, nn.Conv2d]:
    torch.manual_seed(0)
    linear, conv = nn.Linear(32, 48), nn.Conv2d(3, 16, 3, padding=1)
    with torch.no_grad():
        linear.weight.normal_(0, 10)
        conv.weight.normal_(0, 10)
    return linear, conv


def test_large_weights_have_large_spectral_norm_without_it():
    linear, conv = large_layers()
    assert largest_singular_value(linear.weight) > 50 and largest_singular_value(conv.weight) > 50


def test_spectral_norm_bounds_largest_singular_value_by_one_after_power_iterations():
    linear, conv = large_layers()
    apply_spectral_norm(linear).train()
    apply_spectral_norm(conv).train()
    for _ in range(200):  # each forward pass in train mode is one power iteration
        linear(torch.randn(4, 32))
        conv(torch.randn(2, 3, 8, 8))
    for layer in (linear, conv):
        sigma = largest_singular_value(layer.weight)
        assert 0.99 <= sigma <= 1.0 + 1e-2, (type(layer).__name__, sigma)


def test_spectral_norm_covers_nested_layers_of_every_kind_and_skips_wrapped_ones():
    inner = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 4, 3))
    model = nn.ModuleDict({"body": nn.Sequential(inner, nn.BatchNorm2d(4)), "head": nn.Linear(4, 1),
                           "embed": nn.Embedding(10, 4)})
    assert apply_spectral_norm(model) is model
    for layer in (inner[0], inner[1], model["head"], model["embed"]):
        assert parametrize.is_parametrized(layer, "weight"), layer
    assert not parametrize.is_parametrized(model["body"][1])
    original = model["head"].parametrizations.weight
    apply_spectral_norm(model)
    assert model["head"].parametrizations.weight is original and len(original) == 1


def test_spectral_norm_on_transposed_conv_normalises_over_its_output_axis():
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(6, 4, 3)
    with torch.no_grad():
        layer.weight.normal_(0, 10)  # (in, out, k, k)
    apply_spectral_norm(layer).train()
    for _ in range(200):
        layer(torch.randn(2, 6, 5, 5))
    assert largest_singular_value(layer.weight, dim=1) <= 1.0 + 1e-2


def test_ema_beta_is_one_half_per_half_life_of_images():
    assert ema_beta(64, 64) == 0.5
    assert math.isclose(ema_beta(32, 10_000), 0.5 ** (32 / 10_000))
    assert math.isclose(ema_beta(64, 10_000) ** 2, ema_beta(128, 10_000))  # batch size does not change the horizon
    for bad in (0, -5):
        with pytest.raises(ValueError, match="half-life"):
            ema_beta(64, bad)


def small_generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_ema_copy_is_frozen_and_in_eval_mode():
    model = small_generator().train()
    ema = EMA(model, half_life_images=100, batch_size=10)
    assert ema.model is not model and not ema.model.training and model.training
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ema_update_is_beta_old_plus_one_minus_beta_new():
    model = small_generator()
    ema = EMA(model, half_life_images=100, batch_size=10)
    beta = ema_beta(10, 100)
    old = {k: v.clone() for k, v in ema.model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model)
    for name, param in model.named_parameters():
        expected = beta * old[name] + (1 - beta) * param
        assert torch.allclose(dict(ema.model.named_parameters())[name], expected, rtol=0, atol=1e-7), name
        assert not torch.allclose(dict(ema.model.named_parameters())[name], param)


def test_ema_copies_buffers_rather_than_averaging_them():
    model = small_generator().train()
    ema = EMA(model, half_life_images=100, batch_size=10)
    model(torch.randn(16, 4) * 5 + 3)  # moves the batch-norm running statistics
    ema.update(model)
    for name, buffer in model.named_buffers():
        assert torch.equal(dict(ema.model.named_buffers())[name], buffer), name


def test_ema_state_dict_round_trip():
    model = small_generator()
    ema = EMA(model, half_life_images=100, batch_size=10)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    fresh = EMA(small_generator(), half_life_images=100, batch_size=10)
    fresh.load_state_dict(ema.state_dict())
    for (name, a), b in zip(ema.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="β"):
        EMA(small_generator(), half_life_images=200, batch_size=10).load_state_dict(ema.state_dict())


def test_pack_groups_consecutive_images_along_channels():
    x = torch.arange(6 * 2 * 2 * 2).reshape(6, 2, 2, 2)  # (N, C, H, W)
    packed = pack(x, 3)
    assert packed.shape == (2, 6, 2, 2)
    assert torch.equal(packed[0], torch.cat([x[0], x[1], x[2]]))
    assert torch.equal(packed[1], torch.cat([x[3], x[4], x[5]]))


def test_pack_groups_consecutive_points_along_features():
    x = torch.arange(8).reshape(4, 2)  # (N, D)
    assert torch.equal(pack(x, 2), torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]))


def test_pack_of_one_is_the_identity():
    x = torch.randn(5, 3, 4, 4)
    assert pack(x, 1) is x


def test_pack_rejects_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple"):
        pack(torch.zeros(7, 2), 2)
    with pytest.raises(ValueError, match=">= 1"):
        pack(torch.zeros(4, 2), 0)


def test_unpack_inverts_pack_for_images_and_points():
    images, points = torch.randn(8, 3, 4, 4), torch.randn(8, 2)
    for x in (images, points):
        for degree in (1, 2, 4):
            assert torch.equal(unpack(pack(x, degree), degree), x)


def bn_generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def calibration_batches() -> list[tuple[torch.Tensor, None]]:
    rng = torch.Generator().manual_seed(5)
    return [(torch.randn(32, 2, generator=rng), None) for _ in range(4)]


def test_the_ema_sampler_has_batch_norm_statistics_of_its_own_weights():
    g = bn_generator()
    ema = EMA(g, half_life_images=64, batch_size=32, calibration=calibration_batches)
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    for _ in range(5):  # G moves away from the average; its BN buffers follow G
        opt.zero_grad()
        g(torch.randn(32, 2)).square().mean().backward()
        opt.step()
        ema.update(g)
    sampler = ema.sampler()
    with torch.no_grad():
        hidden = torch.cat([sampler[0](z) for z, _ in calibration_batches()])  # (128, 8): what BN sees
    torch.testing.assert_close(sampler[1].running_mean, hidden.mean(0))
    batch_vars = torch.stack([h.var(0, unbiased=True) for h in hidden.split(32)])  # torch's running_var: unbiased
    torch.testing.assert_close(sampler[1].running_var, batch_vars.mean(0))
    assert not sampler.training and sampler[1].momentum == 0.1  # left in eval mode, momentum restored
    assert not torch.allclose(sampler[1].running_mean, g[1].running_mean)


def test_the_ema_sampler_recalibrates_only_after_an_update():
    g = bn_generator()
    calls = []

    def counted():
        calls.append(1)
        return calibration_batches()

    ema = EMA(g, half_life_images=64, batch_size=32, calibration=counted)
    ema.sampler()
    ema.sampler()
    assert len(calls) == 1
    ema.update(g)
    ema.sampler()
    assert len(calls) == 2
    ema.load_state_dict(ema.state_dict())
    ema.sampler()
    assert len(calls) == 3
