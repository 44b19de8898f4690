"""Changes to D that keep GAN training stable: spectral normalisation and PacGAN packing."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

SPECTRAL_NORM_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Divide the weight of every conv, linear and embedding layer in `module` by its spectral norm.

    Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral Normalization for Generative Adversarial
    Networks": W_SN = W / σ(W), σ estimated by one power iteration per forward pass in train
    mode, bounds each layer's Lipschitz constant by 1. Embeddings are included for the class
    embedding of projection discriminators. Layers already parametrized are left as they are,
    so applying it twice changes nothing. Works in place and returns `module`.
    """
    layers = [m for m in module.modules()  # listed first: wrapping adds submodules while iterating
              if isinstance(m, SPECTRAL_NORM_LAYERS) and not parametrize.is_parametrized(m, "weight")]
    for layer in layers:
        spectral_norm(layer)  # dim=1 for ConvTranspose2d, chosen by torch
    return module


def pack(x: torch.Tensor, pack: int) -> torch.Tensor:
    """PacGAN packing: D judges `pack` samples at once, concatenated along the feature axis.

    Lin, Khetan, Fanti & Oh 2018, "PacGAN: The power of two samples in generative adversarial
    networks". (N, C, H, W) -> (N/pack, pack·C, H, W); (N, D) -> (N/pack, pack·D). Consecutive
    samples form a pack: row k holds samples k·pack, ..., k·pack + pack − 1, in that order.
    """
    if pack < 1:
        raise ValueError(f"pack must be >= 1, got {pack}")
    if pack == 1:
        return x
    if x.dim() < 2:
        raise ValueError(f"pack takes a batch (N, ...) of samples with a feature axis; got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n % pack:
        raise ValueError(f"a batch of {n} samples does not split into packs of {pack}; "
                         f"make train.batch_size a multiple of train.pack")
    return x.reshape(n // pack, pack * x.shape[1], *x.shape[2:])  # samples are contiguous: a view when possible


def unpack(x: torch.Tensor, pack: int) -> torch.Tensor:
    """The inverse of `pack`: (N/pack, pack·C, ...) -> (N, C, ...), the samples in their original order.

    The gradient penalty needs it: it interpolates between reals and fakes sample by sample.
    """
    if pack == 1:
        return x
    return x.reshape(x.shape[0] * pack, x.shape[1] // pack, *x.shape[2:])
