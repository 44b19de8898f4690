"""The only package that talks to MLflow: the run's lifecycle, metrics, artifacts, the model, and an outbox.

One MLflow run spans a pipeline execution: train opens it (`start_run`) and writes its id to
``reports/train/run.json``; generate and evaluate reopen it from that file (`reopen_run`). The store
must never stall or break training: an unreachable one is reported in seconds, before any work
(`check_store`); everything a run logs goes through one sender thread per run, and what the store
cannot take waits in a durable outbox on disk until this run, the next one, or
``python -m gan.tracking flush`` sends it. Evaluate registers the generator (`register_generator`);
`gan sample` reads it back (`fetch_generator`).

Modules: store (which store, its client, the lock for SQLite), outbox (the entries on disk), sends (one
item of each kind), drain (sending the outbox), sender (a run's thread), runs, registry, __main__ (flush).
"""

from gan.tracking.drain import OutboxPass, flush
from gan.tracking.registry import BEST, WEIGHTS_ARTIFACT, fetch_generator, register_generator
from gan.tracking.runs import FinishReport, TrackedRun, git_commit, reopen_run, start_run
from gan.tracking.store import check_store, tracking_uri

__all__ = ["BEST", "WEIGHTS_ARTIFACT", "FinishReport", "OutboxPass", "TrackedRun", "check_store", "fetch_generator",
           "flush", "git_commit", "register_generator", "reopen_run", "start_run", "tracking_uri"]
