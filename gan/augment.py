"""DiffAugment: differentiable augmentation of D's inputs, for GAN training on little data.

Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN
Training". The same policy T is applied to every image D sees, real or fake, in the D step
and in the G step, and T is differentiable, so G learns through it:

    L_D = f(D(T(x))) + h(D(T(G(z))))        L_G = g(D(T(G(z))))

Each call draws fresh per-sample parameters (a new brightness, shift, cutout position, ...
for each image), as the paper does: the trainer calls `augment(real)` and `augment(fake)`
with one DiffAugment, and "the same policy" means the same kinds of transformation from the
same distributions, not the same draws. Augmenting only the reals would teach G to produce
augmented images; augmenting the fakes only in the D step would leave G unable to follow.

Images are (N, C, H, W) in [-1, 1]. Pixels that translation exposes and the cutout square
are set to 0 in this tensor space (mid-grey), as the paper's implementation does in its own
[-1, 1] space. All randomness comes from the torch.Generator given, never from the global
RNGs, so the trainer checkpoints its state and a resumed run augments bit-exactly as the
uninterrupted run would have. Written by hand: torchvision's transforms draw one parameter
set per batch from the global RNG, not per-sample parameters from a given generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor
Params = dict[str, Tensor]  # one transformation's per-sample parameters, on the generator's device

TRANSLATION_RATIO = 1 / 8  # largest shift, as a fraction of the image side (the paper's 0.125)
CUTOUT_RATIO = 1 / 2  # side of the cutout square, as a fraction of the image side (the paper's 0.5)


def _uniform(rng: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, 1, 1, 1, generator=rng, device=rng.device)  # (N, 1, 1, 1)


def _sample_color(rng: torch.Generator, shape: torch.Size) -> Params:
    n = shape[0]
    return {"brightness": _uniform(rng, n, -0.5, 0.5), "saturation": _uniform(rng, n, 0.0, 2.0),
            "contrast": _uniform(rng, n, 0.5, 1.5)}


def _color(x: Tensor, p: Params) -> Tensor:
    """Brightness, then saturation, then contrast, each with its own per-sample factor.

    brightness: x + b;  saturation: (x - mean_C(x)) * s + mean_C(x), mean over channels per pixel;
    contrast: (x - mean_CHW(x)) * c + mean_CHW(x), mean over the whole sample.
    """
    b, s, c = (p[k].to(x.device, x.dtype) for k in ("brightness", "saturation", "contrast"))
    x = x + b
    pixel_mean = x.mean(dim=1, keepdim=True)  # (N, 1, H, W)
    x = (x - pixel_mean) * s + pixel_mean
    sample_mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return (x - sample_mean) * c + sample_mean


def max_shift(side: int) -> int:
    """The largest translation along an axis of `side` pixels: at most 1/8 of the side."""
    return int(side * TRANSLATION_RATIO)


def _sample_translation(rng: torch.Generator, shape: torch.Size) -> Params:
    n, _, h, w = shape
    dy, dx = max_shift(h), max_shift(w)
    return {"dy": torch.randint(-dy, dy + 1, (n,), generator=rng, device=rng.device),
            "dx": torch.randint(-dx, dx + 1, (n,), generator=rng, device=rng.device)}


def _translation(x: Tensor, p: Params) -> Tensor:
    """Move sample n by (dy[n], dx[n]) pixels; what comes in from outside is 0.

    A gather of source indices rather than a resampling grid: integer shifts stay exact, and the
    gradient w.r.t. x is the inverse shift.
    """
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) - p["dy"].to(x.device)[:, None]  # (N, H) source row of each row
    cols = torch.arange(w, device=x.device) - p["dx"].to(x.device)[:, None]  # (N, W) source column
    out = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(n, c, h, w))
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    return out * inside.to(x.dtype)  # (N, 1, H, W) mask broadcast over channels


def cutout_size(side: int) -> int:
    """Side of the cutout square along an axis of `side` pixels: half of it, rounded half up."""
    return int(side * CUTOUT_RATIO + 0.5)


def _sample_cutout(rng: torch.Generator, shape: torch.Size) -> Params:
    # The square lies wholly inside the image, so every sample loses exactly the same area; the
    # paper's code lets it hang over the border, which makes the erased area vary.
    n, _, h, w = shape
    return {"top": torch.randint(0, h - cutout_size(h) + 1, (n,), generator=rng, device=rng.device),
            "left": torch.randint(0, w - cutout_size(w) + 1, (n,), generator=rng, device=rng.device)}


def _cutout(x: Tensor, p: Params) -> Tensor:
    """Set one square of half the image side per sample to 0, with a multiplicative mask."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) - p["top"].to(x.device)[:, None]  # (N, H) row within the square
    cols = torch.arange(w, device=x.device) - p["left"].to(x.device)[:, None]  # (N, W)
    in_rows = (rows >= 0) & (rows < cutout_size(h))
    in_cols = (cols >= 0) & (cols < cutout_size(w))
    erased = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (N, 1, H, W)
    return x * (~erased).to(x.dtype)


