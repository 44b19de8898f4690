"""Training state on disk: everything needed to continue exactly, written atomically.

A checkpoint is a dict of tensors and plain values (no pickled modules), loaded with
``weights_only=True`` so that opening one never runs code. A training checkpoint keeps
the one before it as ``prev.pt``, so that one damaged file never loses the run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from gan.errors import UserError, one_line
from gan.files import write_atomic

FORMAT_VERSION = 1
PREVIOUS = "prev.pt"  # beside last.pt: the checkpoint before it
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class _Unreadable(Exception):
    """Why a state file cannot be used; each caller words its own UserError around it."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks: the identity of weights recorded with every score."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` atomically (gan.files.write_atomic): a kill leaves the old file intact."""
    _save(state, path, f"the previous {path.name}, if any, is untouched")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Like save_atomic, but the current `path` first becomes prev.pt beside it.

    At every instant a complete `path` exists: prev.pt is made from a hard link (or a copy),
    never by moving `path` away. A damaged `path` is not rotated, so that after a resume
    from prev.pt the next save cannot replace the one good file with the bad one.
    """

    def keep_previous() -> None:
        if _intact(path):
            _keep_as_previous(path)

    _save(state, path, f"{path.name} and {PREVIOUS} there are untouched", keep_previous)


def _save(state: dict[str, Any], path: Path, kept: str, before_replace: Callable[[], None] | None = None) -> None:
    try:
        write_atomic(path, lambda handle: torch.save(state, handle), before_replace)
    except BaseException as exc:
        _raise_write_error(exc, path, kept)


def _raise_write_error(exc: BaseException, path: Path, kept: str) -> None:
    """Re-raise `exc`, as a UserError when an OSError (disk full, quota, permissions) is behind it.

    torch.save reports a failed write as a RuntimeError whose context is the OSError, so
    the whole chain is searched.
    """
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        raise exc
    fix = (f"free space on {path.parent} (or raise the quota or file size limit) and rerun"
           if cause.errno in _NO_SPACE else f"make {path.parent} writable and rerun")
    raise UserError(f"cannot write {path} ({one_line(cause, 200)}); {kept}; {fix}") from None


def _intact(path: Path) -> bool:
    """Whether `path` is a whole torch archive: every member present and its CRC-32 right.

    Reads the file once (about as fast as the disk), far cheaper than torch.load.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return False


def _keep_as_previous(path: Path) -> None:
    """`path` -> prev.pt via a temp name and os.replace, so prev.pt too is never half written."""
    tmp = path.with_name(f".{PREVIOUS}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(path, tmp)
        except OSError:  # a filesystem without hard links (FAT, some network mounts)
            shutil.copyfile(path, tmp)
        os.replace(tmp, path.with_name(PREVIOUS))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any]:
    """A state dict of this format version from `path`, or _Unreadable saying why not."""
    if not path.is_file():
        raise _Unreadable("no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise _Unreadable(f"{type(exc).__name__}: {one_line(exc, 200)}") from None
    version = state.get("version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise _Unreadable(f"format version {version!r}, this code reads {FORMAT_VERSION}")
    return state


def load(path: Path, what: str, fix: str) -> dict[str, Any]:
    """Load a state dict written by save_atomic; a missing, corrupt or foreign file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: no {what} here; {fix}")
    try:
        return _read(path)
    except _Unreadable as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc}); delete it and {fix}") from None


def remove_stale_temps(path: Path) -> int:
    """Delete the temp files that writes of `path` (and of prev.pt) left when killed; returns how many.

    Only one train runs in a checkout at a time (DVC holds the repo lock), so a temp file found
    before training starts belongs to a write that will never finish.
    """
    stale = [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{PREVIOUS}.*.tmp")]
    for file in stale:
        file.unlink(missing_ok=True)
    return len(stale)


def load_checkpoint(path: Path, what: str, fix: str) -> tuple[dict[str, Any], str | None] | None:
    """(state, None) from `path`; (state of prev.pt, a line saying why) when `path` is unreadable.

    None when neither file exists. Loading deletes and rewrites nothing, so both files stay
    there to inspect; when neither reads, the UserError names both and the way out.
    """
    previous = path.with_name(PREVIOUS)
    if not path.is_file() and not previous.is_file():
        return None
    try:
        return _read(path), None
    except _Unreadable as exc:
        latest = str(exc)
    try:
        state = _read(previous)
    except _Unreadable as exc:
        raise UserError(f"{path}: cannot read the {what} ({latest}), nor the previous one {previous.name} "
                        f"({exc}); delete the folder {path.parent} and {fix}") from None
    return state, (f"{path} is unreadable ({latest}); resuming from the previous checkpoint "
                   f"{previous.name} (step {state.get('step', '?')})")


def rng_state(*generators: torch.Generator) -> dict[str, Any]:
    """The CPU's global torch RNG and the per-purpose generators (with their device types), for an exact resume.

    Nothing draws from the global CUDA RNGs (every draw names its generator), so their state, which
    is tied to how many GPUs a machine has, is not kept.
    """
    return {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in generators],
            "devices": [g.device.type for g in generators]}


def restore_rng(state: dict[str, Any], *generators: torch.Generator, step: int = 0) -> str:
    """Put the saved states back; returns "" when every stream continues exactly, else a note on what did not.

    A generator saved on another device type (a CUDA checkpoint resumed with train.device: cpu) has
    a state this device cannot take: it is reseeded from its own seed and `step` instead, so the
    resumed run is reproducible but draws other batches and latents than the original would have.
    """
    torch.set_rng_state(state["torch"])
    devices = state.get("devices") or ["cpu"] * len(generators)
    moved = []
    for gen, saved, device in zip(generators, state["generators"], devices, strict=True):
        if device == gen.device.type:
            gen.set_state(saved)
        else:
            gen.manual_seed((gen.initial_seed() * 1_000_003 + step) % 2**63)
            moved.append(device)
    if not moved:
        return ""
    return (f"the checkpoint's random streams were drawn on {moved[0]} and this run draws on "
            f"{generators[0].device.type}; they restart from (seed, step {step}), so the rest of the run is "
            f"reproducible but not the one an uninterrupted {moved[0]} run would have drawn")
