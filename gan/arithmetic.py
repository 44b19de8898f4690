"""Arithmetic on latent points (Radford et al. 2016, section 6.3): averages of latents that share a trait,
added and subtracted, land on a latent with the combined trait.

Two kinds of traits, both read off G's own samples:
- **classes**, as the domain classifier (models/evaluator.pt) calls them: the mean latent of the
  samples it calls "7", minus that of "1", plus that of "4";
- **attributes** measured on the pixels: stroke thickness (the share of ink) and slant (the ink's
  second-order moment mu11 / mu02, positive when the strokes lean right). A direction is the mean
  latent of the top quarter of samples by the attribute minus that of the bottom quarter; walking
  a latent along it changes the attribute and little else.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from gan import sampling
from gan.errors import UserError
from gan.strokes import ATTRIBUTES, attributes  # the measures `gan arithmetic` walks
from gan.images import to_stored
from gan.runtime import generator_for

WALK = (-2.0, -1.0, 0.0, 1.0, 2.0)  # steps along a unit of a direction (its length: top minus bottom quarter)


def direction(z: torch.Tensor, values: np.ndarray, share: float = 0.25) -> torch.Tensor:
    """Mean latent of the top `share` of samples by `values` minus that of the bottom `share`: (D,)."""
    order = np.argsort(values)
    k = max(1, int(len(order) * share))
    low, high = torch.as_tensor(order[:k]), torch.as_tensor(order[-k:])
    return z[high].mean(0) - z[low].mean(0)


def parse(expression: str) -> list[tuple[int, int]]:
    """"7 - 1 + 4" -> [(+1, 7), (-1, 1), (+1, 4)]."""
    tokens = re.fullmatch(r"\s*\d+(\s*[-+]\s*\d+)*\s*", expression)
    if not tokens:
        raise UserError(f"--expr {expression!r}: write classes joined by + and -, e.g. '7 - 1 + 4'")
    terms, sign = [], 1
    for token in re.findall(r"\d+|[-+]", expression):
        if token in "+-":
            sign = 1 if token == "+" else -1
        else:
            terms.append((sign, int(token)))
    return terms


class Explorer:
    """Samples of G from fixed latents, with what a trait analysis needs: the latents and the stored images."""

    def __init__(self, generator: torch.nn.Module, latent_dim: int, count: int, seed: int):
        self.generator, self.device = generator, torch.device("cpu")
        self.z = sampling.noise(count, latent_dim, generator_for(seed, "arithmetic", self.device), self.device)
        self.images = to_stored(self.draw(self.z))  # uint8 (N, H, W, C)
        if self.images.ndim != 4:
            raise UserError("latent arithmetic works on images; this generator draws 2-D points")
        self.traits = attributes(self.images)  # each attribute of each sample, read once

    def draw(self, z: torch.Tensor) -> torch.Tensor:
        return sampling.sample(self.generator, z, 500)

    def walks(self, name: str, bases: int = 4) -> tuple[torch.Tensor, np.ndarray]:
        """G along the direction of attribute `name` from `bases` latents: images (bases * len(WALK), C, H, W)
        and the attribute of each (bases, len(WALK))."""
        d = direction(self.z, self.traits[name])
        z = torch.stack([self.z[b] + t * d for b in range(bases) for t in WALK])
        images = self.draw(z)
        measured = attributes(to_stored(images))[name].reshape(bases, len(WALK))
        return images, measured

    def class_sum(self, logits: np.ndarray, expression: str, variations: int = 4,
                  confidence: float = 0.9) -> tuple[torch.Tensor, list[str]]:
        """Images of each term's mean latent and of their signed sum (plus small variations of it), and
        labels saying what each is."""
        probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1)
        top, calls = probs.max(1)
        rows, names, total = [], [], torch.zeros_like(self.z[0])
        for sign, cls in parse(expression):
            chosen = (calls == cls) & (top >= confidence)
            if int(chosen.sum()) < 3:
                raise UserError(f"--expr: the classifier calls only {int(chosen.sum())} of {len(self.z)} samples "
                                f"'{cls}' with confidence >= {confidence}; draw more (--samples) or pick other classes")
            mean = self.z[chosen].mean(0)
            rows.append(mean)
            names.append(f"{'+' if sign > 0 else '-'}{cls}")
            total = total + sign * mean
        rng = generator_for(0, "arithmetic-variations", self.device)
        noise = 0.25 * torch.randn(variations, total.numel(), generator=rng)
        z = torch.cat([torch.stack(rows), total[None], total[None] + noise])
        return self.draw(z), names + ["="] + ["~"] * variations


def save_figure(sections: list[tuple[str, torch.Tensor, int]], path) -> None:
    """One PNG: each section (title, images (N, C, H, W) in [-1, 1], images per row) as a titled grid."""
    plt = sampling.pyplot()
    grids = [(title, sampling.grid_array(images, per_row)) for title, images, per_row in sections]
    fig, axes = plt.subplots(len(grids), 1, figsize=(6, 2.2 * len(grids) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": [g.shape[0] for _, g in grids]})
    for ax, (title, grid) in zip(axes[:, 0], grids):
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attribute_sections(explorer: Explorer) -> tuple[list[tuple[str, torch.Tensor, int]], dict[str, np.ndarray]]:
    """The walks along each attribute's direction, and the attribute measured at each step (mean of the rows)."""
    sections, measured = [], {}
    for name in ATTRIBUTES:
        images, values = explorer.walks(name)
        measured[name] = values.mean(0)
        steps = ", ".join(f"{t:+g}" for t in WALK)
        sections.append((f"{name} direction, steps {steps}: {name} "
                         + " ".join(f"{v:.3f}" for v in measured[name]), images, len(WALK)))
    return sections, measured
