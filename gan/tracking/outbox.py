"""The outbox: what the MLflow store could not take yet, kept on disk, durable and in order.

gan.tracking.sender puts an item here when a send fails and sends the entries when the store answers
again; this module only stores, lists, counts and describes them, and never talks to the store.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from gan.files import write_atomic


def repo_root() -> Path:
    """The main repository: DVC_ROOT (set by DVC, also in a queued experiment's temp copy), else here."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


_seq_lock = threading.Lock()
_last_seq = [0]


def next_seq() -> str:
    """A name that sorts in the order items were handed over, within and across processes."""
    with _seq_lock:
        _last_seq[0] = max(time.time_ns(), _last_seq[0] + 1)  # never backwards, even if the clock is
        return f"{_last_seq[0]:020d}-{os.getpid()}"


class Outbox:
    """Entries the store could not take yet: `<seq>-<store key>.json` each, with their files beside.

    The name sorts in the order the items were handed over and says which store the entry is
    for, so that checking a store's backlog reads no file (the sender does it every few seconds
    while the store is down). The JSON is written atomically and after its files, so a
    half-written entry is never read; it records the tracking URI and run id. Entries the store
    refused for good (their run is gone, a value it rejects) move to `rejected/` with the reason,
    so they never block the rest.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def default(cls) -> Outbox:
        return cls(Path(os.environ.get("GAN_MLFLOW_OUTBOX") or repo_root() / ".mlflow-outbox"))

    @property
    def rejected(self) -> Outbox:
        return Outbox(self.root / "rejected")

    def put(self, entry: dict[str, Any], files: Path | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{entry['seq']}-{store_key(entry['uri'])}.json"
        if files is not None and files.is_dir():
            shutil.move(str(files), str(self.files(path)))
        text = json.dumps(entry).encode()
        write_atomic(path, lambda handle: handle.write(text))

    def paths(self, uri: str | None = None) -> list[Path]:
        """The entries' files, oldest first, of one store or of all."""
        pattern = f"*-{store_key(uri)}.json" if uri else "*.json"
        return sorted(self.root.glob(pattern)) if self.root.is_dir() else []

    def entries(self, uri: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
        """(path, entry) oldest first, of one store or of all."""
        found = []
        for path in self.paths(uri):
            try:
                found.append((path, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue  # sent and removed by another process meanwhile
        return found

    @staticmethod
    def files(path: Path) -> Path:
        return path.with_suffix(".files")

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        shutil.rmtree(self.files(path), ignore_errors=True)

    def set_aside(self, path: Path, entry: dict[str, Any], reason: str) -> None:
        self.rejected.put({**entry, "rejected": reason}, self.files(path))
        path.unlink(missing_ok=True)

    @contextmanager
    def lock(self, wait: float) -> Iterator[bool]:
        """One sender of the outbox at a time, across processes, so entries go once and in order."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def store_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:12]


def amount(entry: dict[str, Any]) -> int:
    """How many things an entry holds: metric values, tags, or one artifact, model or status."""
    if entry["kind"] == "metrics":
        return len(entry["metrics"])
    return len(entry["tags"]) if entry["kind"] == "tags" else 1


def count_by_kind(entries: Iterable[tuple[Path, dict[str, Any]]], run_id: str | None = None) -> Counter:
    counts: Counter = Counter()
    for _, entry in entries:
        if run_id is None or entry.get("run_id") == run_id:
            counts[entry["kind"]] += amount(entry)
    return counts


_NOUNS = {"metrics": ("metric value", "metric values"), "tags": ("tag", "tags"),
          "artifact": ("artifact", "artifacts"), "generator": ("generator model", "generator models"),
          "status": ("run status", "run statuses")}


def describe(counts: dict[str, int]) -> str:
    """'1,234 metric values, 3 artifacts, the run status': what a count of outbox entries holds."""
    parts = []
    for kind, (one, many) in _NOUNS.items():
        n = counts.get(kind, 0)
        if n == 1 and kind in ("generator", "status"):
            parts.append(f"the {one}")
        elif n:
            parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts)


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
