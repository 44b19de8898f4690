"""Writing a file so that a reader, or a kill at any instant, sees the old content or the new, never half."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: Path, write: Callable[[BinaryIO], None],
                 before_replace: Callable[[], None] | None = None) -> None:
    """`write(handle)` into a temp file beside `path`, fsync it, then os.replace it onto `path`.

    The folder is fsynced too, or after a power cut the rename itself may be lost. `before_replace`
    runs once the new content is safe on disk, just before it takes the name (checkpoints keep the
    old file as prev.pt there). On any failure the temp file is removed and `path` is as it was.
    The temp file is named `.<name>.<random>.tmp`, so a writer killed mid-way leaves something a
    glob finds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a filesystem that cannot sync folders
            raise
    finally:
        os.close(fd)
