"""Captions for text-to-image training on MNIST-like digits: what digit an image shows, how thick its
strokes are and which way they lean, in words.

Design:
- **Levels, not numbers.** Each image gets a level (0, 1, 2) per attribute in `ATTRIBUTES`: thickness
  thin / regular / thick, slant leaning left / upright / leaning right. The raw measures come from
  `gan.strokes.attributes` (ink share; mu11 / mu02, positive = leaning right).
- **Per-class tertiles.** A "1" has far less ink than an "8", so one global cut would call every 1 thin.
  `fit_thresholds` cuts each class's measures into thirds on the training images; `levels` applies
  those cut points (saved as JSON) to any image of that class, so about a third of each class lands
  on each level and the words mean "thin *for a 7*".
- **Two phrasings.** `SEEN` (numerals, "thin", "leaning left", ...) captions the training set;
  `HELD_OUT` (digit words, "skinny", "slanted to the left", ...) shares no digit form and no attribute
  word with it and is only for evaluation: a text encoder that maps "bold seven" near "thick 7"
  generalises beyond the strings it was trained on. Only function words ("a", "left", ...) overlap.
- **Clean text.** The regular thickness may have no word (""); `caption` fills a template, then drops
  empty comma fields and doubled spaces and fixes "a 8" to "an 8", so nothing shows a gap.
- **Arrays that save plainly.** `captions` / `pad_captions` return fixed-width unicode arrays (dtype
  kind 'U'), which `np.savez` stores and `np.load(..., allow_pickle=False)` reads back.
- **The user's own captions.** For a folder dataset, `read_sidecars` reads `a.txt` beside `a.png`, one
  caption per line; `pad_captions` makes every image have the same number of captions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan.errors import UserError
from gan.strokes import ATTRIBUTES  # thickness, slant

LEVELS = 3  # 0 thin / leaning left, 1 regular / upright, 2 thick / leaning right
_ARTICLE = re.compile(r"\ba (?=(?:8|eight)\b|[aeio](?!ne\b))")  # "a 8", "a eight", "a italic" -> "an ..."


@dataclass(frozen=True)
class Phrasing:
    """How captions are worded: a form per digit, synonyms per attribute level, and templates with
    {digit} {thickness} {slant} fields. A level's synonym may be "" (no word)."""

    name: str
    digits: tuple[str, ...]
    thickness: tuple[tuple[str, ...], ...]
    slant: tuple[tuple[str, ...], ...]
    templates: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.digits) != 10:
            raise ValueError(f"phrasing {self.name}: {len(self.digits)} digit forms, expected 10")
        for attribute in ATTRIBUTES:
            words = getattr(self, attribute)
            if len(words) != LEVELS or not all(words):
                raise ValueError(f"phrasing {self.name}: {attribute} needs {LEVELS} non-empty synonym tuples")
        if not self.templates:
            raise ValueError(f"phrasing {self.name}: no templates")


SEEN = Phrasing(
    name="seen",
    digits=tuple(str(d) for d in range(10)),
    thickness=(("thin",), ("",), ("thick",)),
    slant=(("leaning left",), ("upright",), ("leaning right",)),
    templates=("a {thickness} {digit} {slant}",
               "{digit}, {thickness}, {slant}",
               "a {thickness} digit {digit}, {slant}"),
)

