"""Text-conditional G and D: a sentence encoder (gan.text) in front of a vector-conditional network.

G(z, tokens) and D(x, tokens) take caption tokens (int64 (N, L), 0 = padding) where a class-conditional
pair takes labels, so the training step, the checkpoints and sampling hand them over as `y`. Each
network owns its encoder (the pretrained WordLlama token vectors stay frozen; the small layers on top
are trained by that network's loss, as the text embedding of GAN-CLS, Reed et al. 2016, is learned
with D), so nothing is shared between G and D's optimisers.
"""

from __future__ import annotations

import torch
from torch import nn


class TextConditioned(nn.Module):
    """`net(x, encoder(tokens))`: the sentence vector conditions the network's batch norm or projection."""

    def __init__(self, net: nn.Module, encoder: nn.Module):
        super().__init__()
        self.net, self.encoder = net, encoder
        self.num_classes = 0  # no class labels: the condition is text
        if hasattr(net, "latent_dim"):
            self.latent_dim = net.latent_dim

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None or y.dtype != torch.int64 or y.dim() != 2:
            raise ValueError("a text-conditional network takes caption tokens y: int64 (N, L), 0 = padding "
                             "(gan.text.tokenize)")
        return self.net(x, self.encoder(y))


def wrap(generator: nn.Module, discriminator: nn.Module, text: dict) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a vector-conditional architecture, each behind its own sentence encoder."""
    from gan.text import TextEncoder

    def encoder() -> nn.Module:
        return TextEncoder(text["encoder"], list(text["vocabulary"]), dim=int(text["dim"]))

    return TextConditioned(generator, encoder()), TextConditioned(discriminator, encoder())
