"""The Inception-v3 feature extractor behind FID (and later IS), numerically equal to pytorch-fid's.

It is the network of TensorFlow's FID graph (inception-2015-12-05) rebuilt from torchvision's
blocks and loaded from pytorch-fid's weights file, so that our scores compare with published ones.
Cost: about 6 GFLOP per image at 299 px whatever the input size, so on a 2-core CPU embedding is
the slow part of an evaluation (~5 s wall, ~9 CPU-seconds per 100 images); a 10k-sample metric
wants a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.inception import (BasicConv2d, Inception3, InceptionA, InceptionAux, InceptionB,
                                          InceptionC, InceptionD, InceptionE)

from gan.checkpoint import file_sha256
from gan.errors import UserError, one_line
from gan.images import to_tensor

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_KEY = "evaluate.inception_weights"
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's softmax: ImageNet's 1000 classes plus 8 extra outputs
INPUT_SIZE = 299


class InceptionWeightsMissing(UserError):
    """The FID Inception weights file is in none of the places we look for it."""


# --- the network ---------------------------------------------------------------------------------
# TensorFlow's FID graph differs from torchvision's Inception-v3 only in the pool branches of the
# A, C and E blocks: TF's 3x3 average pool divides by the number of real (unpadded) pixels, and the
# last E block (Mixed_7c) max-pools there. The B and D blocks (Mixed_6a, Mixed_7a) are unchanged.

def _average_real_pixels(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that ignores the zero padding at the borders, as TF's avg_pool does."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _max_3x3(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class _TFInceptionA(InceptionA):
    """Mixed_5b..5d: (N, C_in, 35, 35) -> (N, 224 + pool_features, 35, 35)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_average_real_pixels(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], dim=1)


class _TFInceptionC(InceptionC):
    """Mixed_6b..6e: (N, 768, 17, 17) -> (N, 768, 17, 17), factorised 7x7 convolutions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = conv(double)
        pooled = self.branch_pool(_average_real_pixels(x))
        return torch.cat([self.branch1x1(x), single, double, pooled], dim=1)


class _TFInceptionE(InceptionE):
    """Mixed_7b/7c: (N, C_in, 8, 8) -> (N, 2048, 8, 8); `pool` picks the pool branch's operation."""

    def __init__(self, in_channels: int, pool: Literal["average", "max"] = "average") -> None:
        super().__init__(in_channels)
        self.pool = _average_real_pixels if pool == "average" else _max_3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        narrow = self.branch3x3_1(x)
        narrow = torch.cat([self.branch3x3_2a(narrow), self.branch3x3_2b(narrow)], dim=1)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        deep = torch.cat([self.branch3x3dbl_3a(deep), self.branch3x3dbl_3b(deep)], dim=1)
        pooled = self.branch_pool(self.pool(x))
        return torch.cat([self.branch1x1(x), narrow, deep, pooled], dim=1)


