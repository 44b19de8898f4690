"""Sending the outbox to the stores its entries name, oldest first, one process at a time.

Called by a run's sender once the store answers again, by every stage as it connects (what earlier
runs left goes first), and by `python -m gan.tracking flush`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from gan.errors import UserError, one_line
from gan.tracking.outbox import Outbox, amount, describe, shown
from gan.tracking.sends import BATCH_LIMIT, refusal, send
from gan.tracking.store import check_store, open_client, probe

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

START_DRAIN_SECONDS = 10.0  # what a stage spends sending an old outbox as it connects, before going on
Group = list[tuple[Path, dict[str, Any]]]


@dataclass
class OutboxPass:
    """What one pass over the outbox sent to a store, set aside, and left."""

    uri: str
    outbox: Path
    sent: Counter = field(default_factory=Counter)
    set_aside: dict[str, str] = field(default_factory=dict)  # run id -> why the store refused its entries
    left: int = 0  # entries still waiting for this store
    problem: str | None = None  # why it stopped before the end

    def summary(self) -> str:
        lines = []
        if self.sent:
            lines.append(f"MLflow: sent {describe(self.sent)} from {shown(self.outbox)}/ to {self.uri}")
        for run_id, why in self.set_aside.items():
            lines.append(f"MLflow: entries of run {run_id} set aside in {shown(self.outbox / 'rejected')}/: {why}")
        if self.left:
            lines.append(f"MLflow: {self.left} entries for {self.uri} stay in {shown(self.outbox)}/ "
                         f"({self.problem or 'not sent'})")
        return "\n".join(lines) or f"MLflow: nothing in {shown(self.outbox)}/ for {self.uri}"


def connect() -> MlflowClient:
    """A client of the checked store, after sending what earlier runs left in the outbox for it."""
    uri = check_store()
    try:
        client = open_client(uri)
    except Exception as exc:
        raise UserError(f"MLflow store {uri} is not reachable ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); start the server or fix MLFLOW_TRACKING_URI") from None
    import mlflow  # only now: open_client set MLflow's environment, and it reads telemetry's at import

    mlflow.set_tracking_uri(uri)
    done = drain(uri, Outbox.default(), seconds=START_DRAIN_SECONDS, lock_wait=1.0)
    if done.sent or done.set_aside:
        print(done.summary(), flush=True)
    return client


def drain(uri: str, outbox: Outbox, seconds: float | None = None, lock_wait: float = 0.0) -> OutboxPass:
    """Send the outbox's entries for `uri` to it, oldest first, stopping at the first it cannot take now.

    Entries the store refused for good are set aside rather than stopping the rest. Entries stay
    in the outbox until sent, so a pass cut short (store down, `seconds` spent) loses nothing.
    """
    done = OutboxPass(uri, outbox.root)
    if not outbox.paths(uri):
        return done
    with outbox.lock(lock_wait) as locked:
        if not locked:
            done.problem = "another process is sending the outbox"
        else:
            done.problem = probe(uri)
            if done.problem is None:
                _send_entries(outbox, done, None if seconds is None else time.monotonic() + seconds)
        done.left = len(outbox.paths(uri))
    return done


def flush(outbox: Outbox, lock_wait: float = 30.0) -> list[OutboxPass]:
    """Send every entry of `outbox` to the store it records, oldest first; one OutboxPass per store."""
    return [drain(uri, outbox, lock_wait=lock_wait) for uri in sorted({e["uri"] for _, e in outbox.entries()})]


def _send_entries(outbox: Outbox, done: OutboxPass, deadline: float | None) -> None:
    try:
        client = open_client(done.uri)
    except Exception as exc:
        done.problem = f"{type(exc).__name__}: {one_line(exc, 200)}"
        return
    for group in _groups(outbox.entries(done.uri)):
        if deadline is not None and time.monotonic() > deadline:
            done.problem = "out of time; the rest goes later"
            return
        entry = _merged([entry for _, entry in group])
        try:
            send(client, entry, outbox.files(group[0][0]))
        except Exception as exc:
            why = refusal(exc, entry)
            if why is None:
                done.problem = f"{type(exc).__name__}: {one_line(exc, 200)}"
                return
            for path, one in group:
                outbox.set_aside(path, one, why)
            done.set_aside.setdefault(entry.get("run_id", "?"), why)
            continue
        for path, _ in group:
            outbox.remove(path)
        done.sent[entry["kind"]] += amount(entry)


def _groups(entries: Group) -> Iterator[Group]:
    """Entries in order, consecutive metrics of one run together up to MLflow's batch limit.

    A run that lost its store for an hour leaves one entry per Reporter flush; sending them
    as full batches takes a few calls instead of hundreds. The order is kept.
    """
    group: Group = []
    for path, entry in entries:
        if group and not _joins(group, entry):
            yield group
            group = []
        group.append((path, entry))
    if group:
        yield group


def _joins(group: Group, entry: dict[str, Any]) -> bool:
    first = group[0][1]
    return (entry.get("kind") == first.get("kind") == "metrics" and entry.get("run_id") == first.get("run_id")
            and sum(len(e.get("metrics", [])) for _, e in group) + len(entry.get("metrics", [])) <= BATCH_LIMIT)


def _merged(entries: list[dict[str, Any]]) -> dict[str, Any]:
    if len(entries) == 1:
        return entries[0]
    return {**entries[0], "metrics": [value for entry in entries for value in entry["metrics"]]}
