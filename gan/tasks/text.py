"""text: G maps Gaussian noise and a caption to an image (text-to-image, GAN-CLS of Reed et al. 2016).

A batch holds images and one of each image's captions, as tokens (gan.text.tokenize, made in prepare).
G(z, caption) and D(x, caption) read the caption as one sentence vector (gan.models.text): by default
both read the text encoder of the image-text judge below, frozen once fitted (WordLlama's token vectors,
or, as the ablation, word vectors learned from the captions alone, with a small trained encoder on
top); with task.align_weight 0 each trains its own encoder by its own loss. D's loss is matching-aware:
besides G's output for the batch's captions, the real images beside another image's caption (the batch
rolled by one) count as fake, half and half (task.mismatch), so D must judge whether the picture fits the
words. G's objective
adds to the adversarial term a match term (task.align_weight): a frozen image-text judge, fitted on the
training pairs before the first step (gan.alignment, AttnGAN's DAMSM at the sentence level), asks each
generated image to pick its own caption among the batch's.
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
        self.align_weight = float(cfg.task.align_weight)
        self.terms = ("loss_adversarial", "loss_match") if self.align_weight else ()
        self.alignment: Any = None  # G's frozen image-text judge (gan.alignment), set by `align`
        self.inputs = {"text": {"encoder": cfg.task.encoder, "vocabulary": list(meta["text"]["vocabulary"]),
                                "dim": cfg.task.text_dim, "max_len": int(meta["text"]["max_len"]),
                                "align": bool(self.align_weight), "channels": int(meta["shape"][2])}}

    def align(self, cfg: Any, state: "State", prepared: Any, resumed: bool) -> dict[str, Any] | None:
        """Before the first step: fit G's image-text judge on the training pairs, then freeze it (a resumed
        run has it from its checkpoint). Returns the fit's numbers, or None when nothing was fitted."""
        if not self.align_weight:
            return None
        from gan import alignment
        from gan.runtime import generator_for

        self.alignment = state.generator.alignment
        if resumed:
            return None
        self.alignment.requires_grad_(True)
        device = next(state.generator.parameters()).device
        return alignment.fit(self.alignment, prepared.train_x, prepared.train_tokens, cfg.task.align_steps,
                             cfg.train.batch_size, generator_for(cfg.seed, "align", device))

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
        if not self.align_weight:
            return {"loss_g": adversarial}
        assert batch is not None and self.alignment is not None, "call align() before training"
        match = self.alignment.match_loss(fake.float(), batch.condition["y"])
        return {"loss_g": adversarial + self.align_weight * match, "loss_adversarial": adversarial,
                "loss_match": match}

    def model_inputs(self) -> dict[str, Any]:
        return self.inputs
