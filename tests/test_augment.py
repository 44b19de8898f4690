"""DiffAugment (Zhao et al. 2020): each transformation does what the paper says, per sample,
from the given generator only, and lets gradients through to G."""

import pytest
import torch
from torch import nn

from gan.augment import POLICIES, DiffAugment, cutout_size, max_shift, parse_policy


def augment(policy: str, seed: int = 0) -> DiffAugment:
    return DiffAugment(policy, torch.Generator().manual_seed(seed))


def images(n: int = 8, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (N, C, H, W)


def single_pixel(n: int, size: int, row: int, col: int) -> torch.Tensor:
    """Images of -1 with one bright pixel (value 1, all channels) at (row, col)."""
    x = -torch.ones(n, 3, size, size)
    x[:, :, row, col] = 1.0
    return x


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference translation of one (C, H, W) image by slicing: content moves by (dy, dx), 0 fills."""
    _, h, w = x.shape
    out = torch.zeros_like(x)
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = x[:, max(-dy, 0):h - max(dy, 0),
                                                                      max(-dx, 0):w - max(dx, 0)]
    return out


def test_parse_policy_splits_names_in_order():
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy("cutout, color") == ("cutout", "color")
    assert parse_policy("") == ()
    assert POLICIES == ("color", "translation", "cutout")


def test_unknown_policy_name_is_rejected_naming_it_and_the_allowed_names():
    with pytest.raises(ValueError, match="'colour'") as info:
        parse_policy("colour,translation")
    assert all(name in str(info.value) for name in POLICIES)
    with pytest.raises(ValueError, match="twice"):
        parse_policy("cutout,cutout")


@pytest.mark.parametrize("policy", POLICIES)
def test_each_transformation_changes_images_and_keeps_shape_dtype_device(policy):
    x = images()
    out = augment(policy)(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert not torch.equal(out, x)


def test_empty_policy_is_the_identity_and_draws_nothing():
    rng = torch.Generator().manual_seed(0)
    before = rng.get_state()
    x = images()
    assert DiffAugment("", rng)(x) is x
    assert torch.equal(rng.get_state(), before)


def test_non_image_input_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment("translation")(torch.zeros(8, 2))


def test_same_seed_gives_identical_augmentations():
    x, policy = images(), "color,translation,cutout"
    assert torch.equal(augment(policy, seed=5)(x), augment(policy, seed=5)(x))
    assert not torch.equal(augment(policy, seed=5)(x), augment(policy, seed=6)(x))


def test_each_call_draws_fresh_parameters():
    aug, x = augment("color,translation,cutout"), images()
    assert not torch.equal(aug(x), aug(x))


def test_restoring_the_generator_state_reproduces_the_next_augmentation():
    aug, x = augment("color,translation,cutout"), images()
    aug(x)  # move the generator away from its seed
    saved = aug.rng.get_state()
    expected = aug(x)
    aug.rng.set_state(saved)
    assert torch.equal(aug(x), expected)


def test_global_rng_is_not_used():
    before = torch.get_rng_state()
    augment("color,translation,cutout")(images())
    assert torch.equal(torch.get_rng_state(), before)


def test_gradients_flow_through_every_transformation_to_the_input():
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        x = images().requires_grad_(True)
        augment(policy)(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, policy


def test_gradients_flow_through_augmentation_to_generator_parameters():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(8, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1))
    z = torch.randn(8, 8)
    loss = nn.functional.softplus(-discriminator(augment("color,translation,cutout")(generator(z)))).mean()
    loss.backward()
    for name, param in generator.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_the_configured_policy_and_only_it_is_applied_to_real_and_fake_batches():
    """Translation only: real and fake batches (one with a graph, as in the G step) are each
    exactly their drawn shifts of the input, with no colour change and no cutout."""
    aug = augment("translation", seed=3)
    real = single_pixel(6, 16, 5, 9)
    fake = single_pixel(6, 16, 10, 4).requires_grad_(True)
    for batch in (real, fake, real.clone()):
        saved = aug.rng.get_state()
        params = aug.sample(batch)["translation"]
        aug.rng.set_state(saved)
        out = aug(batch)
        assert set(aug.sample(batch)) == {"translation"}
        for n in range(len(batch)):
            dy, dx = int(params["dy"][n]), int(params["dx"][n])
            assert torch.equal(out[n], shifted(batch[n].detach(), dy, dx))
        bright = (out[:, 0] == 1).nonzero()[:, 1:]  # (N, 2) where the bright pixel went
        origin = (batch[:, 0] == 1).nonzero()[:, 1:]
        assert torch.equal(bright - origin, torch.stack([params["dy"], params["dx"]], dim=1))


def test_translation_stays_within_one_eighth_of_the_side_and_reaches_it():
    size, n = 32, 512
    x = single_pixel(n, size, size // 2, size // 2)
    out = augment("translation", seed=7)(x)
    where = (out[:, 0] == 1).nonzero()  # (N, 3): sample, row, col
    assert torch.equal(where[:, 0], torch.arange(n))  # the pixel is never lost
    shift = where[:, 1:] - size // 2
    assert max_shift(size) == 4
    assert shift.abs().max() == 4 and shift.min() == -4 and shift.max() == 4
    assert len(set(map(tuple, shift.tolist()))) > 40  # dy and dx drawn independently, per sample


def test_translation_fills_with_zero():
    out = augment("translation", seed=0)(torch.ones(64, 3, 16, 16))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out == 0).any()


def test_cutout_zeros_exactly_one_square_of_half_the_side():
    size, n = 32, 64
    out = augment("cutout", seed=2)(torch.ones(n, 3, size, size))
    side = cutout_size(size)
    assert side == 16
    corners = set()
    for sample in out:
        zeros = (sample == 0).nonzero()  # (K, 3): channel, row, col
        assert len(zeros) == 3 * side * side
        rows, cols = zeros[:, 1], zeros[:, 2]
        top, left = int(rows.min()), int(cols.min())
        assert int(rows.max()) - top == side - 1 and int(cols.max()) - left == side - 1
        assert (sample[:, top:top + side, left:left + side] == 0).all()
        corners.add((top, left))
    assert len(corners) > 10  # one position per sample, not per batch


def test_color_brightness_shifts_each_sample_mean_by_its_drawn_offset():
    # Saturation and contrast scale deviations from a mean, so only brightness moves the mean.
    aug, x = augment("color", seed=4), images(n=16)
    params = aug.sample(x)["color"]
    out = aug.apply(x, {"color": params})
    shift = out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    brightness = params["brightness"].flatten()
    assert torch.allclose(shift, brightness, atol=1e-5)
    assert brightness.min() >= -0.5 and brightness.max() <= 0.5 and brightness.std() > 0.1


def test_color_follows_the_paper_formula():
    aug, x = augment("color", seed=8), images(n=4)
    p = aug.sample(x)["color"]
    b = x + p["brightness"]
    s = (b - b.mean(1, keepdim=True)) * p["saturation"] + b.mean(1, keepdim=True)
    expected = (s - s.mean((1, 2, 3), keepdim=True)) * p["contrast"] + s.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(aug.apply(x, {"color": p}), expected, atol=1e-6)
    assert p["saturation"].min() >= 0 and p["saturation"].max() <= 2
    assert p["contrast"].min() >= 0.5 and p["contrast"].max() <= 1.5
