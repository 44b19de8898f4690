"""One training step as phases: D main (d_steps times, G frozen), D regularisation (lazy R1),
G main (D frozen, on the last D step's samples), then the EMA of G. The maths of each objective stays in gan.losses; the
task (gan.tasks) says what a batch holds, what G takes, what D sees beside an image and G's other loss terms; this
module only decides what D sees (augmented, packed) and in which precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import torch

from torch import nn

from gan import catalog, losses
from gan.augment import DiffAugment
from gan.distributed import SINGLE, World
from gan.stabilizers import pack, unpack
from gan.tasks import Batch, Task

if TYPE_CHECKING:
    from gan.state import Batches, State

Tensor = torch.Tensor


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What params.yaml asks of each step, resolved once."""

    task: Task  # what a batch holds, what G takes, what D sees beside the image, G's other loss terms
    loss: losses.Loss
    batch_size: int  # this process's share of train.batch_size
    d_steps: int
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
    world: World = SINGLE  # the training processes
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
              world: World = SINGLE, task: Task | None = None) -> Plan:
    """The step's plan; without `task`, generation (conditional on `num_classes` classes when > 0)."""
    t = cfg.train
    if task is None:
        from gan.tasks.generation import Generation

        task = Generation.from_config(cfg, num_classes)
    loss = losses.LOSSES[t.loss]
    precision = resolve_precision(cfg, device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
    return Plan(task=task, loss=loss, batch_size=world.share(t.batch_size), d_steps=t.d_steps, augment=augment,
                pack=t.pack, gp_weight=t.gp_weight if loss.uses_gradient_penalty else 0.0, r1_weight=t.r1_weight,
                r1_interval=t.r1_interval, autocast=autocast, channels_last=uses_channels_last(cfg, device),
                lr_g=t.lr_g, lr_d=t.lr_d, total_steps=t.steps, decay_start=t.lr_decay_start, precision=precision,
                world=world, compiled={} if t.compile else None)


# G's output (with G's graph), what D sees beside it, and the batch it was made from
Fakes = tuple[Tensor, dict[str, Tensor], Batch | None]


def d_update(state: "State", plan: Plan, batch: Batch, keep: bool = False) -> tuple[dict[str, Tensor], Fakes | None]:
    """One D step with G frozen: D sees G's output detached.

    With `keep` the output is made with G's graph and returned, and the G step that follows
    reuses it (as the DCGAN reference loop does) instead of running G a second time.
    """
    fake, fake_condition = plan.task.fake(state, plan, batch, graph=keep)
    stats = d_update_on(state, plan, batch.real, batch.condition, fake.detach().float(), fake_condition,
                        batch.mismatch)
    return stats, ((fake, fake_condition, batch) if keep else None)


def d_update_on(state: "State", plan: Plan, real: Tensor, real_condition: dict[str, Tensor] | None, fake: Tensor,
                fake_condition: dict[str, Tensor] | None,
                mismatch: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The D step on given reals and fakes; with several processes the gradients are averaged over them.

    `mismatch` (GAN-CLS, Reed et al. 2016): the reals beside conditions that do not match them count as
    fake too, half and half with G's output, so D judges the pair and not the image alone."""
    real_condition, fake_condition = real_condition or {}, fake_condition or {}
    real_in, fake_in = plan.d_view(real), plan.d_view(fake)
    discriminator = plan.net(state.discriminator)
    with plan.autocast():
        real_scores = discriminator(real_in, **real_condition).float()
        fake_scores = discriminator(fake_in, **fake_condition).float()
        wrong = discriminator(real_in, **mismatch).float() if mismatch else None
    loss_d = plan.loss.d_loss(real_scores, fake_scores if wrong is None else torch.cat([fake_scores, wrong]))
    total = loss_d
    if plan.gp_weight:  # in fp32: a penalty on gradients is too fine for bf16
        def critic(x: Tensor, **kw: Tensor) -> Tensor:
            return state.discriminator(pack(x, plan.pack), **kw)

        penalty = losses.gradient_penalty(critic, unpack(real_in, plan.pack), unpack(fake_in, plan.pack),
                                          state.penalty_rng, **real_condition)
        total = total + plan.gp_weight * penalty
    state.opt_d.zero_grad(set_to_none=True)
    total.backward()
    plan.world.average_gradients(state.discriminator)
    state.opt_d.step()
    readout = plan.loss.readout
    return {"loss_d": loss_d.detach(), "d_real": readout(real_scores.detach()).mean(),
            "d_fake": readout(fake_scores.detach()).mean()}


def r1_update(state: "State", plan: Plan, batch: Batch) -> None:
    """Lazy R1 (Mescheder et al. 2018; Karras et al. 2020): γ/2·E‖∇D(x)‖², every r1_interval steps, × interval."""
    real_in = plan.d_view(batch.real).detach().requires_grad_(True)
    scores = state.discriminator(real_in, **batch.condition).float()  # fp32, eager: a penalty on gradients
    penalty = losses.r1_penalty(scores, real_in)
    state.opt_d.zero_grad(set_to_none=True)
    (plan.r1_weight / 2 * plan.r1_interval * penalty).backward()
    plan.world.average_gradients(state.discriminator)
    state.opt_d.step()


def g_update(state: "State", plan: Plan, fakes: Fakes | None = None) -> dict[str, Tensor]:
    """One G step with D frozen: gradients flow through D (and the augmentation) into G.

    `fakes`: the last D step's output, with G's graph; without them G draws anew (generation only:
    a paired task's G needs a batch's sources). The task adds its other terms to the adversarial one.
    """
    trainable = [p for p in state.discriminator.parameters() if p.requires_grad]  # a frozen part stays frozen
    for parameter in trainable:
        parameter.requires_grad_(False)
    fake, condition, batch = fakes if fakes is not None else (*plan.task.fake(state, plan, None, graph=True), None)
    with plan.autocast():
        scores = plan.net(state.discriminator)(plan.d_view(fake.float()), **condition).float()
    # feature matching compares D's activations for output and target, both unaugmented (the same view)
    terms = plan.task.g_loss(plan.loss.g_loss(scores), fake, batch,
                             features=lambda x: state.discriminator.features(x.float(), **condition))
    state.opt_g.zero_grad(set_to_none=True)
    terms["loss_g"].backward()
    plan.world.average_gradients(state.generator)
    state.opt_g.step()
    for parameter in trainable:
        parameter.requires_grad_(True)
    if state.ema is not None:
        state.ema.update(state.generator)
    return {k: v.detach() for k, v in terms.items()}


def train_step(state: "State", plan: Plan, batches: "Batches") -> dict[str, Tensor]:
    """d_steps D updates, lazy R1 when due, one G update. Returns detached scalars, still on the device."""
    if plan.decay_start < 1.0:  # from the step alone, so a resumed run continues the same schedule
        factor = plan.lr_factor(state.step)
        for optimizer, lr in ((state.opt_g, plan.lr_g), (state.opt_d, plan.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
    d_stats, fakes = [], None
    for i in range(plan.d_steps):
        stats, fakes = d_update(state, plan, plan.task.draw(batches, plan.batch_size), keep=i == plan.d_steps - 1)
        d_stats.append(stats)
    stats = {k: torch.stack([s[k] for s in d_stats]).mean() for k in d_stats[0]}
    if plan.r1_weight and state.step % plan.r1_interval == 0:
        r1_update(state, plan, plan.task.draw(batches, plan.batch_size))
    stats.update(g_update(state, plan, fakes))
    state.step += 1
    return plan.world.average_stats(stats)
