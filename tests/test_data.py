"""The dataset registry and the prepared format, on real files that each test writes."""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.config import Config, parse_params
from gan.data import content_hash, load_prepared
from gan.data.datasets import DATASETS, IMAGE_EXTENSIONS, Split, prepare
from gan.errors import UserError


def make_config(seed: int = 0, **data) -> Config:
    # model.arch mlp accepts every data kind and image size, so these tests vary only data.*
    return parse_params({"seed": seed, "data": data, "model": {"arch": "mlp"}})


def load(seed: int = 0, **data) -> Split:
    cfg = make_config(seed, **data)
    return DATASETS[cfg.data.name].load(cfg.data, cfg.seed)


# ---------------------------------------------------------------------------- files in torchvision's layout


def write_idx(path: Path, array: np.ndarray) -> None:
    """The big-endian idx-ubyte format of the MNIST files: magic (type 8 = uint8, ndim), dims, bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", train: int = 20, test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {"train_x": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
              "train_y": rng.integers(0, 10, train, dtype=np.uint8),
              "test_x": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
              "test_y": rng.integers(0, 10, test, dtype=np.uint8)}
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", arrays["train_x"])
    write_idx(raw / "train-labels-idx1-ubyte", arrays["train_y"])
    write_idx(raw / "t10k-images-idx3-ubyte", arrays["test_x"])
    write_idx(raw / "t10k-labels-idx1-ubyte", arrays["test_y"])
    return arrays


def write_cifar(root: Path, per_batch: int = 4, test: int = 10) -> dict[str, np.ndarray]:
    """CIFAR's python pickles: {"data": uint8 (N, 3072) as CHW rows, "labels": [int]}.

    torchvision unpickles with encoding="latin1" and reads str keys ("data", "labels",
    "label_names"), which is what the original Python 2 pickles turn into.
    """
    rng = np.random.default_rng(2)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": test}
    written = {}
    for name, count in batches.items():
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, count).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
        written[name] = (data, np.array(labels))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    train = [written[f"data_batch_{i}"] for i in range(1, 6)]
    chw_to_hwc = lambda rows: rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # noqa: E731
    return {"train_x": chw_to_hwc(np.concatenate([d for d, _ in train])),
            "train_y": np.concatenate([y for _, y in train]),
            "test_x": chw_to_hwc(written["test_batch"][0]), "test_y": written["test_batch"][1]}


def write_image(path: Path, size: tuple[int, int] = (12, 8), color=(200, 30, 60), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


# ---------------------------------------------------------------------------- registry


def test_every_dataset_has_a_kind_and_a_description():
    assert {"mnist5k", "ring8", "grid25", "mnist", "fashion_mnist", "cifar10", "folder"} <= set(DATASETS)
    for spec in DATASETS.values():
        assert spec.kind in ("images", "points") and spec.about


# ---------------------------------------------------------------------------- mnist5k


def test_mnist5k_is_uint8_nhwc_with_a_stratified_fifth_held_out():
    split = load(name="mnist5k")
    assert split.train_x.shape == (4000, 28, 28, 1) and split.test_x.shape == (1000, 28, 28, 1)
    assert split.train_x.dtype == np.uint8 and split.train_y.dtype == np.int64
    assert split.num_classes == 10
    assert np.bincount(split.test_y).tolist() == [100] * 10
    assert np.bincount(split.train_y).tolist() == [400] * 10
    assert split.train_x.max() > 200  # real pixel values, not rescaled to [0, 1]


def test_mnist5k_train_split_is_shuffled():
    train_y = load(name="mnist5k").train_y
    assert not np.all(np.diff(train_y) >= 0)


def test_mnist5k_same_seed_gives_identical_arrays():
    a, b = load(seed=3, name="mnist5k"), load(seed=3, name="mnist5k")
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert content_hash([a.train_x, a.train_y, a.test_x, a.test_y]) == \
        content_hash([b.train_x, b.train_y, b.test_x, b.test_y])


def test_mnist5k_different_seed_holds_out_different_digits():
    a, b = load(seed=0, name="mnist5k"), load(seed=1, name="mnist5k")
    assert not np.array_equal(a.test_x, b.test_x)


def test_mnist5k_resizes_to_image_size():
    split = load(name="mnist5k", image_size=32)
    assert split.train_x.shape == (4000, 32, 32, 1) and split.train_x.dtype == np.uint8


# ---------------------------------------------------------------------------- 2-D mixtures


def test_ring8_modes_are_the_eighth_roots_of_unity():
    modes = np.array(load(name="ring8", num_points=100).extra["modes"])
    expected = [[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)]
    np.testing.assert_allclose(modes, expected, atol=1e-12)


def test_grid25_modes_are_the_even_grid_from_minus4_to_4():
    split = load(name="grid25", num_points=100)
    modes = {tuple(m) for m in split.extra["modes"]}
    assert modes == {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert split.num_classes == 25 and split.extra["mode_std"] == 0.05


@pytest.mark.parametrize("name,std", [("ring8", 0.01), ("grid25", 0.05)])
def test_mixture_points_scatter_around_their_mode_with_its_std(name, std):
    split = load(name=name, num_points=20000)
    modes = np.array(split.extra["modes"])
    offsets = split.train_x - modes[split.train_y]  # (N, 2)
    assert split.train_x.dtype == np.float32 and split.train_y.dtype == np.int64
    np.testing.assert_allclose(offsets.std(axis=0), [std, std], rtol=0.05)
    assert np.abs(offsets).max() < 6 * std
    assert np.bincount(split.train_y, minlength=len(modes)).min() > 0.8 * len(split.train_y) / len(modes)


def test_mixture_splits_num_points_by_test_fraction():
    split = load(name="ring8", num_points=1000, test_fraction=0.25)
    assert split.train_x.shape == (750, 2) and split.test_x.shape == (250, 2)


def test_mixture_is_deterministic_given_the_seed():
    a, b, c = load(seed=5, name="grid25"), load(seed=5, name="grid25"), load(seed=6, name="grid25")
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_x, c.train_x)


# ---------------------------------------------------------------------------- torchvision datasets


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_mnist_files_load_as_written(tmp_path, name, folder):
    written = write_mnist(tmp_path, folder)
    split = load(name=name, root=str(tmp_path), download=False)
    assert np.array_equal(split.train_x, written["train_x"][..., None])  # (20, 28, 28, 1)
    assert np.array_equal(split.test_x, written["test_x"][..., None])
    assert np.array_equal(split.train_y, written["train_y"]) and split.train_y.dtype == np.int64
    assert np.array_equal(split.test_y, written["test_y"])
    assert split.num_classes == 10


def test_torchvision_mnist_resizes_to_image_size(tmp_path):
    write_mnist(tmp_path)
    split = load(name="mnist", root=str(tmp_path), download=False, image_size=32)
    assert split.train_x.shape == (20, 32, 32, 1) and split.test_x.shape == (10, 32, 32, 1)


def test_cifar10_files_load_as_nhwc_without_checksums(tmp_path):
    written = write_cifar(tmp_path)
    split = load(name="cifar10", root=str(tmp_path), download=False, image_size=32)
    assert split.train_x.shape == (20, 32, 32, 3) and split.test_x.shape == (10, 32, 32, 3)
    for key in ("train_x", "train_y", "test_x", "test_y"):
        assert np.array_equal(getattr(split, key), written[key]), key
    assert split.num_classes == 10


def test_missing_torchvision_files_without_download_name_root_and_fix(tmp_path):
    with pytest.raises(UserError) as info:
        load(name="mnist", root=str(tmp_path / "nowhere"), download=False)
    message = str(info.value)
    assert f"data.root={tmp_path / 'nowhere'}" in message
    assert "train-images-idx3-ubyte" in message and "data.download: true" in message
    assert "\n" not in message


def test_truncated_idx_file_is_reported_as_corrupt(tmp_path):
    write_mnist(tmp_path)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"data.root=.*unreadable or corrupt.*delete them"):
        load(name="mnist", root=str(tmp_path), download=False)


def test_bad_cifar_pickle_is_reported_as_corrupt(tmp_path):
    write_cifar(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(UserError, match=r"CIFAR-10 files there are unreadable or corrupt.*delete them"):
        load(name="cifar10", root=str(tmp_path), download=False, image_size=32)


# ---------------------------------------------------------------------------- image folders


def test_labelled_folder_maps_sorted_subfolders_to_class_ids(tmp_path):
    for i in range(5):
        write_image(tmp_path / "dogs" / f"{i}.png", color=(0, 0, 255))
        write_image(tmp_path / "cats" / "nested" / f"{i}.JPG", color=(255, 0, 0))
    split = load(name="folder", root=str(tmp_path), image_size=16, test_fraction=0.4)
    assert split.num_classes == 2 and split.extra == {"classes": ["cats", "dogs"]}
    assert split.train_x.shape == (6, 16, 16, 3) and split.test_x.shape == (4, 16, 16, 3)
    assert np.bincount(split.test_y).tolist() == [2, 2]  # stratified
    images = np.concatenate([split.train_x, split.test_x])
    labels = np.concatenate([split.train_y, split.test_y])
    assert np.all(images[labels == 0][..., 0] > 200)  # cats are red (JPEG rounds a little)
    assert np.all(images[labels == 1][..., 2] == 255)  # dogs are blue


def test_flat_folder_is_unlabelled(tmp_path):
    for i, ext in enumerate(IMAGE_EXTENSIONS):
        write_image(tmp_path / f"{i}{ext}")
    split = load(name="folder", root=str(tmp_path), image_size=8)
    assert split.train_y is None and split.test_y is None and split.num_classes == 0
    assert len(split.train_x) + len(split.test_x) == len(IMAGE_EXTENSIONS)
    assert split.train_x.dtype == np.uint8 and split.train_x.shape[1:] == (8, 8, 3)


def test_folder_crops_the_centre_square_then_resizes(tmp_path):
    image = np.zeros((10, 30, 3), dtype=np.uint8)  # (H, W, C): black sides, white centre square
    image[:, 10:20] = 255
    for name in ("a.png", "b.png"):
        Image.fromarray(image).save(tmp_path / name)
    split = load(name="folder", root=str(tmp_path), image_size=5)
    assert split.train_x.shape == (1, 5, 5, 3) and np.all(split.train_x == 255)


def test_folder_converts_grayscale_to_rgb(tmp_path):
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, color=(77,), mode="L")
    split = load(name="folder", root=str(tmp_path), image_size=4)
    assert split.train_x.shape[-1] == 3 and np.all(split.train_x == 77)


def test_folder_split_is_deterministic_given_the_seed(tmp_path):
    for i in range(10):
        write_image(tmp_path / f"{i}.png", color=(i * 20, 0, 0))
    a, b = load(seed=4, name="folder", root=str(tmp_path)), load(seed=4, name="folder", root=str(tmp_path))
    assert np.array_equal(a.test_x, b.test_x) and np.array_equal(a.train_x, b.train_x)


def test_missing_folder_names_the_root(tmp_path):
    with pytest.raises(UserError, match=r"data.root=.*nowhere: no such folder"):
        load(name="folder", root=str(tmp_path / "nowhere"))


def test_empty_folder_says_which_extensions_are_accepted(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(UserError) as info:
        load(name="folder", root=str(tmp_path))
    assert "no images found" in str(info.value) and ".png" in str(info.value) and ".webp" in str(info.value)


def test_folder_with_one_image_asks_for_two(tmp_path):
    write_image(tmp_path / "only.png")
    with pytest.raises(UserError, match="only only.png found.*at least 2 images"):
        load(name="folder", root=str(tmp_path))


def test_non_image_file_named_png_is_named_in_the_error(tmp_path):
    write_image(tmp_path / "good.png")
    (tmp_path / "fake.png").write_text("this is text")
    with pytest.raises(UserError, match=r"cannot read image .*fake\.png"):
        load(name="folder", root=str(tmp_path))


def test_loose_images_beside_class_folders_are_refused(tmp_path):
    write_image(tmp_path / "loose.png")
    write_image(tmp_path / "cats" / "a.png")
    with pytest.raises(UserError, match="move the loose images into a subfolder"):
        load(name="folder", root=str(tmp_path))


# ---------------------------------------------------------------------------- prepare and load_prepared


def test_prepare_writes_arrays_and_meta_that_load_back(tmp_path):
    meta = prepare(make_config(name="ring8", num_points=100), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.json", "test.npz", "train.npz"]
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta
    assert meta["name"] == "ring8" and meta["kind"] == "points" and meta["shape"] == [2]
    assert meta["num_classes"] == 8 and meta["train_size"] == 80 and meta["test_size"] == 20
    assert meta["mode_std"] == 0.01 and len(meta["modes"]) == 8
    assert "channels" not in meta and "image_size" not in meta
    prepared = load_prepared(tmp_path / "out")
    assert prepared.train_x.shape == (80, 2) and prepared.test_y.shape == (20,)
    arrays = [prepared.train_x, prepared.train_y, prepared.test_x, prepared.test_y]
    assert content_hash(arrays) == meta["sha256"]


def test_prepare_describes_images(tmp_path):
    meta = prepare(make_config(name="mnist5k", image_size=32), tmp_path)
    assert meta["kind"] == "images" and meta["shape"] == [32, 32, 1]
    assert meta["channels"] == 1 and meta["image_size"] == 32 and meta["num_classes"] == 10
    assert (meta["train_size"], meta["test_size"]) == (4000, 1000)


# sha256 of the prepared arrays at the default params (seed 0, num_points 20000, image_size 28,
# test_fraction 0.2), computed once with numpy 2.4. A change here means a change in what the
# data code produces (or in numpy's random streams): every experiment's data hash moves with it.
STORED_DIGESTS = {
    "ring8": "20ece70d0f1746cabda868376383ed8d639349fc6dd584468c221ff4e7450f39",
    "grid25": "2a51dda5280dec9e3d79175efa6ca654dcb0397012795f8223a34e4a80a3f037",
    "mnist5k": "b80e7a4e9f7db57dd133a22c7cfc3c9d48a587cf02768cf4e80ba94d6cc44bcd",
}


@pytest.mark.parametrize("name", sorted(STORED_DIGESTS))
def test_prepare_is_byte_stable_against_the_stored_digest(tmp_path, name):
    meta = prepare(make_config(name=name), tmp_path)
    assert meta["sha256"] == STORED_DIGESTS[name]
    prepared = load_prepared(tmp_path)
    assert content_hash([prepared.train_x, prepared.train_y, prepared.test_x, prepared.test_y]) == meta["sha256"]


def test_prepare_with_another_seed_gives_other_data(tmp_path):
    other_seed = prepare(make_config(seed=1, name="grid25"), tmp_path)
    assert other_seed["sha256"] != STORED_DIGESTS["grid25"]


def test_unlabelled_prepare_has_no_labels(tmp_path):
    for i in range(4):
        write_image(tmp_path / "images" / f"{i}.png", color=(i, i, i))
    prepare(make_config(name="folder", root=str(tmp_path / "images"), image_size=8), tmp_path / "out")
    prepared = load_prepared(tmp_path / "out")
    assert prepared.train_y is None and prepared.test_y is None
    assert prepared.meta["num_classes"] == 0 and prepared.meta["channels"] == 3


def test_failed_prepare_leaves_no_stale_data(tmp_path):
    prepare(make_config(name="ring8", num_points=100), tmp_path)
    with pytest.raises(UserError):
        prepare(make_config(name="folder", root=str(tmp_path / "nowhere")), tmp_path)
    with pytest.raises(UserError, match="run `dvc repro prepare` first"):
        load_prepared(tmp_path)


def test_load_prepared_without_prepare_says_what_to_run(tmp_path):
    with pytest.raises(UserError, match=r"meta.json missing.*run `dvc repro prepare` first"):
        load_prepared(tmp_path / "missing")


def test_load_prepared_reports_a_damaged_file(tmp_path):
    prepare(make_config(name="ring8", num_points=100), tmp_path)
    (tmp_path / "train.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="unreadable.*run `dvc repro prepare` first"):
        load_prepared(tmp_path)


def test_load_prepared_says_a_file_that_is_no_npz_is_not_one(tmp_path):
    prepare(make_config(name="ring8", num_points=100), tmp_path)
    (tmp_path / "test.npz").write_bytes(b"\x80\x04 pickled bytes, or anything else")
    with pytest.raises(UserError, match=r"unreadable \(ValueError: test.npz is not an .npz archive\); run `dvc"):
        load_prepared(tmp_path)
