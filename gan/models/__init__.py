"""Registry of architectures: a name maps to a builder of (generator, discriminator).

Adding an architecture is one entry in ARCHITECTURES. Every discriminator returns raw
scores (logits, shape (N,)); the loss decides how to read them (sigmoid for the classic
GAN), which keeps the maths in one place and numerically stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gan import checkpoint
from gan.models import dcgan, mlp


@dataclass(frozen=True)
class Architecture:
    build: Callable[..., tuple[nn.Module, nn.Module]]  # (data_shape, latent_dim, width) -> (G, D)
    data_kinds: tuple[str, ...]  # "images", "points"
    image_sizes: tuple[int, ...] = ()  # empty: any size
    about: str = ""


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(mlp.build, ("points", "images"), about="fully connected; for 2-D data and quick tests"),
    "dcgan": Architecture(dcgan.build, ("images",), (28, 32, 64), about="Radford et al. 2016"),
}


def build(arch: str, data_shape: tuple[int, ...], latent_dim: int, width: int) -> tuple[nn.Module, nn.Module]:
    """Build (generator, discriminator) for samples of `data_shape`: (2,) or (H, W, C)."""
    return ARCHITECTURES[arch].build(tuple(data_shape), latent_dim, width)


def save_generator(generator: nn.Module, cfg: Any, data_meta: dict[str, Any], step: int, path: Path) -> None:
    """The trained G as a state dict plus what rebuilds it: the DVC output that generate reads."""
    checkpoint.save_atomic({
        "version": checkpoint.FORMAT_VERSION, "kind": "generator", "arch": cfg.model.arch,
        "data_shape": list(data_meta["shape"]), "latent_dim": cfg.model.latent_dim, "width": cfg.model.width,
        "state_dict": generator.state_dict(), "step": step, "data_sha256": data_meta["sha256"],
        "data_kind": data_meta["kind"],
    }, path)


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained generator, in eval mode, and its metadata."""
    saved = checkpoint.load(path, "generator", "run `dvc repro train` to write it")
    generator, _ = build(saved["arch"], tuple(saved["data_shape"]), saved["latent_dim"], saved["width"])
    generator.load_state_dict(saved["state_dict"])
    return generator.to(device).eval(), saved