@dataclass(frozen=True)
class Transformation:
    sample: Callable[[torch.Generator, torch.Size], Params]  # (rng, x.shape) -> per-sample parameters
    apply: Callable[[Tensor, Params], Tensor]  # (x, parameters) -> augmented x, differentiable in x
    about: str


TRANSFORMATIONS: dict[str, Transformation] = {
    "color": Transformation(_sample_color, _color, "brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5]"),
    "translation": Transformation(_sample_translation, _translation, "integer shift up to 1/8 of the side, 0 fill"),
    "cutout": Transformation(_sample_cutout, _cutout, "one square of half the side set to 0"),
}
POLICIES: tuple[str, ...] = tuple(TRANSFORMATIONS)  # ("color", "translation", "cutout")


def parse_policy(policy: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' -> () (no augmentation).

    The transformations run in the order given. An unknown or repeated name is a ValueError.
    """
    names = [n.strip() for n in policy.split(",")] if isinstance(policy, str) else [str(n).strip() for n in policy]
    names = [n for n in names if n]
    for name in names:
        if name not in TRANSFORMATIONS:
            raise ValueError(f"unknown DiffAugment policy {name!r} in {policy!r}; "
                             f"allowed: {', '.join(POLICIES)} (comma-separated), or '' for none")
    if len(set(names)) != len(names):
        raise ValueError(f"DiffAugment policy {policy!r} names a transformation twice; list each at most once")
    return tuple(names)


class DiffAugment:
    """The policy's transformations, with fresh per-sample parameters from `rng` at every call.

    `augment(x)` is `augment.apply(x, augment.sample(x))`; `sample` and `apply` are public so
    that a test (or a plot) can see exactly which parameters were drawn. An empty policy is the
    identity on any input and draws nothing, so a trainer may call it unconditionally.
    """

    def __init__(self, policy: str | tuple[str, ...], rng: torch.Generator):
        self.policy = parse_policy(policy)
        self.rng = rng

    def __repr__(self) -> str:
        return f"DiffAugment(policy={','.join(self.policy)!r})"

    def sample(self, x: Tensor) -> dict[str, Params]:
        """Draw one parameter set per sample for each transformation of the policy, in order."""
        if x.dim() != 4:
            raise ValueError(f"DiffAugment takes image batches (N, C, H, W); got shape {tuple(x.shape)}. "
                             f"Set train.augment: '' for data that is not images")
        return {name: TRANSFORMATIONS[name].sample(self.rng, x.shape) for name in self.policy}

    def apply(self, x: Tensor, params: dict[str, Params]) -> Tensor:
        for name in self.policy:
            x = TRANSFORMATIONS[name].apply(x, params[name])
        return x  # (N, C, H, W), same dtype and device

    def __call__(self, x: Tensor) -> Tensor:
        if not self.policy:
            return x
        return self.apply(x, self.sample(x))
