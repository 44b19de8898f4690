"""A run's one background thread: it sends queued items in order, and keeps them in the outbox while the store is down.

Callers hand an item over and return at once. While the store takes items, they are sent live. After a
send fails, that item and every later one go to the outbox, in order, and live sending resumes once the
outbox for this store has been sent (the thread tries every RETRY_SECONDS).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import one_line
from gan.tracking.drain import drain
from gan.tracking.outbox import Outbox, amount, next_seq, shown
from gan.tracking.sends import send

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RETRY_SECONDS = 3.0  # between health checks while the store does not answer
FINISH_WAIT = 5.0  # close() waits this long without progress for queued items ...
FINISH_CAP = 30.0  # ... and this long at most, before it puts them in the outbox


@dataclass(eq=False)
class QueuedItem:
    """One thing to log, handed to the sender: an outbox entry in memory, with its staged files."""

    entry: dict[str, Any]  # with its place in the order ("seq"), store, run and kind
    files: Path | None = None  # copies taken when it was handed over: the source may change later
    model: Any = None  # the live generator, sent without a reload from its weights file
    state: str = "queued"  # -> sent | kept (in the outbox) | lost; the first to decide wins
    result: Any = None


class Sender:
    """The sending thread of one run, started by its first item; `close` stops it within bounds."""

    def __init__(self, client: MlflowClient, uri: str, run_id: str, outbox: Outbox):
        self.client, self.uri, self.run_id, self.outbox = client, uri, run_id, outbox
        self.lost: Counter = Counter()  # per kind: what not even the outbox could keep
        self.down_since: float | None = None  # when the send that started the outbox failed
        self._cond = threading.Condition()
        self._items: deque[QueuedItem] = deque()
        self._inflight: QueuedItem | None = None
        self._thread: threading.Thread | None = None
        self._stopping = self._abandoned = self._closed = self._using_outbox = False
        self._next_probe = 0.0
        self._staging: Path | None = None

    def new_files(self) -> Path:
        """A fresh folder for the files of one item; they move to the outbox with it, or go once it is sent."""
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="gan-mlflow-"))
        return Path(tempfile.mkdtemp(dir=self._staging))

    def put(self, kind: str, payload: dict[str, Any], files: Path | None = None, model: Any = None) -> QueuedItem:
        if self._closed:
            raise RuntimeError(f"MLflow run {self.run_id} is finished; log to it before finish()")
        entry = {"seq": next_seq(), "uri": self.uri, "run_id": self.run_id, "kind": kind, "made": time.time(),
                 **payload}
        item = QueuedItem(entry, files, model)
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"mlflow-{self.run_id[:8]}", daemon=True)
                self._thread.start()
                atexit.register(self.close)  # a stage that ends without finish(): keep what is queued
        return item

    def wait_for(self, item: QueuedItem, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: item.state != "queued", timeout)

    def wait(self, timeout: float) -> bool:
        """Block until everything handed over so far is sent or kept in the outbox; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and self._inflight is None, timeout)

    def close(self) -> None:
        """Stop the thread within the bounds; what it has not sent or kept by then goes to the outbox."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        started = last = time.monotonic()
        left = -1
        while self._thread.is_alive():
            now = time.monotonic()
            if now - last > FINISH_WAIT or now - started > FINISH_CAP:
                self._abandon()
                break
            self._thread.join(0.1)
            if len(self._items) != left:
                left, last = len(self._items), now
        if self._staging is not None and not self._thread.is_alive():
            shutil.rmtree(self._staging, ignore_errors=True)

    def _abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            left = ([self._inflight] if self._inflight else []) + list(self._items)
            self._items.clear()
            self._cond.notify_all()
        for item in left:  # the in-flight one too: a send that hangs may never return
            self._keep_in_outbox(item)

    def _run(self) -> None:
        """Live sends while the store takes them; after a failure, the outbox, until it is sent in order."""
        self._using_outbox = bool(self.outbox.paths(self.uri))  # older entries go first
        while True:
            with self._cond:
                while not self._items and not self._stopping and not self._abandoned:
                    if not self._cond.wait(RETRY_SECONDS) and self._using_outbox:
                        break  # idle while using the outbox: time to try the store again
                if self._abandoned or (self._stopping and not self._items):
                    break
                item = self._inflight = self._items.popleft() if self._items else None
            if self._using_outbox:
                self._send_outbox_when_store_answers()
            if item is not None:
                self._send_or_keep(item)
            with self._cond:
                self._inflight = None
                self._cond.notify_all()
        if self._using_outbox and not self._abandoned:
            self._send_outbox_when_store_answers(now=True)  # the store may be back for the last word

    def _send_or_keep(self, item: QueuedItem) -> None:
        if not self._using_outbox:
            try:
                result = send(self.client, item.entry, item.files, item.model)
            except Exception as exc:  # down or erroring: this item and every later one go to the outbox
                self._divert_to_outbox(exc)
            else:
                self._mark_sent(item, result)
                return
        self._keep_in_outbox(item)

    def _divert_to_outbox(self, exc: BaseException) -> None:
        self._using_outbox = True
        if self.down_since is None:
            self.down_since = time.time()
        self._next_probe = time.monotonic() + RETRY_SECONDS
        print(f"MLflow: the store {self.uri} did not take an item ({type(exc).__name__}: {one_line(exc, 300)}); "
              f"keeping it and what follows in {shown(self.outbox.root)}/ and retrying every "
              f"{RETRY_SECONDS:g} s", flush=True)

    def _send_outbox_when_store_answers(self, now: bool = False) -> None:
        """Send the outbox for this store if it answers again; live sending resumes once it is empty."""
        if not now and time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + RETRY_SECONDS
        done = drain(self.uri, self.outbox)
        if done.sent or done.set_aside:
            print(done.summary(), flush=True)
        if done.left == 0 and done.problem is None:
            self._using_outbox, self.down_since = False, None

    def _mark_sent(self, item: QueuedItem, result: Any) -> None:
        with self._cond:
            if item.state != "queued":  # close() gave up on it meanwhile and kept it in the outbox
                return
            item.state, item.result = "sent", result
            self._cond.notify_all()
        if item.files is not None:
            shutil.rmtree(item.files, ignore_errors=True)

    def _keep_in_outbox(self, item: QueuedItem) -> None:
        with self._cond:
            if item.state != "queued":
                return
            item.state = "keeping"  # claimed: a racing close() leaves it alone
        try:
            self.outbox.put(item.entry, item.files)
            item.state = "kept"
        except OSError as exc:  # nowhere to keep it: counted and reported, training goes on
            item.state = "lost"
            self.lost[item.entry["kind"]] += amount(item.entry)
            print(f"MLflow: could not keep an item in {self.outbox.root}: {one_line(exc, 160)}", file=sys.stderr)
        with self._cond:
            self._cond.notify_all()
