"""The pieces that make a G and a D conditional, shared by every architecture.

G takes the label through class-conditional batch norm; D through a projection head
(Miyato & Koyama 2018). Unconditional models use the same pieces with num_classes=0, so
one code path serves both and an unconditional model keeps its plain layers and names.

The condition can also be a vector (a sentence embedding, gan.text): then `num_classes` is the
vector's size and `vector=True`; the per-class lookups become linear maps of the vector (FiLM,
Perez et al. 2018, in the batch norm; the projection D's embedding of a sentence, as in the
text-conditional projection discriminators), starting where the class versions start.
"""

from __future__ import annotations

import torch
from torch import nn


def check_labels(y: torch.Tensor | None, num_classes: int, who: str) -> None:
    """Labels must come exactly when the model is conditional: a silent mismatch trains the wrong model."""
    if num_classes == 0 and y is not None:
        raise ValueError(f"the {who} is unconditional (num_classes=0) but was given labels; "
                         f"build it with num_classes > 0 (model.conditional: true) or pass y=None")
    if num_classes > 0 and y is None:
        raise ValueError(f"the {who} is conditional on {num_classes} classes: pass labels y, "
                         f"an int64 tensor (N,) with values in [0, {num_classes})")


class VectorEmbedding(nn.Module):
    """What nn.Embedding is for a class, for a condition vector c (N, D): offset + c @ weight -> (N, F).

    A plain module, not nn.Linear, so that the architectures' own inits (N(0, 0.02) on every Linear)
    leave its start alone: weight `scale`-initialised (0: the layer starts at `offset` for any c)."""

    def __init__(self, dim: int, features: int, offset: float | None = None, scale: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim, features))
        if scale:
            nn.init.xavier_uniform_(self.weight, gain=scale)
        self.offset = nn.Parameter(torch.full((features,), offset)) if offset is not None else None

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        out = c @ self.weight
        return out + self.offset if self.offset is not None else out


def embedding(num_classes: int, features: int, vector: bool, start: float | None) -> nn.Module:
    """A per-class lookup, or its linear analogue for a condition vector of size num_classes."""
    if vector:
        return VectorEmbedding(num_classes, features, offset=start, scale=0.0 if start is not None else 1.0)
    table = nn.Embedding(num_classes, features)
    if start is None:
        nn.init.xavier_uniform_(table.weight)  # N(0, 1), torch's default, gives huge early scores
    else:
        nn.init.constant_(table.weight, start)
    return table


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose affine gain and bias are looked up per class: γ_y · BN(x) + β_y.

    Conditional batch norm of de Vries et al. 2017 ("Modulating early visual processing by
    language") and Dumoulin et al. 2017 (conditional instance norm), as used in the cGAN with
    projection D of Miyato & Koyama 2018. Gains start at 1 and biases at 0, so an untrained
    layer is plain batch norm and every class starts from the same generator.
    """

    def __init__(self, num_features: int, num_classes: int, vector: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.gain = embedding(num_classes, num_features, vector, start=1.0)
        self.bias = embedding(num_classes, num_features, vector, start=0.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain = self.gain(y)[:, :, None, None]  # (N, C) -> (N, C, 1, 1)
        bias = self.bias(y)[:, :, None, None]
        return gain * self.norm(x) + bias  # (N, C, H, W)


def batch_norm(num_features: int, num_classes: int, vector: bool = False) -> nn.Module:
    """Plain BatchNorm2d for an unconditional G, ConditionalBatchNorm2d for a conditional one."""
    if not num_classes:
        return nn.BatchNorm2d(num_features)
    return ConditionalBatchNorm2d(num_features, num_classes, vector)


def with_labels(module: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """module(x, y) for a class-conditional layer, module(x) for any other."""
    return module(x, y) if isinstance(module, ConditionalBatchNorm2d) else module(x)


class ConditionalSequential(nn.Sequential):
    """nn.Sequential that hands the labels to its conditional layers (same state-dict keys)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        for module in self:
            x = with_labels(module, x, y)
        return x


class ProjectionHead(nn.Linear):
    """D's last layer: score = ψ(φ) + ⟨embed(y), φ⟩, with φ (N, F) D's final feature vector.

    The projection discriminator of Miyato & Koyama 2018 ("cGANs with Projection
    Discriminator", eq. 3): ψ is a linear map to one logit and the class enters as an inner
    product with a learned class embedding. With num_classes=0 it is exactly nn.Linear(F, 1),
    so unconditional discriminators keep their parameters and state-dict keys.
    """

    def __init__(self, feature_dim: int, num_classes: int = 0, vector: bool = False):
        super().__init__(feature_dim, 1)
        self.num_classes = num_classes
        self.embed = embedding(num_classes, feature_dim, vector, start=None) if num_classes else None

    def forward(self, features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(y, self.num_classes, "discriminator")
        score = super().forward(features).squeeze(1)  # (N, F) -> (N,)
        if self.embed is not None:
            score = score + (self.embed(y) * features).sum(1)  # (N,) projection term
        return score
