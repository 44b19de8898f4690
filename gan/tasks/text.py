"""text: G maps Gaussian noise and a caption to an image (text-to-image, GAN-CLS of Reed et al. 2016).

A batch holds images and one of each image's captions, as tokens (gan.text.tokenize, made in prepare).
G(z, caption) and D(x, caption) read the caption through their own sentence encoders (gan.models.text):
frozen pretrained WordLlama token vectors with a small trained encoder on top, or, as the ablation,
word vectors learned from the captions alone. D's loss is matching-aware: besides G's output for the
batch's captions, the real images beside another image's caption (the batch rolled by one) count as
fake, half and half (task.mismatch), so D must judge whether the picture fits the words. G's objective
is the adversarial term alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from gan import sampling
from gan.tasks import Batch, Task

if TYPE_CHECKING:
    from gan.state import Batches, State
    from gan.updates import Plan

Tensor = torch.Tensor


class TextToImage(Task):
    name = "text"

    def __init__(self, cfg: Any, meta: dict[str, Any]):
        self.latent_dim = cfg.model.latent_dim
        self.mismatch = cfg.task.mismatch
        self.inputs = {"text": {"encoder": cfg.task.encoder, "vocabulary": list(meta["text"]["vocabulary"]),
                                "dim": cfg.task.text_dim, "max_len": int(meta["text"]["max_len"])}}

    def draw(self, batches: "Batches", count: int) -> Batch:
        drawn = batches.draw(count)
        tokens = drawn["tokens"]
        return Batch(drawn["x"], {"y": tokens}, mismatch={"y": tokens.roll(1, 0)} if self.mismatch else {})

    def fake(self, state: "State", plan: "Plan", batch: Batch | None, graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """G(z, caption) for fresh latents and the batch's own captions."""
        if batch is None:
            raise ValueError("text-to-image: G's output needs a batch's captions; pass the batch")
        rng = state.noise_rng
        z = sampling.noise(len(batch.real), self.latent_dim, rng, rng.device)
        with torch.set_grad_enabled(graph), plan.autocast():
            return plan.net(state.generator)(z, **batch.condition), batch.condition

    def g_loss(self, adversarial: Tensor, fake: Tensor, batch: Batch | None,
               features: Callable[[Tensor], list[Tensor]] | None = None) -> dict[str, Tensor]:
        return {"loss_g": adversarial}

    def model_inputs(self) -> dict[str, Any]:
        return self.inputs
