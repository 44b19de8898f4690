"""The captions of a text-to-image dataset, made in prepare (task.name=text).

- Digits (mnist5k, mnist): each training image gets `task.captions` captions in the seen phrasing
  (gan.captions.SEEN: numerals, "thin"/"thick", "leaning left"/"upright"/"leaning right"), from its
  label and its stroke thickness and slant measured on its own pixels, binned into three levels at
  per-class tertiles of the training images. The held-out images get captions in the same phrasing,
  so the in-training score can condition on them. The held-out phrasing (digit words, synonyms, other
  templates) never appears in the prepared data: evaluate alone writes it (gan.tasks.prompting).
- A folder: the user's own captions, a .txt beside each image, one caption per line.

The captions are stored as `caption` (N, K) unicode and their tokens as `tokens` (N, K, L) in train.npz and
test.npz, covered by meta.json's sha256; meta.json's `text` records the tokenizer, the training vocabulary
(the token ids of the training captions, which the encoders are built on) and the thresholds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MAX_LEN = 16  # tokens per caption; longer captions are cut (the digits' captions need at most 12)


def derive(cfg: Any, split: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    """([train captions, test captions, train tokens, test tokens], meta.json's `text` entry)."""
    from gan import captions, text

    k = cfg.task.captions
    if cfg.data.name == "folder":
        train = captions.pad_captions(captions.read_sidecars(split.files[0]), k)
        test = captions.pad_captions(captions.read_sidecars(split.files[1]), k)
        entry: dict[str, Any] = {"captions": "the .txt beside each image, one caption per line"}
    else:
        thresholds = captions.fit_thresholds(split.train_x, split.train_y)
        rng = np.random.default_rng([cfg.seed, 0x63617074])  # "capt"
        train, test = (captions.captions(y, captions.levels(x, y, thresholds), captions.SEEN, rng, k)
                       for x, y in ((split.train_x, split.train_y), (split.test_x, split.test_y)))
        entry = {"captions": "made from the label and the stroke's thickness and slant, binned at per-class "
                             "tertiles of the training images, in the seen phrasing (gan.captions.SEEN)",
                 "thresholds": thresholds}
    train_tokens, test_tokens = text.tokenize(train, MAX_LEN).numpy(), text.tokenize(test, MAX_LEN).numpy()
    table = text.load_wordllama()
    entry.update(tokenizer="WordLlama 0.4.0 (Llama-2 vocabulary), lowercased, whitespace tokens dropped",
                 embedding_sha256=table.sha256, max_len=MAX_LEN, per_image=k,
                 vocabulary=text.vocabulary(torch.as_tensor(train_tokens)))
    return [train, test, train_tokens, test_tokens], entry
