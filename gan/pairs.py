"""The inputs of the image-to-image tasks, derived from any image dataset: edges, skeletons, thick strokes,
masked images for inpainting and low-resolution images for super-resolution; plus the photo patches of
scikit-image's bundled photographs, split by photo.

A paired task learns source -> target where the target is a dataset image and the source is computed from
it here. Every function is pure and deterministic (the random ones take a seeded `np.random.Generator`),
so a prepared paired dataset is reproducible from the plain one. Images are uint8 NHWC, C = 1 or 3; the
filters are scikit-image's and torchvision's, not hand-written ones, so each source is what the
literature's tools produce.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tv_functional

PLACEMENTS = ("centre", "random")

# RGB photographs that ship inside the scikit-image wheel (checked with 0.26: each loads offline, without
# pooch). Left out: `cat` (the same picture as `chelsea`), `colorwheel` and `logo` (synthetic, and logo is
# RGBA), and the grayscale photos (camera, moon, coins, brick, grass, gravel, ...): stacking one gray
# channel three times would teach the colour tasks that gray is an ordinary colour photo and would skew
# the Y-channel scores, while the colour photos alone give thousands of patches. `stereo_motorcycle`
# is a stereo pair; its left view is taken.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle", "immunohistochemistry",
          "hubble_deep_field", "retina")

FLAT_STD = 2.0  # a patch whose gray std is below this (0-255 scale) is nearly flat and is dropped


def _check_images(images: np.ndarray, name: str) -> None:
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"{name} expects uint8 images (N, H, W, C) with C = 1 or 3, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} expects uint8 images, got {images.dtype}")


def _gray(image: np.ndarray) -> np.ndarray:
    """One uint8 (H, W, C) image -> float64 (H, W) in [0, 1]: rgb2gray's luminance, or the one channel."""
    from skimage.color import rgb2gray

    if image.shape[2] == 3:
        return rgb2gray(image)
    return image[..., 0].astype(np.float64) / 255.0


# ---------------------------------------------------------------------------- edges, skeletons, strokes


def edges(images: np.ndarray) -> np.ndarray:
    """Canny edges (sigma 1.0, scikit-image's default hysteresis thresholds) of each image's gray version.

    uint8 (N, H, W, C) -> uint8 (N, H, W, 1): 255 on an edge, 0 elsewhere. The edges -> photo task of
    pix2pix; the thresholds are scikit-image's defaults, so the sources match what `canny` gives anyone.
    """
    from skimage.feature import canny

    _check_images(images, "edges")
    out = np.zeros(images.shape[:3] + (1,), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i, ..., 0][canny(_gray(image), sigma=1.0)] = 255
    return out


def skeleton(images: np.ndarray) -> np.ndarray:
    """The skeleton of each image's foreground: gray > its Otsu threshold, thinned by `skeletonize`.

    uint8 (N, H, W, C) -> uint8 (N, H, W, 1), 255 on the skeleton. The threshold is per image, since
    brightness varies across a dataset. An image of one value has Otsu threshold equal to that value, so
    nothing lies strictly above it and its skeleton is empty.
    """
    from skimage.filters import threshold_otsu
    from skimage.morphology import skeletonize

    _check_images(images, "skeleton")
    out = np.zeros(images.shape[:3] + (1,), dtype=np.uint8)
    for i, image in enumerate(images):
        gray = _gray(image)
        foreground = gray > threshold_otsu(gray)
        if foreground.any():
            out[i, ..., 0][skeletonize(foreground)] = 255
    return out


def thick(images: np.ndarray) -> np.ndarray:
    """Grayscale dilation of every channel with a disk of radius 1 (a plus sign): strokes one pixel thicker.

    uint8 (N, H, W, C) -> uint8 (N, H, W, C). Translating thick -> original learns to thin. One call with
    the disk given singleton extents along N and C dilates each channel of each image on its own (a max
    over a footprint that never reaches across images or channels), without a Python loop.
    """
    from skimage.morphology import dilation, disk

    _check_images(images, "thick")
    footprint = disk(1)[None, :, :, None]  # (1, 3, 3, 1)
    return dilation(images, footprint).astype(np.uint8)


SOURCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"edges": edges, "skeleton": skeleton, "thick": thick}


# ---------------------------------------------------------------------------- inpainting


