"""Which MLflow store, whether it answers, and a client of it: opened, and its experiment made, once.

The store is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo root>/mlflow.db`` where the repo
root is ``DVC_ROOT`` (set by DVC, also for queued experiments running in temp dirs). Parallel queue
workers share one SQLite file: the first request of a process (which creates or migrates the schema)
and the experiment's creation take turns under a file lock beside it, ``<store>.lock``.
"""

from __future__ import annotations

import fcntl
import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, TypeVar

from gan.errors import UserError, one_line
from gan.tracking.outbox import repo_root

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PROBE_TIMEOUT = 2.0  # seconds a health check waits for any HTTP answer
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
T = TypeVar("T")

# MLflow's own defaults retry an unreachable server for about four minutes (7 retries, backoff 2,
# timeout 120 s). The sender retries on its own schedule, so one MLflow call gives up in seconds.
# MLflow reads these at each request; a value the user set is kept.
MLFLOW_SETTINGS = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def apply_mlflow_settings() -> None:
    """Set MLflow's HTTP retries and telemetry in this process's environment; called before each new client."""
    for name, value in MLFLOW_SETTINGS.items():
        os.environ.setdefault(name, value)


def experiment_name() -> str:
    return os.environ.get("GAN_MLFLOW_EXPERIMENT", "gan")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_uri()


def local_uri() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def retry(call: Callable[[], T], attempts: int = 8) -> T:
    """SQLite answers 'database is locked' while a parallel queue worker writes: wait and retry.

    Written by hand: no retry library (tenacity, backoff) is installed with mlflow or dvc, and this
    loop is ten lines.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        yield


def store_lock(uri: str) -> ContextManager[None]:
    """One process at a time in the block, for a SQLite store (a file beside it); no lock for a server.

    MLflow creates and migrates a SQLite schema at a process's first request, without a lock of its
    own: parallel queue workers on a fresh store collided there (alembic's 'expected to match one row',
    'duplicate column name').
    """
    path = _sqlite_path(uri)
    return _flock(path.with_name(path.name + ".lock")) if path is not None else nullcontext()


def probe(uri: str) -> str | None:
    """Why the store at `uri` cannot answer now, or None when it can.

    A plain GET with a short timeout and no retries: any HTTP answer, even an error status,
    means a server is there. MLflow's own client would retry for minutes first.
    """
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT):
                return None
        except urllib.error.HTTPError:
            return None
        except Exception as exc:  # refused, timed out, no such host, not HTTP at all
            return one_line(getattr(exc, "reason", None) or exc, 160) or type(exc).__name__
    path = _sqlite_path(uri)
    if path is not None:
        return None if path.parent.is_dir() else f"its folder {path.parent} does not exist"
    return None


def check_store() -> str:
    """The tracking URI once its store answers; else a UserError within seconds, before any work."""
    uri = tracking_uri()
    problem = probe(uri)
    if problem is None:
        return uri
    if uri.startswith("sqlite:///"):
        todo = "create that folder or fix MLFLOW_TRACKING_URI"
    else:
        todo = f"start the server, or unset MLFLOW_TRACKING_URI to use the local store {local_uri()}"
    raise UserError(f"MLflow store {uri} is not reachable ({problem}); {todo}")


def open_client(uri: str) -> MlflowClient:
    """A client of `uri` whose first request (which may create or migrate a SQLite schema) is done."""
    apply_mlflow_settings()
    from mlflow.tracking import MlflowClient

    with store_lock(uri):
        client = MlflowClient(uri)
        retry(lambda: client.search_experiments(max_results=1))
    return client


def experiment_id(client: MlflowClient) -> str:
    """Get or create the experiment, one queue worker at a time on a SQLite store."""
    from mlflow.exceptions import MlflowException

    name = experiment_name()
    found = retry(lambda: client.get_experiment_by_name(name))
    if found is not None:
        return found.experiment_id
    uri = tracking_uri()
    path = _sqlite_path(uri)
    # beside the store, so runs from `dvc exp run --queue` temp dirs land in one place
    location = (path.resolve().parent / "mlartifacts").as_uri() if path is not None else None
    with store_lock(uri):
        try:
            # the kind opens the experiment in the UI's model-training view, not its GenAI view
            return retry(lambda: client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS))
        except MlflowException:  # made meanwhile by a worker on a server, which has no lock here
            found = retry(lambda: client.get_experiment_by_name(name))
            if found is None:
                raise
            return found.experiment_id
