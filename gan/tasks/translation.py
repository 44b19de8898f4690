"""translation: G maps a source image (edges, skeleton, thick strokes, or a masked image) to the image.

pix2pix (Isola et al. 2017): a U-Net G whose dropout is its noise, a conditional PatchGAN D that judges
the (source, image) pair, and λ·L1 to the target. The sources are derived from the dataset's images in
prepare (gan.pairs); `mask` is inpainting: the source is the image with a box blanked, plus the box as
its last channel, so that G (and the hole-only PSNR) knows where the hole is.
"""

from __future__ import annotations

from typing import Any

from gan.tasks.paired import Paired


class Translation(Paired):
    name = "translation"
    conditional_d = True

    def __init__(self, task_cfg: Any, meta: dict[str, Any]):
        super().__init__(task_cfg, meta)
        self.source = task_cfg.source

    def model_inputs(self) -> dict[str, Any]:
        return {"source_channels": int(self.source_shape[2])}