def masked(images: np.ndarray, placement: str, rng: np.random.Generator, size: float = 0.5) -> np.ndarray:
    """Inpainting inputs: each image with a square hole of side int(size * H) set to 0, plus the hole as a channel.

    uint8 (N, H, W, C) -> uint8 (N, H, W, C + 1); the last channel is 255 inside the hole and 0 elsewhere,
    so the generator knows which zeros are missing and which are black. `placement` "centre" puts the
    same centred box in every image (the classic Context Encoder setting; `rng` is then not used);
    "random" draws one box position per image from `rng`, fully inside the image.
    """
    _check_images(images, "masked")
    if placement not in PLACEMENTS:
        raise ValueError(f"masked: placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    count, height, width, channels = images.shape
    side = int(size * height)  # 0.5: H // 2
    if side < 1 or side > width:
        raise ValueError(f"masked: a hole of side {size} x {height} = {side} px does not fit images of "
                         f"{height} x {width}")
    if placement == "centre":
        tops = np.full(count, (height - side) // 2)
        lefts = np.full(count, (width - side) // 2)
    else:
        tops = rng.integers(0, height - side + 1, size=count)
        lefts = rng.integers(0, width - side + 1, size=count)
    out = np.zeros((count, height, width, channels + 1), dtype=np.uint8)
    out[..., :channels] = images
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i, top:top + side, left:left + side, :channels] = 0
        out[i, top:top + side, left:left + side, channels] = 255
    return out


def hole(sources: np.ndarray) -> np.ndarray:
    """The hole of `masked` sources (N, H, W, C + 1) as bool (N, H, W): the last channel above mid-gray."""
    return sources[..., -1] > 127


# ---------------------------------------------------------------------------- super-resolution


def downsample(images: np.ndarray, scale: int) -> np.ndarray:
    """Low-resolution inputs: antialiased bicubic resizing by 1 / scale, the usual way LR images are made.

    uint8 (N, H, W, C) -> uint8 (N, H / scale, W / scale, C). torchvision resizes the uint8 tensor and
    rounds back to uint8, as saving an LR image file would. H and W must be multiples of `scale`, so the
    high- and low-resolution pixel grids line up.
    """
    _check_images(images, "downsample")
    height, width = images.shape[1:3]
    if scale < 1 or height % scale or width % scale:
        raise ValueError(f"downsample: images of {height} x {width} are not divisible by scale {scale}")
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W)
    small = tv_functional.resize(batch, [height // scale, width // scale], InterpolationMode.BICUBIC,
                                 antialias=True)
    return small.permute(0, 2, 3, 1).contiguous().numpy()


def upsample_bicubic(lowres: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling by `scale` (no antialiasing, align_corners False), clamped and rounded to uint8.

    uint8 (N, h, w, C) -> uint8 (N, h * scale, w * scale, C): the "Bicubic" row of every super-resolution
    table, which a learned model has to beat.
    """
    _check_images(lowres, "upsample_bicubic")
    if scale < 1:
        raise ValueError(f"upsample_bicubic: scale must be >= 1, got {scale}")
    height, width = lowres.shape[1:3]
    batch = torch.from_numpy(np.ascontiguousarray(lowres)).permute(0, 3, 1, 2).float()  # (N, C, h, w)
    big = F.interpolate(batch, size=(height * scale, width * scale), mode="bicubic", align_corners=False)
    return big.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


# ---------------------------------------------------------------------------- photo patches


def load_photo(name: str) -> np.ndarray:
    """One of `PHOTOS` as uint8 (H, W, 3), read from scikit-image's wheel (no download)."""
    from skimage import data

    if name not in PHOTOS:
        raise ValueError(f"load_photo: {name!r} is not one of {', '.join(PHOTOS)}")
    photo = getattr(data, name)()
    if name == "stereo_motorcycle":
        photo = photo[0]  # (left, right, disparity)
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise RuntimeError(f"skimage.data.{name} is not an RGB uint8 photo here ({photo.dtype}, {photo.shape}); "
                           f"this scikit-image version ships it differently")
    return photo


def _patches(photo: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size patches of one photo, row by row from the top left, minus the flat ones.

    The strip at the right and bottom edges narrower than `size` is left out.
    """
    from skimage.color import rgb2gray

    rows, cols = photo.shape[0] // size, photo.shape[1] // size
    tiles = photo[:rows * size, :cols * size].reshape(rows, size, cols, size, 3).swapaxes(1, 2)
    tiles = tiles.reshape(rows * cols, size, size, 3)
    spread = (rgb2gray(tiles) * 255.0).reshape(len(tiles), -1).std(axis=1)
    return tiles[spread >= FLAT_STD]


def photo_patches(size: int, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Patches of scikit-image's RGB photographs (`PHOTOS`), split into train and test BY PHOTO.

    Returns (train uint8 (N, size, size, 3), test uint8 (M, size, size, 3), train photo names, test photo
    names). A seeded permutation of the photo names puts round(test_fraction * count) photos (at least 1,
    at most count - 1) in the test set and the rest in train: patches of one photo are strongly alike, so a
    patch-level split would score a model on near-copies of its training patches. Each photo is cut into
    non-overlapping size x size patches (stride = size) and patches that are nearly flat (std of the gray
    patch, 0-255 scale, below 2: sky, black background) are dropped, since they teach and test nothing.
    Patches come photo by photo, in the order of `PHOTOS`; the caller shuffles if it needs to.
    """
    if size < 1:
        raise ValueError(f"photo_patches: size must be >= 1, got {size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"photo_patches: test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(PHOTOS))
    cut = min(max(1, round(test_fraction * len(PHOTOS))), len(PHOTOS) - 1)
    test_set = {PHOTOS[i] for i in order[:cut]}
    train_photos = [name for name in PHOTOS if name not in test_set]
    test_photos = [name for name in PHOTOS if name in test_set]

    def stack(names: list[str]) -> np.ndarray:
        parts = [_patches(load_photo(name), size) for name in names]
        return np.concatenate([np.empty((0, size, size, 3), dtype=np.uint8), *parts])

    return stack(train_photos), stack(test_photos), train_photos, test_photos