HELD_OUT = Phrasing(
    name="held_out",
    digits=("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    thickness=(("skinny", "slim"), ("regular", "medium"), ("bold", "heavy", "fat")),
    slant=(("slanted to the left", "tilted left"), ("straight", "vertical"), ("slanted to the right", "italic")),
    templates=("the number {digit}, {thickness}, {slant}",
               "an image of a {thickness} {digit} that is {slant}",
               "{digit}, drawn {thickness} and {slant}"),
)

PHRASINGS = {"seen": SEEN, "held_out": HELD_OUT}


# ---- levels -------------------------------------------------------------------------------------------

def _measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, H, W, C) -> {attribute: (N,) raw measure}."""
    # imported here: that module pulls in torch, which captions and sidecars need not
    from gan.strokes import attributes

    if images.ndim != 4:
        raise UserError(f"captions: images of shape {images.shape}; attributes need (N, H, W, C) images, "
                        "not 2-D points: caption an image dataset")
    return attributes(images)


def _groups(labels: np.ndarray | None, count: int) -> list[np.ndarray]:
    """Indices of each class's images (one group of all images when labels is None)."""
    if labels is None:
        return [np.arange(count)]
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise ValueError(f"labels of shape {labels.shape} for {count} images")
    if count and labels.min() < 0:
        raise UserError(f"captions: label {int(labels.min())} is negative; labels must be class ids 0, 1, ...")
    classes = int(labels.max()) + 1 if count else 0
    return [np.flatnonzero(labels == c) for c in range(classes)]


def fit_thresholds(images: np.ndarray, labels: np.ndarray | None) -> dict[str, list[list[float]]]:
    """Tertile cut points [lo, hi] of each attribute, per class (labels None: one global pair), measured
    on `images` (the training set): {"thickness": [[lo, hi], ...], "slant": [...]}, JSON-serialisable."""
    measured = _measure(images)
    groups = _groups(labels, len(images))
    for c, members in enumerate(groups):
        if len(members) < LEVELS:
            where = "in all" if labels is None else f"of class {c}"
            raise UserError(f"captions: {len(members)} image(s) {where}; cutting them into {LEVELS} levels "
                            f"needs at least {LEVELS}: add images or leave the class out")
    return {name: [[float(q) for q in np.quantile(measured[name][members], [1 / 3, 2 / 3])] for members in groups]
            for name in ATTRIBUTES}


def _cut_points(thresholds: dict, name: str, labels: np.ndarray | None, count: int) -> np.ndarray:
    """(N, 2) cut points of attribute `name` for each image: its class's pair, or the one global pair."""
    if name not in thresholds:
        raise UserError(f"captions: thresholds have no {name!r} cut points; refit them with fit_thresholds")
    pairs = np.asarray(thresholds[name], dtype=np.float64)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise UserError(f"captions: {name} thresholds of shape {pairs.shape}, expected one [lo, hi] per "
                        "class; refit them with fit_thresholds")
    if labels is None:
        if len(pairs) != 1:
            raise UserError(f"captions: thresholds hold cut points for {len(pairs)} classes but no labels "
                            "were given; pass the labels or fit global thresholds (labels=None)")
        return np.repeat(pairs, count, axis=0)
    labels = np.asarray(labels, dtype=np.int64)
    if count and (labels.min() < 0 or labels.max() >= len(pairs)):
        bad = int(labels.max() if labels.max() >= len(pairs) else labels.min())
        raise UserError(f"captions: label {bad} has no {name} cut points (fitted for classes 0-{len(pairs) - 1}); "
                        "refit the thresholds on training images that include that class")
    return pairs[labels]


def levels(images: np.ndarray, labels: np.ndarray | None, thresholds: dict) -> np.ndarray:
    """int64 (N, len(ATTRIBUTES)): each image's level per attribute, 0 below its class's lower cut point,
    2 at or above the upper one, 1 between (labels None: the global cut points)."""
    measured = _measure(images)
    if labels is not None and np.shape(labels) != (len(images),):
        raise ValueError(f"labels of shape {np.shape(labels)} for {len(images)} images")
    columns = []
    for name in ATTRIBUTES:
        cuts = _cut_points(thresholds, name, labels, len(images))
        values = measured[name]
        columns.append((values >= cuts[:, 0]).astype(np.int64) + (values >= cuts[:, 1]))
    return np.stack(columns, axis=1)


# ---- text ---------------------------------------------------------------------------------------------

def _normalise(text: str) -> str:
    """Lowercase, single spaces, no empty comma fields, "an" before a vowel sound."""
    fields = (" ".join(field.split()) for field in text.lower().split(","))
    return _ARTICLE.sub("an ", ", ".join(field for field in fields if field))


