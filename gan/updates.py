"""One training step as phases: D main (d_steps times, G frozen), D regularisation (lazy R1),
G main (D frozen), then the EMA of G. The maths of each objective stays in gan.losses; this
module only decides what D sees (augmented, packed, with labels) and in which precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import torch

from gan import losses, sampling
from gan.augment import DiffAugment
from gan.stabilizers import pack, unpack

if TYPE_CHECKING:  # the trainer's state; imported for annotations only, to avoid a cycle
    from gan.training import Batches, State

Tensor = torch.Tensor


@dataclass(frozen=True)
class Plan:
    """What params.yaml asks of each step, resolved once."""

    loss: losses.Loss
    batch_size: int
    latent_dim: int
    d_steps: int
    num_classes: int  # > 0: conditional G and D
    augment: DiffAugment | None
    pack: int
    gp_weight: float  # applied only for losses that call for a gradient penalty
    r1_weight: float
    r1_interval: int
    autocast: Callable[[], ContextManager[Any]]
    channels_last: bool
    lr_g: float = 0.0
    lr_d: float = 0.0
    total_steps: int = 0
    decay_start: float = 1.0  # share of total_steps after which both learning rates fall linearly to 0

    def lr_factor(self, step: int) -> float:
        """The share of the base learning rates for update number step + 1 (1 until the decay starts)."""
        start = self.decay_start * self.total_steps
        if step < start or self.total_steps <= start:
            return 1.0
        return (self.total_steps - step) / (self.total_steps - start)

    def d_view(self, x: Tensor) -> Tensor:
        """What D is shown: augmented (same policy for reals and fakes, in both steps), then packed."""
        if self.augment is not None:
            x = self.augment(x)
        return pack(self._layout(x), self.pack)

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def labels(self, y: Tensor | None) -> dict[str, Tensor]:
        """The keyword arguments that hand classes to a conditional G or D; none otherwise."""
        return {"y": y} if self.num_classes else {}


def cuda_fast_path(cfg: Any, device: torch.device) -> bool:
    """bf16 autocast and channels_last: on CUDA when train.mixed_precision is on; the CPU stays exact fp32."""
    return device.type == "cuda" and cfg.train.mixed_precision


def make_plan(cfg: Any, num_classes: int, augment: DiffAugment | None, device: torch.device) -> Plan:
    t = cfg.train
    loss = losses.LOSSES[t.loss]
    fast = cuda_fast_path(cfg, device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if fast else nullcontext
    return Plan(loss, t.batch_size, cfg.model.latent_dim, t.d_steps, num_classes, augment, t.pack,
                t.gp_weight if loss.uses_gradient_penalty else 0.0, t.r1_weight, t.r1_interval, autocast, fast,
                t.lr_g, t.lr_d, t.steps, t.lr_decay_start)


def fake_labels(plan: Plan, state: "State") -> Tensor | None:
    if not plan.num_classes:
        return None
    rng = state.noise_rng
    return torch.randint(plan.num_classes, (plan.batch_size,), generator=rng, device=rng.device)


def d_update(state: "State", plan: Plan, real: Tensor, real_y: Tensor | None) -> dict[str, Tensor]:
    """One D step with G frozen: G's samples are made without a graph."""
    z = sampling.noise(plan.batch_size, plan.latent_dim, state.noise_rng, state.noise_rng.device)
    fake_y = fake_labels(plan, state)
    with torch.no_grad(), plan.autocast():
        fake = state.generator(z.to(real.device), **plan.labels(fake_y)).float()
    real_in, fake_in = plan.d_view(real), plan.d_view(fake)
    with plan.autocast():
        real_scores = state.discriminator(real_in, **plan.labels(real_y)).float()
        fake_scores = state.discriminator(fake_in, **plan.labels(fake_y)).float()
    loss_d = plan.loss.d_loss(real_scores, fake_scores)
    total = loss_d
    if plan.gp_weight:  # in fp32: a penalty on gradients is too fine for bf16
        def critic(x: Tensor, **kw: Tensor) -> Tensor:
            return state.discriminator(pack(x, plan.pack), **kw)

        penalty = losses.gradient_penalty(critic, unpack(real_in, plan.pack), unpack(fake_in, plan.pack),
                                          state.penalty_rng, **plan.labels(real_y))
        total = total + plan.gp_weight * penalty
    state.opt_d.zero_grad(set_to_none=True)
    total.backward()
    state.opt_d.step()
    readout = plan.loss.readout
    return {"loss_d": loss_d.detach(), "d_real": readout(real_scores.detach()).mean(),
            "d_fake": readout(fake_scores.detach()).mean()}


def r1_update(state: "State", plan: Plan, real: Tensor, real_y: Tensor | None) -> None:
    """Lazy R1 (Mescheder et al. 2018; Karras et al. 2020): γ/2·E‖∇D(x)‖², every r1_interval steps, × interval."""
    real_in = plan.d_view(real).detach().requires_grad_(True)
    scores = state.discriminator(real_in, **plan.labels(real_y)).float()
    penalty = losses.r1_penalty(scores, real_in)
    state.opt_d.zero_grad(set_to_none=True)
    (plan.r1_weight / 2 * plan.r1_interval * penalty).backward()
    state.opt_d.step()


def g_update(state: "State", plan: Plan) -> dict[str, Tensor]:
    """One G step with D frozen: gradients flow through D (and the augmentation) into G."""
    state.discriminator.requires_grad_(False)
    z = sampling.noise(plan.batch_size, plan.latent_dim, state.noise_rng, state.noise_rng.device)
    fake_y = fake_labels(plan, state)
    with plan.autocast():
        fake = state.generator(z, **plan.labels(fake_y))
        scores = state.discriminator(plan.d_view(fake.float()), **plan.labels(fake_y)).float()
    loss_g = plan.loss.g_loss(scores)
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()
    state.discriminator.requires_grad_(True)
    if state.ema is not None:
        state.ema.update(state.generator)
    return {"loss_g": loss_g.detach()}


def train_step(state: "State", plan: Plan, batches: "Batches") -> dict[str, Tensor]:
    """d_steps D updates, lazy R1 when due, one G update. Returns detached scalars, still on the device."""
    if plan.decay_start < 1.0:  # from the step alone, so a resumed run continues the same schedule
        factor = plan.lr_factor(state.step)
        for optimizer, lr in ((state.opt_g, plan.lr_g), (state.opt_d, plan.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
    d_stats = [d_update(state, plan, *batches.draw(plan.batch_size)) for _ in range(plan.d_steps)]
    stats = {k: torch.stack([s[k] for s in d_stats]).mean() for k in d_stats[0]}
    if plan.r1_weight and state.step % plan.r1_interval == 0:
        r1_update(state, plan, *batches.draw(plan.batch_size))
    stats.update(g_update(state, plan))
    state.step += 1
    return stats
