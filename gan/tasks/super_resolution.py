"""super_resolution: G maps a low-resolution image (antialiased bicubic ×2 or ×4 down) to the image.

SRResNet / SRGAN (Ledig et al. 2017) as BasicSR trains them: a residual G without batch norm that
upsamples with PixelShuffle, L1 content loss, and for the GAN an adversarial weight of 1e-3 to 5e-3.
SRGAN's D is unconditional: it judges the high-resolution image alone.
"""

from __future__ import annotations

from typing import Any

from gan.tasks.paired import Paired


class SuperResolution(Paired):
    name = "super_resolution"
    conditional_d = False

    def __init__(self, task_cfg: Any, meta: dict[str, Any]):
        super().__init__(task_cfg, meta)
        self.scale = int(task_cfg.scale)

    def model_inputs(self) -> dict[str, Any]:
        return {"scale": self.scale}
