"""The prepared format: what the `prepare` stage writes and every later stage reads.

``train.npz`` and ``test.npz`` hold ``x`` (uint8 NHWC images or float32 2-D points), ``y`` (int labels,
when there are any) and, for a paired task, ``source`` (G's inputs); ``meta.json`` describes them and
records the sha256 of every array (`content_hash`), which `load_prepared` checks on each read.
This module reads the format; gan.data.datasets makes it. The stages that only read it (features,
train, generate, evaluate) do not import the loaders, so a loader's edit reruns prepare alone.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan.errors import UserError, one_line

PREPARED_FILES = ("train.npz", "test.npz", "meta.json")


@dataclass(frozen=True)
class Prepared:
    train_x: np.ndarray  # the images (or points) D sees as real: a paired task's targets
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    meta: dict
    train_source: np.ndarray | None = None  # a paired task's inputs of G (gan.sources), uint8 NHWC
    test_source: np.ndarray | None = None
    train_caption: np.ndarray | None = None  # text-to-image: (N, K) captions of each image (unicode) ...
    test_caption: np.ndarray | None = None
    train_tokens: np.ndarray | None = None  # ... and their tokens, int64 (N, K, L), 0 = padding (gan.text)
    test_tokens: np.ndarray | None = None

def content_hash(arrays: list[np.ndarray | None]) -> str:
    """sha256 over each array's dtype, shape and bytes, in the given order (None counts too)."""
    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none;")
            continue
        digest.update(f"{array.dtype.str};{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).data)  # a view of the bytes, not a copy
    return digest.hexdigest()


def is_npz(path: Path) -> bool:
    """Whether `path` starts like a zip (an .npz) archive. Check before np.load, which takes any other
    bytes for a pickle and says so, as if allowing pickles were the fix."""
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_prepared(directory: Path) -> Prepared:
    """Read what `prepare` wrote; a missing, damaged or changed directory is a UserError.

    The arrays are hashed again against meta.json, because a stage trusts meta['sha256'] to
    name the data it trains or scores on: an edited or half-restored train.npz must not pass
    under the old digest. Hashing adds about a third to the time of reading the files.
    """
    directory = Path(directory)
    missing = [n for n in PREPARED_FILES if not (directory / n).is_file()]
    if missing:
        raise UserError(f"{directory}: no prepared data ({', '.join(missing)} missing); "
                        f"run `dvc repro prepare` first")
    try:
        meta = json.loads((directory / "meta.json").read_text())
        recorded = meta["sha256"]  # a TypeError when meta.json holds no object
        for name in ("train.npz", "test.npz"):
            if not is_npz(directory / name):
                raise ValueError(f"{name} is not an .npz archive")
        with np.load(directory / "train.npz") as train, np.load(directory / "test.npz") as test:
            arrays = [train["x"], train["y"] if "y" in train.files else None,
                      test["x"], test["y"] if "y" in test.files else None]
            sources = [train["source"], test["source"]] if "source" in train.files else []
            text = ([train["caption"], test["caption"], train["tokens"], test["tokens"]]
                    if "caption" in train.files else [])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        # ValueError: bad JSON; TypeError: meta.json holds a list or a string
        raise UserError(f"{directory}: prepared data is unreadable ({type(exc).__name__}: {one_line(exc) or type(exc).__name__}); "
                        f"run `dvc repro prepare` first") from None
    found = content_hash(arrays + sources + text)
    if found != recorded:
        raise UserError(f"{directory}: the arrays do not match meta.json (sha256 {str(recorded)[:12]} recorded, "
                        f"{found[:12]} read); restore them with `dvc checkout data/prepared` or rebuild them "
                        f"with `dvc repro -f prepare`")
    captions = dict(zip(("train_caption", "test_caption", "train_tokens", "test_tokens"), text))
    return Prepared(*arrays, meta=meta, train_source=sources[0] if sources else None,
                    test_source=sources[1] if sources else None, **captions)
