"""The text encoder of the text-to-image GAN: captions to token ids to one vector per caption.

Captions are tokenized with WordLlama's Llama-2 tokenizer and read through its frozen
(32000, 256) table of token vectors, both loaded from the installed wheel and never from
the network. Four choices shape the encoder:

* Tokens whose text is whitespace only (the "▁" the tokenizer puts before a numeral, tabs,
  newlines, the special tokens) carry no meaning and are dropped; the set is computed once
  from the vocabulary. Id 0 (<unk>, never produced for ordinary text) is the padding.
* Soft projection. A small encoder trained on few words reads a word it never saw ("seven"
  for "7") as noise unless the unseen vector is first written in terms of the seen ones:
  e' = softmax(τ · cos(e, V)) · V, V the vectors of the training vocabulary. The projected
  "seven" is then almost the vector of "7" (an experiment: digit words understood 94% of
  the time instead of 67% from the raw vectors), and the MLP after it only ever sees inputs
  in the span of what it was trained on.
* Abstaining. A word like no training word ("the", "image", "bold": cosine under 0.2 to all
  of them) would still be projected onto its nearest one, and "the" would read as "9". The
  softmax has one more candidate, "none of them", at cosine `floor` (0.25), and a token
  counts in the pooled mean by the weight its projection puts on the vocabulary: a seen word
  1, "seven" 1.0, "the" 0.1, "image" 0.02.
* Mean pooling over the tokens, each weighted as above (padding 0); a caption with no tokens
  pools to zeros, never to NaN. (A learned attention pooling, tried first, settled under the
  GAN's gradients on the attribute words and dropped the digit: G's sentence vectors for "a 1"
  and "a 7" had cosine 1.0.)

The "scratch" kind is the ablation with no pretrained knowledge: a learned embedding of the
training vocabulary plus one UNK row shared by every unseen id, then the same MLP and
pooling. The frozen table is a non-persistent buffer, so checkpoints stay small and a
rebuilt encoder takes it from the wheel again (its sha256 is in `describe()` for the logs).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.errors import UserError, one_line

VOCAB_SIZE = 32000  # the Llama-2 vocabulary of WordLlama's tokenizer
TABLE_DIM = 256  # WordLlama l2_supercat vectors at their full width
PAD = 0  # <unk>: never emitted for ordinary text, so it marks padding
KINDS = ("wordllama", "scratch")
WORDLLAMA_PIN = "wordllama==0.4.0.post1"


@dataclass(frozen=True)
class WordLlamaTable:
    """WordLlama's tokenizer, its token vectors and what identifies them."""

    tokenizer: Any  # a tokenizers.Tokenizer
    embedding: torch.Tensor  # float32 (VOCAB_SIZE, TABLE_DIM); shared, never modify in place
    sha256: str  # hex digest of the embedding's bytes
    blank_ids: frozenset[int]  # ids whose decoded text is whitespace only (or empty)


@functools.cache
def load_wordllama() -> WordLlamaTable:
    """WordLlama's l2_supercat tokenizer and table from the installed package's folder, offline."""
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as exc:
        raise UserError(f"the text encoder needs WordLlama, which is not installed ({one_line(exc, 120)}); "
                        f"run: pip install {WORDLLAMA_PIN}") from exc
    folder = Path(wordllama.__file__).parent
    try:
        model = WordLlama.load(cache_dir=folder, disable_download=True)
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"WordLlama's weights or tokenizer are missing from {folder} ({one_line(exc, 160)}); "
                        f"reinstall it: pip install --force-reinstall {WORDLLAMA_PIN}") from exc
    array = np.ascontiguousarray(model.embedding, dtype=np.float32)
    if array.shape != (VOCAB_SIZE, TABLE_DIM):
        raise UserError(f"WordLlama in {folder} has a {array.shape} table, expected {(VOCAB_SIZE, TABLE_DIM)}; "
                        f"install the pinned version: pip install {WORDLLAMA_PIN}")
    tokenizer = model.tokenizer
    return WordLlamaTable(tokenizer=tokenizer, embedding=torch.from_numpy(array.copy()),
                          sha256=hashlib.sha256(array.tobytes()).hexdigest(),
                          blank_ids=_blank_ids(tokenizer))


def _blank_ids(tokenizer: Any) -> frozenset[int]:
    """Ids whose text decodes to whitespace only: "▁", "▁▁", tab and newline bytes, special tokens."""
    texts = tokenizer.decode_batch([[i] for i in range(tokenizer.get_vocab_size())])
    return frozenset(i for i, text in enumerate(texts) if not text.strip())


