"""The paired-task sources (edges, skeleton, thick, masked, down/upsampling), the photo patches and the figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan import figures, pairs


def white_square(size: int = 24, lo: int = 6, hi: int = 18, channels: int = 1) -> np.ndarray:
    images = np.zeros((1, size, size, channels), dtype=np.uint8)
    images[0, lo:hi, lo:hi] = 255
    return images


def random_images(count: int = 4, size: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, channels), dtype=np.uint8)


@pytest.fixture(scope="module")
def patches32():
    return pairs.photo_patches(32, 0.25, 0)


# ---------------------------------------------------------------------------- edges, skeleton, thick


@pytest.mark.parametrize("channels", [1, 3])
def test_edges_of_a_white_square_are_its_outline(channels):
    out = pairs.edges(white_square(channels=channels))
    assert out.shape == (1, 24, 24, 1) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 255}
    edge = out[0, ..., 0] > 0
    # The step lies between pixels 5 and 6 (17 and 18), so canny marks one of the two: every position
    # along each side has an edge pixel within that 2-pixel band (corners may be rounded by the smoothing).
    for band in (edge[5:7, 8:16], edge[17:19, 8:16], edge[8:16, 5:7].T, edge[8:16, 17:19].T):
        assert band.any(axis=0).all()
    assert not edge[8:16, 8:16].any()  # nothing inside
    outside = np.ones_like(edge)
    outside[4:20, 4:20] = False
    assert not edge[outside].any()  # nothing far outside


def test_edges_of_a_flat_image_are_empty():
    assert not pairs.edges(np.full((2, 16, 16, 3), 90, dtype=np.uint8)).any()


def test_skeleton_of_a_thick_bar_is_one_pixel_wide():
    images = np.zeros((1, 20, 40, 1), dtype=np.uint8)
    images[0, 6:13, 5:35] = 200  # a bar 7 pixels tall
    out = pairs.skeleton(images)[0, ..., 0] > 0
    assert out.shape == (20, 40)
    assert out.sum() >= 15
    assert out.sum(axis=0).max() == 1  # one skeleton pixel per column: 1 px wide
    assert out[6:13].sum() == out.sum()  # and inside the bar


def test_skeleton_of_a_constant_image_is_empty():
    out = pairs.skeleton(np.full((2, 12, 12, 3), 77, dtype=np.uint8))
    assert out.shape == (2, 12, 12, 1) and not out.any()


def test_thick_grows_a_dot_into_a_plus_per_channel():
    images = np.zeros((2, 9, 9, 3), dtype=np.uint8)
    images[0, 4, 4, 1] = 200
    out = pairs.thick(images)
    assert out.shape == images.shape and out.dtype == np.uint8
    plus = np.zeros((9, 9), dtype=bool)
    plus[3:6, 4] = plus[4, 3:6] = True
    assert np.array_equal(out[0, ..., 1] == 200, plus)
    assert not out[0, ..., [0, 2]].any() and not out[1].any()  # no leaking across channels or images


# ---------------------------------------------------------------------------- masked


def test_masked_centre_box_position_and_hole():
    images = random_images(count=3, size=16) | 1  # no zero pixels, so every 0 comes from the hole
    out = pairs.masked(images, "centre", np.random.default_rng(0))
    assert out.shape == (3, 16, 16, 4) and out.dtype == np.uint8
    expected = np.zeros((16, 16), dtype=bool)
    expected[4:12, 4:12] = True
    holes = pairs.hole(out)
    assert holes.shape == (3, 16, 16) and (holes == expected).all()
    assert (out[:, 4:12, 4:12, :3] == 0).all()
    assert np.array_equal(out[..., :3][~holes], images[~holes])  # untouched outside
    assert set(np.unique(out[..., 3])) == {0, 255}


def test_masked_random_boxes_are_inside_differ_and_reproduce():
    images = random_images(count=20, size=16, channels=1) | 1
    out = pairs.masked(images, "random", np.random.default_rng(5))
    holes = pairs.hole(out)
    corners = set()
    for i in range(20):
        rows, cols = np.nonzero(holes[i])
        assert holes[i].sum() == 64  # the whole 8 x 8 box, so fully inside the image
        assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7
        assert (out[i, ..., 0][holes[i]] == 0).all()
        corners.add((rows.min(), cols.min()))
    assert len(corners) > 5
    assert np.array_equal(out, pairs.masked(images, "random", np.random.default_rng(5)))
    assert not np.array_equal(out, pairs.masked(images, "random", np.random.default_rng(6)))


@pytest.mark.parametrize("size, side", [(0.25, 4), (0.75, 12), (1.0, 16)])
def test_the_hole_size_sets_the_box_side(size, side):
    images = random_images(count=6, size=16, channels=1) | 1
    for placement in ("centre", "random"):
        holes = pairs.hole(pairs.masked(images, placement, np.random.default_rng(1), size))
        for box in holes:
            rows, cols = np.nonzero(box)
            assert box.sum() == side * side and rows.max() - rows.min() == cols.max() - cols.min() == side - 1


def test_masked_rejects_an_unknown_placement():
    with pytest.raises(ValueError, match="placement"):
        pairs.masked(random_images(), "corner", np.random.default_rng(0))


# ---------------------------------------------------------------------------- super-resolution


def test_downsample_shape_and_a_constant_image_stays_constant():
    images = np.full((2, 16, 24, 3), 123, dtype=np.uint8)
    out = pairs.downsample(images, 4)
    assert out.shape == (2, 4, 6, 3) and out.dtype == np.uint8
    assert (out == 123).all()


def test_downsample_averages_a_fine_checkerboard_to_gray():
    board = (np.indices((16, 16)).sum(0) % 2 * 200).astype(np.uint8)[None, ..., None]
    out = pairs.downsample(board, 4)  # antialiasing: the pattern is above the new Nyquist rate
    assert np.abs(out[0, 1:-1, 1:-1].astype(int) - 100).max() <= 3


def test_downsample_rejects_an_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        pairs.downsample(random_images(size=10), 3)


def test_upsample_bicubic_shape_and_constant():
    out = pairs.upsample_bicubic(np.full((3, 5, 4, 1), 200, dtype=np.uint8), 4)
    assert out.shape == (3, 20, 16, 1) and out.dtype == np.uint8 and (out == 200).all()
    assert pairs.upsample_bicubic(random_images(size=8), 2).shape == (4, 16, 16, 3)


# ---------------------------------------------------------------------------- photo patches


def test_photo_patches_split_by_photo(patches32):
    train, test, train_photos, test_photos = patches32
    assert train.shape[1:] == (32, 32, 3) and test.shape[1:] == (32, 32, 3)
    assert train.dtype == np.uint8 and len(train) > len(test) > 0
    assert not set(train_photos) & set(test_photos)
    assert sorted(train_photos + test_photos) == sorted(pairs.PHOTOS)
    assert len(test_photos) == round(0.25 * len(pairs.PHOTOS))


def test_photo_patches_are_slices_of_their_photos(patches32):
    train, test, _, test_photos = patches32
    first = pairs.load_photo(test_photos[0])
    tiles = {first[r:r + 32, c:c + 32].tobytes() for r in range(0, first.shape[0] - 31, 32)
             for c in range(0, first.shape[1] - 31, 32)}
    assert test[0].tobytes() in tiles  # patches come photo by photo, in PHOTOS order
    train_tiles = {t.tobytes() for t in train}
    assert not any(t.tobytes() in train_tiles for t in test)


def test_photo_patches_drop_flat_patches_and_reproduce(patches32):
    from skimage.color import rgb2gray

    train, test, *names = pairs.photo_patches(64, 0.25, 0)
    assert (rgb2gray(train).reshape(len(train), -1).std(1) * 255 >= pairs.FLAT_STD).all()
    again = pairs.photo_patches(64, 0.25, 0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test) and [*again[2:]] == names
    other = pairs.photo_patches(64, 0.25, 3)
    assert other[3] != names[1]  # another seed, other test photos


# ---------------------------------------------------------------------------- figures


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size  # (width, height)


def test_save_columns_three_columns_one_row_is_wide(tmp_path):
    lowres = random_images(count=2, size=8, channels=1)
    columns = [("source", lowres), ("output", random_images(count=2, size=32)),
               ("target", random_images(count=2, size=32, seed=1))]
    figures.save_columns(columns, tmp_path / "cols.png", rows=1)
    width, height = png_size(tmp_path / "cols.png")
    assert 2.3 < width / height < 3.3


def test_save_columns_one_column_three_rows_is_tall(tmp_path):
    figures.save_columns([("target", random_images(count=3, size=16))], tmp_path / "rows.png", rows=3)
    width, height = png_size(tmp_path / "rows.png")
    assert 2.5 < height / width < 3.5


def test_save_zoom_draws_the_box(tmp_path):
    columns = [("bicubic", random_images(count=1, size=32)), ("target", random_images(count=1, size=32))]
    figures.save_zoom(columns, tmp_path / "zoom.png", rows=1, box=(4, 8, 8, 16))
    width, height = png_size(tmp_path / "zoom.png")
    assert 3.0 < width / height < 5.0  # two panels, each twice as wide as tall
    with pytest.raises(ValueError, match="box"):
        figures.save_zoom(columns, tmp_path / "bad.png", rows=1, box=(30, 0, 8, 8))


def test_source_view_shows_holes_gray_and_upscales_lowres():
    images = random_images(count=2, size=16)
    sources = pairs.masked(images, "centre", np.random.default_rng(0))
    view = figures.source_view(sources, images.shape)
    assert view.shape == images.shape
    assert (view[:, 4:12, 4:12] == 128).all() and np.array_equal(view[:, :4], images[:, :4])
    small = pairs.downsample(images, 4)
    up = figures.source_view(small, images.shape)
    assert up.shape == images.shape and np.array_equal(up[:, ::4, ::4], small)
    edge_map = pairs.edges(images)
    assert figures.source_view(edge_map, images.shape) is edge_map
