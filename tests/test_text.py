"""The text encoder: offline loading, tokenization, the soft projection, UNK, checkpoints, gradients."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from gan import text
from gan.errors import UserError
from gan.text import TextEncoder, load_wordllama, tokenize, vocabulary

CAPTIONS = "0 1 2 3 4 5 6 7 8 9 thin thick leaning left right upright"
NUMERALS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def vocab() -> list[int]:
    return vocabulary(tokenize([CAPTIONS]))


def single_id(word: str) -> int:
    ids = tokenize([word])[0]
    assert ids[1] == 0, f"{word!r} is more than one token: {ids.tolist()}"
    return int(ids[0])


def test_loading_and_tokenizing_make_no_network_connection():
    script = textwrap.dedent("""
        import socket
        def refuse(*args, **kwargs):
            raise AssertionError("network connection attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from gan.text import load_wordllama, tokenize
        table = load_wordllama()
        assert tuple(table.embedding.shape) == (32000, 256), table.embedding.shape
        assert table.embedding.dtype.is_floating_point and table.embedding.dtype.itemsize == 4
        assert len(table.sha256) == 64
        print(tokenize(["seven thin"]).tolist())
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[[9881, 16835" in result.stdout


def test_missing_wordllama_is_a_user_error_naming_the_pin(monkeypatch):
    load_wordllama.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)  # import wordllama -> ImportError
    try:
        with pytest.raises(UserError, match=r"pip install wordllama==0\.4\.0\.post1") as caught:
            load_wordllama()
        assert "\n" not in str(caught.value)
    finally:
        load_wordllama.cache_clear()


def test_tokenize_drops_whitespace_tokens_and_pads_with_zero():
    table = load_wordllama()
    raw = table.tokenizer.encode("7 thin", add_special_tokens=False).ids
    assert any(i in table.blank_ids for i in raw)  # the tokenizer does emit "▁" before the numeral
    tokens = tokenize(["7 thin", "a\tb\nc"], max_len=6)
    assert tokens.dtype == torch.int64 and tokens.shape == (2, 6)
    assert tokens[0].tolist() == [29955, 16835, 0, 0, 0, 0]
    decoded = [table.tokenizer.decode([i]) for i in tokens[tokens != 0].tolist()]
    assert all(piece.strip() for piece in decoded), decoded


def test_tokenize_truncates_and_is_case_insensitive():
    long = tokenize([CAPTIONS], max_len=4)
    assert long.tolist() == [[single_id(d) for d in "0123"]]
    assert torch.equal(tokenize(["  Seven THIN  "]), tokenize(["seven thin"]))
    assert torch.equal(tokenize([""]), torch.zeros(1, 16, dtype=torch.int64))


def test_tokenize_reshapes_numpy_arrays():
    captions = np.array([["7 thin", "seven"], ["left", "Right upright"], ["", "3"]])
    tokens = tokenize(captions, max_len=5)
    assert tokens.shape == (3, 2, 5)
    flat = tokenize(captions.reshape(-1).tolist(), max_len=5)
    assert torch.equal(tokens.reshape(6, 5), flat)
    assert torch.equal(tokens[1, 1], tokenize(["right upright"], max_len=5)[0])


def test_vocabulary_is_sorted_unique_and_without_padding():
    tokens = torch.tensor([[5, 3, 0], [3, 9, 0]])
    assert vocabulary(tokens) == [3, 5, 9]


def test_soft_projection_carries_seven_to_the_numeral(vocab):
    encoder = TextEncoder("wordllama", vocab)
    numerals = tokenize(NUMERALS)
    seven = encoder.project(tokenize(["seven"]))[0, 0]
    projected = encoder.project(numerals)[:, 0]
    raw = encoder.table[numerals[:, 0]]
    for targets in (projected, raw):
        similarity = F.cosine_similarity(seven.unsqueeze(0), targets)
        assert int(similarity.argmax()) == 7, similarity
    # the point of projecting: "seven" lands almost on the numeral (raw vectors: cosine 0.72)
    assert F.cosine_similarity(seven, projected[7], dim=0) > 0.95
    assert encoder.project(tokenize(["seven"])).shape == (1, 16, 256)


def test_words_like_no_training_word_abstain_from_the_mean(vocab):
    """ "the" is nearest to "9" (cosine 0.16) among the training words: projected, it would read as a digit.
    It abstains instead, so "the 7" pools to almost what "7" pools to, while a seen word keeps its weight."""
    torch.manual_seed(0)
    encoder = TextEncoder("wordllama", vocab)
    weights = encoder._projected(tokenize(["the", "seven", "thin"]))[1][:, 0]
    assert weights[0] < 0.2 and weights[1] > 0.95 and weights[2] > 0.999, weights
    seven, the_seven, nine = encoder(tokenize(["7", "the 7", "9"]))
    assert F.cosine_similarity(the_seven, seven, dim=0) > 0.99
    assert F.cosine_similarity(the_seven, seven, dim=0) > F.cosine_similarity(the_seven, nine, dim=0)


def test_unknown_kind_is_rejected_with_the_choices(vocab):
    with pytest.raises(ValueError, match="wordllama, scratch"):
        TextEncoder("bert", vocab)


def test_scratch_maps_unseen_words_to_one_unk(vocab):
    torch.manual_seed(0)
    encoder = TextEncoder("scratch", vocab)
    out = encoder(tokenize(["seven", "banana", "thin"]))
    assert torch.equal(out[0], out[1])  # two unseen words: the same UNK
    assert not torch.allclose(out[0], out[2])  # a seen word has its own row
    assert encoder.lookup[single_id("seven")] == 0 and encoder.lookup[single_id("thin")] > 0


@pytest.mark.parametrize("kind", text.KINDS)
def test_state_dict_excludes_the_table_and_round_trips(kind, vocab):
    torch.manual_seed(1)
    encoder = TextEncoder(kind, vocab)
    state = encoder.state_dict()
    assert "table" not in state
    assert all(value.numel() < 32000 * 256 for value in state.values())
    torch.manual_seed(2)
    rebuilt = TextEncoder(kind, vocab)
    tokens = tokenize(["7 thin leaning left", "seven thick", ""])
    assert not torch.equal(rebuilt(tokens), encoder(tokens))  # different seeds, different weights
    rebuilt.load_state_dict(state)
    assert torch.equal(rebuilt(tokens), encoder(tokens))


@pytest.mark.parametrize("kind", text.KINDS)
def test_gradients_reach_every_parameter_but_not_the_table(kind, vocab):
    encoder = TextEncoder(kind, vocab)
    encoder(tokenize(["7 thin", "seven upright", "banana"])).square().sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    if kind == "wordllama":
        assert not encoder.table.requires_grad and encoder.table.grad is None
        assert all(parameter is not encoder.table for parameter in encoder.parameters())


@pytest.mark.parametrize("kind", text.KINDS)
def test_padding_only_rows_are_finite(kind, vocab):
    encoder = TextEncoder(kind, vocab, dim=8)
    tokens = torch.zeros(2, 16, dtype=torch.int64)
    tokens[1, 0] = single_id("thin")
    out = encoder(tokens)
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def test_describe_names_the_settings(vocab):
    described = TextEncoder("wordllama", vocab, dim=32, hidden=64, temperature=10.0).describe()
    assert described == {"kind": "wordllama", "dim": 32, "hidden": 64, "temperature": 10.0, "floor": 0.25,
                         "vocabulary_size": len(vocab), "table_sha256": load_wordllama().sha256}
