"""What a training run holds: the state a checkpoint saves, and the training data on the device.

gan.training builds both and runs the loop; gan.updates takes a step on them. They live here,
apart from both, so that neither module imports the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gan import checkpoint, sampling
from gan.distributed import SINGLE, World
from gan.ema import EMA
from gan.images import to_tensor


@dataclass
class State:
    """Everything a resume needs; `to_dict`/`load_dict` are the checkpoint format."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    index_rng: torch.Generator  # which real samples form each batch
    noise_rng: torch.Generator  # the latents (and requested classes) of each step
    augment_rng: torch.Generator  # DiffAugment's draws
    penalty_rng: torch.Generator  # the interpolation weights of the gradient penalty
    fixed_z: torch.Tensor  # latents of the sample grids, the same all run long
    fixed_y: torch.Tensor | None = None  # their classes, one row per class, when conditional
    ema: EMA | None = None  # the EMA of G; sampling, scores and the logged model use it when on
    step: int = 0
    history: list[list[float]] = field(default_factory=list)  # rows of [step, *columns]
    eval_history: list[list[float]] = field(default_factory=list)  # rows of [step, *scores during training]
    run_id: str | None = None
    world: World = SINGLE  # the training processes; this state is rank world.rank's
    resume_note: str = ""  # what a resume could not restore exactly (RNGs written on another device type)
    columns: tuple[str, ...] = ("loss_d", "loss_g", "d_real", "d_fake")  # of history: the task's (gan.tasks)

    @property
    def rngs(self) -> tuple[torch.Generator, ...]:
        return self.index_rng, self.noise_rng, self.augment_rng, self.penalty_rng

    def rng_states(self) -> list[dict[str, Any]]:
        """Every rank's RNG states, rank order (a collective: every rank calls it at each checkpoint)."""
        return self.world.gather(checkpoint.rng_state(*self.rngs))

    def to_dict(self, run_fingerprint: dict[str, Any], rng_states: list[dict[str, Any]] | None = None
                ) -> dict[str, Any]:
        """The checkpoint; `rng_states` is rng_states()'s answer, gathered from every rank."""
        ranks = rng_states or [checkpoint.rng_state(*self.rngs)]
        return {
            "version": checkpoint.FORMAT_VERSION,
            "fingerprint": json.dumps(run_fingerprint, sort_keys=True),
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": ranks[0],
            "rank_rng": ranks,  # one entry per process of a multi-process run
            "ema": self.ema.state_dict() if self.ema else {},
            "fixed_z": self.fixed_z.cpu(),
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, len(self.columns) + 1),
            "eval_history": torch.tensor(self.eval_history, dtype=torch.float64),
            "run_id": self.run_id or "",
        }

    def load_dict(self, saved: dict[str, Any]) -> None:
        self.generator.load_state_dict(saved["generator"])
        self.discriminator.load_state_dict(saved["discriminator"])
        self.opt_g.load_state_dict(saved["opt_g"])
        self.opt_d.load_state_dict(saved["opt_d"])
        ranks = saved.get("rank_rng") or [saved["rng"]]
        self.resume_note = checkpoint.restore_rng(ranks[self.world.rank], *self.rngs, step=int(saved["step"]))
        if self.ema:
            self.ema.load_state_dict(saved["ema"])
        self.fixed_z = saved["fixed_z"].to(self.fixed_z.device)
        self.step = int(saved["step"])
        self.history = saved["history"].tolist()
        self.eval_history = saved["eval_history"].tolist()
        self.run_id = saved["run_id"] or None

    @property
    def sampler(self) -> nn.Module:
        """The generator to draw pictures and scores from: the EMA one (with its own BN statistics) when on."""
        return self.ema.sampler() if self.ema else self.generator

    def sample(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) in eval mode (batch-independent), leaving the trained G in train mode; a paired task's
        z is its sources (gan.tasks)."""
        generator = self.sampler
        generator.eval()
        out = sampling.sample(generator, z, y=y)
        self.generator.train()
        return out



class Batches:
    """The prepared training split held on the device, one tensor per named array; batches are index draws.

    The arrays are a task's (gan.tasks): `x` the images or points D sees as real, `y` the labels of a
    conditional run, `source` a paired task's input of G. Indices come uniformly with replacement from a
    dedicated torch.Generator whose state is in the checkpoint, so a resumed run draws the same batches
    it would have drawn; every array of a batch is indexed by the same draw.
    """

    def __init__(self, train_x: Any, kind: str, device: torch.device, rng: torch.Generator, train_y: Any = None,
                 source: Any = None, tokens: Any = None):
        self.data = torch.as_tensor(train_x).to(device)  # uint8 (N, H, W, C) or float32 (N, 2)
        self.labels = torch.as_tensor(train_y).to(device) if train_y is not None else None  # (N,) int64
        self.source = torch.as_tensor(source).to(device) if source is not None else None  # uint8 (N, h, w, c)
        self.tokens = torch.as_tensor(tokens).to(device) if tokens is not None else None  # int64 (N, K, L) captions
        self.images = kind == "images"
        self.rng = rng

    def __len__(self) -> int:
        return len(self.data)

    def draw(self, batch_size: int) -> dict[str, torch.Tensor]:
        """{"x": (B, C, H, W) in [-1, 1] or (B, 2)}, with "y" (B,) labels, "source" (B, c, h, w) and "tokens"
        (B, L) (one caption of each image) when kept."""
        idx = torch.randint(len(self.data), (batch_size,), generator=self.rng, device=self.rng.device)
        batch = self.data[idx]
        drawn = {"x": to_tensor(batch, batch.device) if self.images else batch}
        if self.labels is not None:
            drawn["y"] = self.labels[idx]
        if self.source is not None:
            drawn["source"] = to_tensor(self.source[idx], batch.device)
        if self.tokens is not None:  # one of each image's K captions, drawn after the indices
            pick = torch.randint(self.tokens.shape[1], (batch_size,), generator=self.rng, device=self.rng.device)
            drawn["tokens"] = self.tokens[idx, pick]
        return drawn
