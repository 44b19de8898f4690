"""Registry of architectures: a name maps to a builder of (generator, discriminator).

Adding an architecture is one entry in ARCHITECTURES. Every discriminator returns raw
scores (logits, shape (N,)); the loss decides how to read them (sigmoid for the classic
GAN), which keeps the maths in one place and numerically stable. Every builder also makes
class-conditional pairs (num_classes > 0), a D that reads `pack` samples at once (PacGAN,
Lin et al. 2018), and a D ready for spectral normalisation (no batch norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gan import catalog, checkpoint, stabilizers
from gan.errors import one_line
from gan.models import dcgan, mlp, pix2pix, resnet, srresnet
from gan.models.latent import ComponentLatent, WithComponents


@dataclass(frozen=True)
class Architecture:
    # (data_shape, latent_dim, width, *, num_classes, pack, spectral_norm, **spec.options) -> (G, D)
    build: Callable[..., tuple[nn.Module, nn.Module]]
    about: str
    spec: catalog.ArchitectureSpec  # what params validation knows: data kinds, image sizes, D's batch norm


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(mlp.build, "fully connected; for 2-D data and quick tests", catalog.ARCHITECTURES["mlp"]),
    "dcgan": Architecture(dcgan.build, "Radford et al. 2016", catalog.ARCHITECTURES["dcgan"]),
    "resnet": Architecture(resnet.build, "SNGAN's 32x32 CIFAR-10 ResNet, Miyato et al. 2018 (after Gulrajani et al. "
                           "2017)", catalog.ARCHITECTURES["resnet"]),
    "unet": Architecture(pix2pix.build, "pix2pix's U-Net G and PatchGAN D, Isola et al. 2017 (task translation)",
                         catalog.ARCHITECTURES["unet"]),
    "srresnet": Architecture(srresnet.build, "SRResNet G (Ledig et al. 2017, as BasicSR's MSRResNet) and a PatchGAN D "
                             "(task super_resolution)", catalog.ARCHITECTURES["srresnet"]),
}


# what generators saved before model options existed were built with
_LEGACY_OPTIONS: dict[str, dict[str, Any]] = {
    "mlp": {"depth": 3, "d_depth": 3, "g_norm": "none", "d_activation": "leaky_relu"},
    "dcgan": {"upsample": "transposed"},
}


def build(arch: str, data_shape: tuple[int, ...], latent_dim: int, width: int, *, num_classes: int = 0,
          pack: int = 1, spectral_norm: bool = False, options: dict[str, Any] | None = None,
          latent_components: int = 0, task_inputs: dict[str, Any] | None = None) -> tuple[nn.Module, nn.Module]:
    """Build (generator, discriminator) for samples of `data_shape`: (2,) or (H, W, C).

    num_classes > 0: G(z, y) and D(x, y) are class-conditional. pack > 1: D reads `pack`
    samples stacked on channels (features for points) and gives one score per stack; the
    trainer stacks them with gan.stabilizers.pack. spectral_norm: every weight of D is
    spectrally normalised (Miyato et al. 2018), and D is built without batch norm. options: the
    architecture's own keys (ModelConfig.options(), e.g. the MLP's depth or DCGAN's upsample);
    any it does not read is an error. latent_components > 0: G reads z through a discrete
    latent of that many components (gan.models.latent), for every architecture.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch]
    if num_classes < 0 or pack < 1:
        raise ValueError(f"need num_classes >= 0 and pack >= 1, got num_classes={num_classes}, pack={pack}")
    if num_classes and pack > 1:
        raise ValueError(f"a packed D (pack={pack}) cannot be conditional (num_classes={num_classes}): "
                         f"the samples of one pack carry different labels; use pack: 1 or an unconditional model")
    options = dict(options or {})
    unknown = set(options) - set(spec.spec.options)
    if unknown:
        raise ValueError(f"model.arch={arch} does not read {', '.join(sorted(unknown))}; it reads "
                         f"{', '.join(spec.spec.options) or 'no options'}")
    latent = ComponentLatent(latent_dim, latent_components) if latent_components else None
    inputs = dict(task_inputs or {})
    text = inputs.pop("text", None)  # text-to-image: a vector-conditional pair behind sentence encoders
    if text:
        num_classes, inputs["vector"] = int(text["dim"]), True
    generator, discriminator = spec.build(tuple(data_shape), latent.out_dim if latent else latent_dim, width,
                                          num_classes=num_classes, pack=pack, spectral_norm=spectral_norm, **options,
                                          **inputs)
    if text:
        from gan.models.text import wrap

        generator, discriminator = wrap(generator, discriminator, text)
    if latent is not None:
        generator = WithComponents(generator, latent)
    if spectral_norm:
        stabilizers.apply_spectral_norm(discriminator)
    return generator, discriminator


def save_generator(generator: nn.Module, cfg: Any, data_meta: dict[str, Any], step: int, path: Path,
                   task_inputs: dict[str, Any] | None = None) -> None:
    """The trained G as a state dict plus what rebuilds it: the DVC output that generate reads."""
    num_classes = data_meta["num_classes"] if getattr(cfg.model, "conditional", False) else 0
    if getattr(generator, "num_classes", num_classes) != num_classes:
        raise ValueError(f"the generator has num_classes={generator.num_classes} but the config and data say "
                         f"{num_classes}; it would not load back")
    entry = {
        "data_shape": list(data_meta["shape"]), "latent_dim": cfg.model.latent_dim, "width": cfg.model.width,
        "num_classes": num_classes, "options": cfg.model.options(),
        "latent_components": generator.latent.components if isinstance(generator, WithComponents) else 0,
        "state_dict": generator.state_dict(),
        "step": step,
        "data_sha256": data_meta["sha256"], "data_kind": data_meta["kind"],
    }
    task = getattr(getattr(cfg, "task", None), "name", "generation")
    if task != "generation":  # generation's file stays as it was
        entry.update(task=task, task_inputs=dict(task_inputs or {}))
        if "source_shape" in data_meta:  # a paired task's input
            entry["source_shape"] = list(data_meta["source_shape"])
    rebuilt, _ = build(cfg.model.arch, tuple(data_meta["shape"]), cfg.model.latent_dim, cfg.model.width,
                       num_classes=num_classes, options=entry["options"],
                       latent_components=entry["latent_components"], task_inputs=entry.get("task_inputs"))
    try:
        rebuilt.load_state_dict(entry["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"the generator does not match the config's model ({one_line(exc, 300)}); "
                         f"it would not load back") from None
    checkpoint.save_atomic({"version": checkpoint.FORMAT_VERSION, "kind": "generator", "arch": cfg.model.arch,
                            **entry}, path)


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained generator, in eval mode, and its metadata (files from before conditioning: unconditional)."""
    saved = checkpoint.load(path, "generator", "run `dvc repro train` to write it")
    saved.setdefault("num_classes", 0)
    saved.setdefault("options", _LEGACY_OPTIONS.get(saved["arch"], {}))
    saved.setdefault("latent_components", 0)
    saved.setdefault("task", "generation")
    generator, _ = build(saved["arch"], tuple(saved["data_shape"]), saved["latent_dim"], saved["width"],
                         num_classes=saved["num_classes"], options=saved["options"],
                         latent_components=saved["latent_components"], task_inputs=saved.get("task_inputs"))
    generator.load_state_dict(saved["state_dict"])
    return generator.to(device).eval(), saved