def _fill(template: str, digit: str, thickness: str, slant: str) -> str:
    return _normalise(template.format(digit=digit, thickness=thickness, slant=slant))


def caption(digit: int, thickness_level: int, slant_level: int, phrasing: Phrasing,
            rng: np.random.Generator) -> str:
    """One caption: a template and a synonym per attribute picked with `rng`, filled and normalised."""
    if not (0 <= digit < len(phrasing.digits) and 0 <= thickness_level < LEVELS and 0 <= slant_level < LEVELS):
        raise ValueError(f"caption({digit}, {thickness_level}, {slant_level}): digit 0-9 and levels 0-2")
    template = phrasing.templates[rng.integers(len(phrasing.templates))]
    thick_words = phrasing.thickness[thickness_level]
    slant_words = phrasing.slant[slant_level]
    return _fill(template, phrasing.digits[digit], thick_words[rng.integers(len(thick_words))],
                 slant_words[rng.integers(len(slant_words))])


def captions(labels: np.ndarray, levels: np.ndarray, phrasing: Phrasing, rng: np.random.Generator,
             per_image: int) -> np.ndarray:
    """Unicode array (N, per_image): `per_image` captions of each image's label and levels."""
    labels, levels = np.asarray(labels), np.asarray(levels)
    if per_image < 1:
        raise UserError(f"captions: per_image={per_image}; set it to 1 or more captions per image")
    if levels.shape != (len(labels), len(ATTRIBUTES)):
        raise ValueError(f"levels of shape {levels.shape} for {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(phrasing.digits)):
        raise UserError(f"captions: labels {int(labels.min())}-{int(labels.max())}, but generated captions "
                        "name digits 0-9; use a digit dataset or write your own captions (a .txt per image)")
    rows = [[caption(int(d), int(t), int(s), phrasing, rng) for _ in range(per_image)]
            for d, (t, s) in zip(labels, levels)]
    return np.array(rows, dtype=np.str_).reshape(len(labels), per_image)


def vocabulary_words(phrasing: Phrasing) -> set[str]:
    """Every word a caption in `phrasing` can contain (every template, digit and synonym, normalised)."""
    words: set[str] = set()
    thick = [w for level in phrasing.thickness for w in level]
    slant = [w for level in phrasing.slant for w in level]
    for template in phrasing.templates:
        for digit in phrasing.digits:
            for t in thick:
                for s in slant:
                    words.update(re.split(r"[ ,]+", _fill(template, digit, t, s)))
    return words - {""}


# ---- the user's own captions --------------------------------------------------------------------------

def _read_sidecar(image: Path) -> list[str]:
    sidecar = image.with_suffix(".txt")
    if not sidecar.is_file():
        raise UserError(f"captions: image {image} has no caption file {sidecar}; write one caption per line there")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"captions: {sidecar} (for image {image}) is not UTF-8 ({exc.reason} at byte "
                        f"{exc.start}); save it as UTF-8, one caption per line") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"captions: caption file {sidecar} (for image {image}) is empty; "
                        "write one caption per line there")
    return lines


def read_sidecars(files: list[Path]) -> list[list[str]]:
    """The captions of each image in `files`: its `.txt` beside it (UTF-8), one caption per non-empty line."""
    return [_read_sidecar(Path(f)) for f in files]


def pad_captions(lists: list[list[str]], per_image: int) -> np.ndarray:
    """Unicode array (N, per_image): each image's captions repeated cyclically, or its first `per_image`."""
    if per_image < 1:
        raise UserError(f"captions: per_image={per_image}; set it to 1 or more captions per image")
    for i, texts in enumerate(lists):
        if not texts:
            raise ValueError(f"image {i} has no captions")
    rows = [[texts[k % len(texts)] for k in range(per_image)] for texts in lists]
    return np.array(rows, dtype=np.str_).reshape(len(lists), per_image)
