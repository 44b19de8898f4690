"""An exponential moving average of the generator's weights: the G that is sampled and scored.

Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs" average G's
weights over training; Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data" (StyleGAN2-ADA) set the average by its half-life in images shown to D.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# G's inputs for one forward pass: (z, y) with y None for an unconditional G
Inputs = tuple[torch.Tensor, torch.Tensor | None]


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
    Buffers are not averaged but copied from G, as StyleGAN2-ADA does. Batch-norm running
    statistics, though, describe G's current weights, not the averaged ones, and a BN
    generator sampled with them is worse than G itself (on grid25 it loses modes). So with a
    `calibration` (the inputs of a few forward passes), `sampler()` first recomputes the
    averaged model's own batch-norm statistics: the "standing statistics" of BigGAN (Brock,
    Donahue & Simonyan 2019, section 3.1 and appendix C), from the same latents every time.
    """

    def __init__(self, model: nn.Module, half_life_images: float, batch_size: int,
                 calibration: Callable[[], Iterable[Inputs]] | None = None):
        self.beta = ema_beta(batch_size, half_life_images)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.calibration = calibration
        self.calibrated = False  # the model's BN statistics are its own (set by sampler, cleared by update)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, ema_param in self.model.named_parameters():
            ema_param.mul_(self.beta).add_(params[name].detach(), alpha=1 - self.beta)
        buffers = dict(model.named_buffers())
        for name, ema_buffer in self.model.named_buffers():
            ema_buffer.copy_(buffers[name])
        self.calibrated = False

    def sampler(self) -> nn.Module:
        """The averaged G in eval mode, its batch-norm statistics recomputed for its own weights when stale."""
        if not self.calibrated and self.calibration is not None:
            standing_statistics(self.model, self.calibration())
        self.calibrated = True
        return self.model.eval()

    def state_dict(self) -> dict[str, Any]:
        """Weights and buffers as `update` leaves them; `sampler` recomputes what it needs after a load."""
        return {"model": self.model.state_dict(), "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if abs(float(state["beta"]) - self.beta) > 1e-12:
            raise ValueError(f"checkpoint EMA has β={state['beta']}, this run's is {self.beta} "
                             f"(train.ema_half_life_images or train.batch_size changed); start afresh")
        self.model.load_state_dict(state["model"])
        self.calibrated = False


@torch.no_grad()
def standing_statistics(model: nn.Module, inputs: Iterable[Inputs]) -> None:
    """Recompute every batch norm's running mean and variance as the plain average over `inputs`.

    The model runs in train mode (batch statistics, as in training) with momentum None
    (a cumulative average), then is left in eval mode with each layer's momentum restored.
    A model without batch norm is left as it is.
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for z, y in inputs:
            model(z) if y is None else model(z, y)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
