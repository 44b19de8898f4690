"""One training step as phases: D main (d_steps times, G frozen), D regularisation (lazy R1),
G main (D frozen, on the last D step's samples), then the EMA of G. The maths of each objective stays in gan.losses; this
module only decides what D sees (augmented, packed, with labels) and in which precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import torch

from torch import nn

from gan import catalog, losses, sampling
from gan.augment import DiffAugment
from gan.distributed import SINGLE, World
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
    precision: str = "fp32"  # what train.precision resolved to: fp32 | bf16
    world: World = SINGLE  # the training processes; batch_size above is this process's share
    compiled: dict[int, Callable[..., Tensor]] | None = None  # id(module) -> torch.compile(module), train.compile

    def net(self, module: nn.Module) -> Callable[..., Tensor]:
        """The module to call in a step: its torch.compile wrapper under train.compile (same parameters)."""
        if self.compiled is None:
            return module
        key = id(module)
        if key not in self.compiled:
            self.compiled[key] = torch.compile(module)
        return self.compiled[key]

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


def resolve_precision(cfg: Any, device: torch.device) -> str:
    """train.precision as run: `auto` is bf16 for conv nets on CUDA and fp32 otherwise.

    On this project's CPU (a Xeon with AVX512-BF16, no AMX) bf16 autocast made the default DCGAN
    step slower, not faster (benchmarks/train_step.py), so auto keeps the CPU in fp32; `bf16` runs
    the same autocast code on the CPU when asked. 2-D points never get bf16 (config refuses it):
    its 8-bit mantissa rounds grid25's coordinates by a third of a mode's spread.
    """
    if cfg.train.precision != "auto":
        return cfg.train.precision
    convolutional = catalog.ARCHITECTURES[cfg.model.arch].convolutional
    return "bf16" if device.type == "cuda" and convolutional else "fp32"


def uses_channels_last(cfg: Any, device: torch.device) -> bool:
    """channels_last goes with bf16 on conv nets (tensor cores and oneDNN's bf16 kernels want NHWC)."""
    return resolve_precision(cfg, device) == "bf16" and catalog.ARCHITECTURES[cfg.model.arch].convolutional


def make_plan(cfg: Any, num_classes: int, augment: DiffAugment | None, device: torch.device,
              world: World = SINGLE) -> Plan:
    t = cfg.train
    loss = losses.LOSSES[t.loss]
    precision = resolve_precision(cfg, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
    return Plan(loss, world.share(t.batch_size), cfg.model.latent_dim, t.d_steps, num_classes, augment, t.pack,
                t.gp_weight if loss.uses_gradient_penalty else 0.0, t.r1_weight, t.r1_interval, autocast,
                uses_channels_last(cfg, device), t.lr_g, t.lr_d, t.steps, t.lr_decay_start, precision, world,
                {} if t.compile else None)


def fake_labels(plan: Plan, state: "State") -> Tensor | None:
    if not plan.num_classes:
        return None
    rng = state.noise_rng
    return torch.randint(plan.num_classes, (plan.batch_size,), generator=rng, device=rng.device)


Fakes = tuple[Tensor, Tensor | None]  # G's samples (with G's graph) and the classes they were asked for


def generate(state: "State", plan: Plan, graph: bool) -> Fakes:
    """A batch of G's samples from fresh latents; with `graph`, ready for G's backward."""
    z = sampling.noise(plan.batch_size, plan.latent_dim, state.noise_rng, state.noise_rng.device)
    fake_y = fake_labels(plan, state)
    with torch.set_grad_enabled(graph), plan.autocast():
        return plan.net(state.generator)(z, **plan.labels(fake_y)), fake_y


def d_update(state: "State", plan: Plan, real: Tensor, real_y: Tensor | None,
             keep: bool = False) -> tuple[dict[str, Tensor], Fakes | None]:
    """One D step with G frozen: D sees G's samples detached.

    With `keep` the samples are made with G's graph and returned, and the G step that follows
    reuses them (as the DCGAN reference loop does) instead of running G a second time.
    """
    fake, fake_y = generate(state, plan, graph=keep)
    stats = d_update_on(state, plan, real, real_y, fake.detach().float(), fake_y)
    return stats, ((fake, fake_y) if keep else None)


def d_update_on(state: "State", plan: Plan, real: Tensor, real_y: Tensor | None, fake: Tensor,
                fake_y: Tensor | None) -> dict[str, Tensor]:
    """The D step on given reals and fakes; with several processes the gradients are averaged over them."""
    real_in, fake_in = plan.d_view(real), plan.d_view(fake)
    discriminator = plan.net(state.discriminator)
    with plan.autocast():
        real_scores = discriminator(real_in, **plan.labels(real_y)).float()
        fake_scores = discriminator(fake_in, **plan.labels(fake_y)).float()
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
    plan.world.average_gradients(state.discriminator)
    state.opt_d.step()
    readout = plan.loss.readout
    return {"loss_d": loss_d.detach(), "d_real": readout(real_scores.detach()).mean(),
            "d_fake": readout(fake_scores.detach()).mean()}


def r1_update(state: "State", plan: Plan, real: Tensor, real_y: Tensor | None) -> None:
    """Lazy R1 (Mescheder et al. 2018; Karras et al. 2020): γ/2·E‖∇D(x)‖², every r1_interval steps, × interval."""
    real_in = plan.d_view(real).detach().requires_grad_(True)
    scores = state.discriminator(real_in, **plan.labels(real_y)).float()  # fp32, eager: a penalty on gradients
    penalty = losses.r1_penalty(scores, real_in)
    state.opt_d.zero_grad(set_to_none=True)
    (plan.r1_weight / 2 * plan.r1_interval * penalty).backward()
    plan.world.average_gradients(state.discriminator)
    state.opt_d.step()


def g_update(state: "State", plan: Plan, fakes: Fakes | None = None) -> dict[str, Tensor]:
    """One G step with D frozen: gradients flow through D (and the augmentation) into G.

    `fakes`: the last D step's samples, with G's graph; without them G draws a new batch.
    """
    state.discriminator.requires_grad_(False)
    fake, fake_y = fakes if fakes is not None else generate(state, plan, graph=True)
    with plan.autocast():
        scores = plan.net(state.discriminator)(plan.d_view(fake.float()), **plan.labels(fake_y)).float()
    loss_g = plan.loss.g_loss(scores)
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    plan.world.average_gradients(state.generator)
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
    d_stats, fakes = [], None
    for i in range(plan.d_steps):
        stats, fakes = d_update(state, plan, *batches.draw(plan.batch_size), keep=i == plan.d_steps - 1)
        d_stats.append(stats)
    stats = {k: torch.stack([s[k] for s in d_stats]).mean() for k in d_stats[0]}
    if plan.r1_weight and state.step % plan.r1_interval == 0:
        r1_update(state, plan, *batches.draw(plan.batch_size))
    stats.update(g_update(state, plan, fakes))
    state.step += 1
    return plan.world.average_stats(stats)