def tokenize(texts: list[str] | np.ndarray, max_len: int = 16) -> torch.Tensor:
    """int64 (N, max_len) token ids, 0-padded; a numpy array of shape S gives (*S, max_len).

    Each caption is lowercased and stripped, whitespace-only tokens are dropped, and what is
    left is cut to its first `max_len` tokens.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    shape: tuple[int, ...] = (len(texts),)
    if isinstance(texts, np.ndarray):
        if texts.dtype.kind not in "UO":
            raise TypeError(f"tokenize needs a numpy array of strings, got dtype {texts.dtype}")
        shape, texts = texts.shape, [str(text) for text in texts.reshape(-1)]
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"tokenize needs strings, got {type(text).__name__}: {text!r}")
    table = load_wordllama()
    encodings = table.tokenizer.encode_batch([text.lower().strip() for text in texts],
                                             add_special_tokens=False)
    tokens = torch.zeros(len(texts), max_len, dtype=torch.int64)
    for row, encoding in enumerate(encodings):
        ids = [i for i in encoding.ids if i not in table.blank_ids][:max_len]
        tokens[row, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return tokens.reshape(*shape, max_len)


def vocabulary(tokens: torch.Tensor) -> list[int]:
    """The sorted unique non-padding ids of `tokens` (any shape): the training vocabulary."""
    return [int(i) for i in torch.unique(tokens) if int(i) != PAD]


class TextEncoder(nn.Module):
    """Token ids (N, L), 0 = padding, to one vector per caption (N, dim).

    kind "wordllama": frozen WordLlama vectors, softly projected onto the vocabulary's
    vectors, then Linear(256, hidden) -> GELU -> Linear(hidden, hidden) per token.
    kind "scratch": a learned Embedding(len(vocabulary) + 1, hidden), row 0 the UNK shared
    by every unseen id, then Linear(hidden, hidden) -> GELU -> Linear(hidden, hidden).
    Both average the tokens' features (masked) and end with Linear(hidden, dim).
    """

    def __init__(self, kind: str, vocabulary: list[int], dim: int = 64, hidden: int = 128,
                 temperature: float = 30.0, floor: float = 0.25):
        super().__init__()
        _check_arguments(kind, vocabulary, dim, hidden, temperature)
        self.kind, self.dim, self.hidden, self.temperature = kind, dim, hidden, float(temperature)
        self.floor = float(floor)
        ids = torch.tensor(sorted(set(vocabulary)), dtype=torch.int64)
        self.table_sha256: str | None = None
        if kind == "wordllama":
            table = load_wordllama()
            self.table_sha256 = table.sha256
            self.register_buffer("table", table.embedding, persistent=False)
            self.register_buffer("vocabulary", ids)
            width = TABLE_DIM
        else:
            lookup = torch.zeros(VOCAB_SIZE, dtype=torch.int64)
            lookup[ids] = torch.arange(1, len(ids) + 1)
            self.register_buffer("lookup", lookup)
            self.embed = nn.Embedding(len(ids) + 1, hidden)
            width = hidden
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.out = nn.Linear(hidden, dim)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, 256): each token's WordLlama vector e as softmax(τ·cos(e, V))·V; 0 at padding."""
        return self._projected(tokens)[0]

    def _projected(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected vectors (N, L, 256) and each token's weight (N, L): the softmax's mass on the
        vocabulary against the "none of them" candidate at cosine `floor`; 0 at padding."""
        if self.kind != "wordllama":
            raise ValueError(f"project() is for the 'wordllama' kind; this encoder is '{self.kind}'")
        vectors = self.table[tokens]
        basis = self.table[self.vocabulary]
        cosine = F.normalize(vectors, dim=-1) @ F.normalize(basis, dim=-1).T
        none = torch.full_like(cosine[..., :1], self.floor)
        weights = torch.softmax(self.temperature * torch.cat([cosine, none], dim=-1), dim=-1)
        known = weights[..., :-1]
        mass = known.sum(-1, keepdim=True)
        projected = (known / mass.clamp(min=1e-12)) @ basis
        present = (tokens != PAD).unsqueeze(-1).to(projected.dtype)
        return projected * present, (mass * present).squeeze(-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"TextEncoder needs token ids of shape (N, L), got {tuple(tokens.shape)}")
        if self.kind == "wordllama":
            features, weights = self._projected(tokens)
        else:
            features, weights = self.embed(self.lookup[tokens]), (tokens != PAD).float()
        return self.out(self._pool(self.mlp(features), weights))

    def _pool(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The tokens' features averaged by `weights` (N, L); zeros for a row with none. A mean, not attention:
        under the GAN's gradients a learned attention settled on the attribute words and dropped the digit's."""
        weights = weights.to(features.dtype)
        total = weights.sum(1, keepdim=True)
        return torch.einsum("nl,nlh->nh", weights, features) / torch.where(total > 0, total, 1)

    def describe(self) -> dict[str, Any]:
        """The encoder's settings, for logs and run parameters."""
        size = len(self.vocabulary) if self.kind == "wordllama" else self.embed.num_embeddings - 1
        return {"kind": self.kind, "dim": self.dim, "hidden": self.hidden,
                "temperature": self.temperature, "floor": self.floor, "vocabulary_size": size,
                "table_sha256": self.table_sha256}


def _check_arguments(kind: str, vocabulary: list[int], dim: int, hidden: int, temperature: float) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown text encoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not vocabulary:
        raise ValueError("the text encoder's vocabulary is empty; build it with vocabulary(tokenize(captions))")
    bad = [i for i in vocabulary if not 0 < int(i) < VOCAB_SIZE]
    if bad:
        raise ValueError(f"vocabulary ids must be in 1..{VOCAB_SIZE - 1} (0 is padding), got {bad[:5]}")
    if dim < 1 or hidden < 1:
        raise ValueError(f"dim and hidden must be >= 1, got dim={dim}, hidden={hidden}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
