"""Text-conditional G and D: a sentence encoder (gan.text) in front of a vector-conditional network.

G(z, tokens) and D(x, tokens) take caption tokens (int64 (N, L), 0 = padding) where a class-conditional
pair takes labels, so the training step, the checkpoints and sampling hand them over as `y`. With
task.align_weight > 0 (the default) both read the sentence vector of one frozen text encoder, the
image-text judge's (gan.alignment), fitted on the training pairs before the GAN starts, as GAN-CLS (Reed
et al. 2016) and AttnGAN condition on a pretrained text embedding. Without it each network trains its
own encoder by its own loss; on mnist5k those learned to read the attribute words and to drop the digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextConditioned(nn.Module):
    """`net(x, encoder(tokens))`: the sentence vector conditions the network's batch norm or projection."""

    def __init__(self, net: nn.Module, encoder: nn.Module, normalize: bool = False):
        super().__init__()
        self.net, self.encoder, self.normalize = net, encoder, normalize
        self.num_classes = 0  # no class labels: the condition is text
        if hasattr(net, "latent_dim"):
            self.latent_dim = net.latent_dim

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None or y.dtype != torch.int64 or y.dim() != 2:
            raise ValueError("a text-conditional network takes caption tokens y: int64 (N, L), 0 = padding "
                             "(gan.text.tokenize)")
        c = self.encoder(y)
        if self.normalize:  # a fixed encoder's vector on the sphere of radius sqrt(dim): unit-scale entries
            c = F.normalize(c, dim=1) * c.shape[1] ** 0.5
        return self.net(x, c)


def wrap(generator: nn.Module, discriminator: nn.Module, text: dict) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a vector-conditional architecture, each behind its own sentence encoder."""
    from gan.text import TextEncoder

    def encoder() -> nn.Module:
        return TextEncoder(text["encoder"], list(text["vocabulary"]), dim=int(text["dim"]))

    if not text.get("align"):
        return TextConditioned(generator, encoder()), TextConditioned(discriminator, encoder())
    # the frozen image-text judge (gan.alignment), fitted before the first step and carried by G: its text
    # encoder is G's and D's too (GAN-CLS and AttnGAN condition on a pretrained sentence embedding)
    from gan.alignment import Alignment, freeze

    judge = Alignment(int(text["channels"]), text["encoder"], list(text["vocabulary"]), int(text["dim"]))
    freeze(judge)
    g = TextConditioned(generator, judge.text, normalize=True)
    g.alignment = judge
    return g, TextConditioned(discriminator, judge.text, normalize=True)
