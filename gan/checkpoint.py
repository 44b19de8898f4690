"""Training state on disk: everything needed to continue exactly, written atomically.

A checkpoint is a dict of tensors and plain values (no pickled modules), loaded with
``weights_only=True`` so that opening one never runs code.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gan.errors import UserError, one_line

FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks: the identity of weights recorded with every score."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temp file beside `path`, fsync, then os.replace: a kill leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, what: str, fix: str) -> dict[str, Any]:
    """Load a state dict written by save_atomic; a missing, corrupt or foreign file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: no {what} here; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise UserError(f"{path}: cannot read the {what} ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); delete it and {fix}") from None
    if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise UserError(f"{path}: not a {what} of format version {FORMAT_VERSION} (found {version!r}); "
                        f"delete it and {fix}")
    return state


def rng_state(*generators: torch.Generator) -> dict[str, Any]:
    """The global torch RNGs and the per-purpose generators, for an exact resume."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in generators]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], *generators: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    for gen, saved in zip(generators, state["generators"], strict=True):
        gen.set_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