class FIDInceptionV3(Inception3):
    """torchvision's Inception3 with the TF pool branches; forward gives the 2048-d pool3 features.

    The parameter names are Inception3's, which are also the keys of pytorch-fid's weights file.
    """

    # The layers up to pool3, in order; Inception3's dropout and fc come after (see class_logits).
    TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
             "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
             "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")

    def __init__(self) -> None:
        # init_weights=False: the weights come from the file, and torchvision's init is slow.
        super().__init__(num_classes=NUM_CLASSES, aux_logits=False, init_weights=False,
                         inception_blocks=[BasicConv2d, _TFInceptionA, InceptionB, _TFInceptionC,
                                           InceptionD, _TFInceptionE, InceptionAux])
        self.Mixed_7c = _TFInceptionE(2048, pool="max")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """float (N, 1 or 3, H, W) in [-1, 1] -> pool3 features (N, 2048)."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"FIDInceptionV3 expects (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
        x = images.expand(-1, 3, -1, -1)  # grayscale: the same plane in R, G and B
        # pytorch-fid resizes with PyTorch's bilinear (not TF's), so we do too: equal numbers.
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        # Channels-last convolutions run ~1.6x faster on CPU (oneDNN); they differ from
        # pytorch-fid's NCHW ones by float32 rounding only (~1e-7 relative).
        x = x.contiguous(memory_format=torch.channels_last)
        for name in self.TRUNK:  # (N, 3, 299, 299) -> ... -> (N, 2048, 1, 1)
            x = getattr(self, name)(x)
        return x.flatten(1)  # (N, 2048)

    def class_logits(self, features: torch.Tensor, bias: bool) -> torch.Tensor:
        """pool3 features (N, 2048) -> (N, 1008) logits; dropout is the identity in eval mode.

        The original Inception Score code (Salimans et al. 2016, openai/improved-gan) multiplies
        pool3 by the softmax weight matrix without adding the bias, and torch-fidelity's IS does
        the same ('logits_unbiased'), so `bias=False` is the one that reproduces published IS.
        """
        return F.linear(features, self.fc.weight, self.fc.bias if bias else None)


# --- the weights file ----------------------------------------------------------------------------

def hub_weights_path() -> Path:
    """Where torch hub (and so pytorch-fid) caches the weights; follows TORCH_HOME."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(configured: str | None) -> Path:
    """The weights file: `evaluate.inception_weights` if set (non-empty), else the hub cache copy.

    We never download: evaluation must not depend on the network, and the user should know
    which file scored their models.
    """
    hub_path = hub_weights_path().absolute()
    path = Path(configured).expanduser().absolute() if configured else hub_path
    if path.is_file():
        return path
    looked = f"{WEIGHTS_KEY} = {path}" if configured else f"{WEIGHTS_KEY} (unset)"
    raise InceptionWeightsMissing(
        f"Inception weights {WEIGHTS_FILE} not found; looked at {looked} and at the torch hub cache "
        f"{hub_path}; download {WEIGHTS_URL} and either put it at {hub_path} or set {WEIGHTS_KEY} "
        f"to its path")


def weights_id(path: Path) -> str:
    """A short name for a weights file, to put beside every score: the first 12 hex of its SHA-256."""
    return file_sha256(path)[:12]


def load_network(path: Path) -> FIDInceptionV3:
    """FIDInceptionV3 with the weights in `path`, in eval mode on the CPU; a wrong file is a UserError."""
    fix = f"download {WEIGHTS_URL} again or point {WEIGHTS_KEY} at that file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise UserError(f"{path}: cannot read the Inception weights ({type(exc).__name__}: "
                        f"{one_line(exc)}); {fix}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state dict of Inception weights (found {type(state).__name__}); {fix}")
    network = FIDInceptionV3()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or wrong shapes
        raise UserError(f"{path}: not the FID Inception-v3 weights ({one_line(exc)}); {fix}") from None
    return network.to(memory_format=torch.channels_last).eval().requires_grad_(False)


# --- the extractor -------------------------------------------------------------------------------

class InceptionFeatures:
    """Embeds stored images (uint8 NHWC) into FID features and Inception class logits."""

    def __init__(self, weights: Path, device: torch.device | str) -> None:
        self.weights_path = Path(weights)
        self.device = torch.device(device)
        self.network = load_network(self.weights_path).to(self.device)
        self.sha256 = file_sha256(self.weights_path)

    @torch.inference_mode()
    def embed(self, images: np.ndarray, batch_size: int,
              logits: Literal["unbiased", "biased"] | None = "unbiased",
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, H, W, 1 or 3) -> features float64 (N, 2048), logits float32 (N, 1008) or None.

        `logits="unbiased"` (fc without its bias) is what the Inception Score uses, see
        FIDInceptionV3.class_logits; "biased" is the full fc layer; None skips them. On a 2-core
        CPU, batches of ~10 ran ~25% faster than batches of 50 (activations stay in cache).
        """
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"embed expects uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if logits not in ("unbiased", "biased", None):
            raise ValueError(f"logits must be 'unbiased', 'biased' or None, got {logits!r}")
        count = images.shape[0]
        features = np.empty((count, FEATURE_DIM), dtype=np.float64)
        class_logits = np.empty((count, NUM_CLASSES), dtype=np.float32) if logits else None
        for start in range(0, count, batch_size):
            batch = to_tensor(images[start:start + batch_size], self.device)  # (B, C, H, W) in [-1, 1]
            pooled = self.network(batch)  # (B, 2048)
            features[start:start + len(pooled)] = pooled.double().cpu().numpy()
            if class_logits is not None:
                scores = self.network.class_logits(pooled, bias=logits == "biased")  # (B, 1008)
                class_logits[start:start + len(pooled)] = scores.float().cpu().numpy()
        return features, class_logits
