"""An exponential moving average of the generator's weights: the G that is sampled and scored.

Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs" average G's
weights over training; Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data" (StyleGAN2-ADA) set the average by its half-life in images shown to D.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def ema_beta(batch_size: int, half_life_images: float) -> float:
    """β = 0.5 ** (batch_size / half_life_images).

    After k updates an old weight keeps β**k of its influence, and k updates show
    k · batch_size images, so a weight's influence halves every `half_life_images` images
    whatever the batch size: changing the batch keeps the same averaging horizon in data
    seen, which a fixed β (per step) would not.
    """
    if half_life_images <= 0:
        raise ValueError(f"EMA half-life must be > 0 images, got {half_life_images}; "
                         f"set train.ema_half_life_images: 0 to train without an EMA")
    if batch_size <= 0:
        raise ValueError(f"batch size must be > 0, got {batch_size}")
    return 0.5 ** (batch_size / half_life_images)


class EMA:
    """θ_ema ← β·θ_ema + (1 − β)·θ after every G update, with β from `ema_beta`.

    `.model` is a deep copy of G in eval mode with requires_grad off; it is never trained.
    Buffers (batch-norm running statistics, spectral-norm vectors) are not averaged but copied
    from G, as StyleGAN2-ADA does: they are statistics of G's current weights, not weights.
    """

    def __init__(self, model: nn.Module, half_life_images: float, batch_size: int):
        self.beta = ema_beta(batch_size, half_life_images)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, ema_param in self.model.named_parameters():
            ema_param.mul_(self.beta).add_(params[name].detach(), alpha=1 - self.beta)
        buffers = dict(model.named_buffers())
        for name, ema_buffer in self.model.named_buffers():
            ema_buffer.copy_(buffers[name])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if abs(float(state["beta"]) - self.beta) > 1e-12:
            raise ValueError(f"checkpoint EMA has β={state['beta']}, this run's is {self.beta} "
                             f"(train.ema_half_life_images or train.batch_size changed); start afresh")
        self.model.load_state_dict(state["model"])
