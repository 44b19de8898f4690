"""Tasks: what G maps from and to, and how its output is judged. The training loop does not know which.

A task owns what differs between noise -> image and image -> image:
- the named arrays of a training batch (`x` the images D sees as real, `y` labels, `source` G's input);
- what G takes (latents, or a source image) and what D sees beside the image (labels, the source);
- G's objective as named terms (the adversarial term, plus e.g. λ·L1), which become its loss columns;
- the builder keywords its architectures need from the data (the source's channels, the scale);
- its metrics and figures (gan.tasks.scoring), beside the baseline computed by the same code.

Checkpoints, resume, the divergence guard, processes, precision, tracking and the registry are one
implementation for every task. Adding a task (say colourisation with its own objective) is one module
here with a subclass of Task, its name in `make_task` and gan.catalog.TASKS, and its architecture's
`task` in gan.catalog.ARCHITECTURES; a new source for translation is one function in gan.pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from gan.state import Batches, State
    from gan.updates import Plan

Tensor = torch.Tensor

BASE_COLUMNS = ("loss_d", "loss_g", "d_real", "d_fake")  # every task reports these, in this order


@dataclass
class Batch:
    """One training batch as the step uses it."""

    real: Tensor  # what D is shown as real: (B, C, H, W) in [-1, 1], or (B, 2)
    condition: dict[str, Tensor] = field(default_factory=dict)  # D's other inputs: {"y": ...}, {"source": ...}
    source: Tensor | None = None  # a paired task's input of G, (B, c, h, w) in [-1, 1]
    mismatch: dict[str, Tensor] = field(default_factory=dict)  # D's inputs beside `real` that do not match it
    # (GAN-CLS: another image's caption); D learns to call such pairs fake


class Task:
    """The noise -> image behaviour lives in gan.tasks.generation; paired tasks in gan.tasks.paired."""

    name = ""
    terms: tuple[str, ...] = ()  # G's loss terms reported beside the total loss_g

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-step numbers of this task: history.tsv's columns, the curves and the divergence guard's."""
        return BASE_COLUMNS + self.terms

    def draw(self, batches: "Batches", count: int) -> Batch:
        raise NotImplementedError

    def fake(self, state: "State", plan: "Plan", batch: Batch | None, graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """G's output for a batch (with G's graph when `graph`), and what D sees beside it."""
        raise NotImplementedError

    def g_loss(self, adversarial: Tensor, fake: Tensor, batch: Batch | None,
               features: Callable[[Tensor], list[Tensor]] | None = None) -> dict[str, Tensor]:
        """G's total loss as "loss_g", and each of `terms` (unweighted), from the adversarial term; `features`
        gives D's activations for an image (beside the batch's condition), for a feature-matching term."""
        raise NotImplementedError

    def model_inputs(self) -> dict[str, Any]:
        """The keywords the architecture's builder needs from the data (gan.models.build's `task_inputs`)."""
        return {}


def make_task(cfg: Any, meta: dict[str, Any], num_classes: int = 0) -> Task:
    """The task of params.yaml for the prepared data of `meta`; `num_classes` > 0: a conditional generation."""
    from gan.tasks.generation import Generation
    from gan.tasks.super_resolution import SuperResolution
    from gan.tasks.translation import Translation

    name = cfg.task.name
    if name == "generation":
        return Generation.from_config(cfg, num_classes)
    if name == "text":
        from gan.tasks.text import TextToImage

        return TextToImage(cfg, meta)
    return {"translation": Translation, "super_resolution": SuperResolution}[name](cfg.task, meta)
