"""The paired tasks' shared objective: G maps a source image to an image, judged against its target.

G's loss is adversarial_weight · L_adv + content_weight · L1(G(source), target) [+ feature_weight ·
L_FM]: pix2pix's L_cGAN + λ·L1 with λ = 100 (Isola et al. 2017, eq. 4), or SRGAN's content loss with an
adversarial weight of 1e-3 (Ledig et al. 2017, eq. 3, L1 as in BasicSR's ESRGAN configs). Either weight
may be 0: the content-only and adversarial-only rows of the tables. L_FM is the perceptual term that
needs no downloaded network: the L1 distance between D's activations for the output and for its target,
averaged over D's layers (feature matching as in pix2pixHD, Wang et al. 2018), in place of SRGAN's VGG
loss. Each term is reported, unweighted, beside the total. G takes no latent: pix2pix's noise is the
dropout in its U-Net.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from gan.tasks import Batch, Task

if TYPE_CHECKING:
    from gan.state import Batches, State
    from gan.updates import Plan

Tensor = torch.Tensor


class Paired(Task):
    conditional_d = False  # D sees the source beside the image (pix2pix) or the image alone (SRGAN)

    def __init__(self, task_cfg: Any, meta: dict[str, Any]):
        self.content_weight = float(task_cfg.content_weight)
        self.adversarial_weight = float(task_cfg.adversarial_weight)
        self.feature_weight = float(task_cfg.feature_weight)
        self.terms = ("loss_adversarial", "loss_content") + (("loss_features",) if self.feature_weight else ())
        self.source_shape = tuple(meta["source_shape"])  # (h, w, c) of the stored sources
        self.shape = tuple(meta["shape"])  # (H, W, C) of the targets

    def draw(self, batches: "Batches", count: int) -> Batch:
        drawn = batches.draw(count)
        source = drawn["source"]
        return Batch(drawn["x"], {"source": source} if self.conditional_d else {}, source)

    def fake(self, state: "State", plan: "Plan", batch: Batch | None, graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        if batch is None or batch.source is None:
            raise ValueError(f"task {self.name}: G needs the sources of a batch")
        with torch.set_grad_enabled(graph), plan.autocast():
            return plan.net(state.generator)(batch.source), batch.condition

    def g_loss(self, adversarial: Tensor, fake: Tensor, batch: Batch | None,
               features: Callable[[Tensor], list[Tensor]] | None = None) -> dict[str, Tensor]:
        assert batch is not None
        content = (fake.float() - batch.real).abs().mean()
        total = self.adversarial_weight * adversarial + self.content_weight * content
        terms = {"loss_adversarial": adversarial, "loss_content": content}
        if self.feature_weight:
            assert features is not None
            with torch.no_grad():
                real = features(batch.real)
            matched = torch.stack([(f.float() - r.float()).abs().mean() for f, r in zip(features(fake), real)]).mean()
            total = total + self.feature_weight * matched
            terms["loss_features"] = matched
        return {"loss_g": total, **terms}
