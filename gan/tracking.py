"""The only module that talks to MLflow: the run's lifecycle, metrics, artifacts, the model, and an outbox.

One MLflow run spans a pipeline execution. train opens it and writes its id to
``reports/train/run.json``; generate and evaluate reopen it from that file. The store is
``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo root>/mlflow.db`` where the repo
root is ``DVC_ROOT`` (set by DVC, also for queued experiments running in temp dirs).

The store must never stall or break training. An unreachable store is reported in seconds,
before any work (`check_store`). Metrics, tags, artifacts and the model go to one sender
thread per run, so no caller waits on the store; when a send fails, that item and every later
one go to a durable outbox on disk (``<repo root>/.mlflow-outbox/``, or ``GAN_MLFLOW_OUTBOX``),
in order, and are sent when the store answers again: by this run, by the next run that reaches
the store, or by ``python -m gan.tracking flush``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from gan.errors import UserError, one_line
from gan.outbox import Outbox, amount, count_by_kind, describe, next_seq, repo_root, shown

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow's own defaults retry an unreachable server for about four minutes (7 retries, backoff 2,
# timeout 120 s). The sender below retries on its own schedule, so one MLflow call gives up in
# seconds. MLflow reads these at each request, so setting them before its first call is enough.
for _name, _value in {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}.items():
    os.environ.setdefault(_name, _value)

EXPERIMENT = os.environ.get("GAN_MLFLOW_EXPERIMENT", "gan")
_BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call
PROBE_TIMEOUT = 2.0  # seconds a health check waits for any HTTP answer
RETRY_SECONDS = 3.0  # between health checks while the store does not answer
FINISH_WAIT = 5.0  # finish() waits this long without progress for queued items ...
FINISH_CAP = 30.0  # ... and this long at most, before it puts them in the outbox
MODEL_WAIT = 120.0  # log_generator waits this long for the model to be sent or kept
START_DRAIN_SECONDS = 10.0  # what start_run/reopen_run spend sending an old outbox before going on
FLUSH_HINT = "`python -m gan.tracking flush`"
T = TypeVar("T")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or _local_uri()


def _local_uri() -> str:
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def _retry(call: Callable[[], T], attempts: int = 8) -> T:
    """SQLite answers 'database is locked' while a parallel queue worker writes: wait and retry."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _probe(uri: str) -> str | None:
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
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        return None if folder.is_dir() else f"its folder {folder} does not exist"
    return None


def check_store() -> str:
    """The tracking URI once its store answers; else a UserError within seconds, before any work."""
    uri = tracking_uri()
    problem = _probe(uri)
    if problem is None:
        return uri
    if uri.startswith("sqlite:///"):
        todo = "create that folder or fix MLFLOW_TRACKING_URI"
    else:
        todo = f"start the server, or unset MLFLOW_TRACKING_URI to use the local store {_local_uri()}"
    raise UserError(f"MLflow store {uri} is not reachable ({problem}); {todo}")


def _client() -> MlflowClient:
    """A client of the checked store, after sending what earlier runs left in the outbox for it."""
    uri = check_store()
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        _retry(lambda: client.search_experiments(max_results=1))
    except Exception as exc:
        raise UserError(f"MLflow store {uri} is not reachable ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); start the server or fix MLFLOW_TRACKING_URI") from None
    done = drain(uri, Outbox.default(), seconds=START_DRAIN_SECONDS, lock_wait=1.0)
    if done.sent or done.set_aside:
        print(done.summary(), flush=True)
    return client


EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def _experiment_id(client: MlflowClient) -> str:
    """Get or create the experiment; two queue workers may race to create it."""
    from mlflow.exceptions import MlflowException

    found = _retry(lambda: client.get_experiment_by_name(EXPERIMENT))
    if found is not None:
        return found.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # beside the store, so runs from `dvc exp run --queue` temp dirs land in one place
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    try:
        # the kind opens the experiment in the UI's model-training view, not its GenAI view
        return _retry(lambda: client.create_experiment(EXPERIMENT, artifact_location=location, tags=EXPERIMENT_TAGS))
    except MlflowException:
        found = _retry(lambda: client.get_experiment_by_name(EXPERIMENT))
        if found is None:
            raise
        return found.experiment_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


# ---------------------------------------------------------------------------------------------
# Sending one item or entry; the same code for live items and for the outbox

def _send_metrics(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in entry["metrics"]]
    _retry(lambda: client.log_batch(entry["run_id"], metrics=metrics))


def _send_tags(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import RunTag

    tags = [RunTag(key, value) for key, value in entry["tags"].items()]
    _retry(lambda: client.log_batch(entry["run_id"], tags=tags))


def _send_datasets(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [DatasetInput(Dataset(name=d["name"], digest=d["digest"], source_type="local",
                                   source=json.dumps({"uri": d["source"]}), profile=json.dumps(d["profile"])),
                           tags=[InputTag("mlflow.data.context", d["context"])]) for d in entry["datasets"]]
    _retry(lambda: client.log_inputs(entry["run_id"], datasets=inputs))


def _send_artifact(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    _retry(lambda: client.log_artifact(entry["run_id"], str(files / entry["file"]), entry["folder"]))


def _send_status(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    _retry(lambda: client.set_terminated(entry["run_id"], entry["status"], entry["end_time"]))


def _send_generator(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> str:
    """Log G as an MLflow model that `mlflow.pytorch.load_model` loads; returns its model URI.

    Pickle format with this package's code bundled (code_paths), so the model loads anywhere
    with torch installed and takes any batch size; the pt2 format would fix the batch size to
    the input example's. From the outbox, G is rebuilt from the weights file kept beside the entry.
    """
    import mlflow
    import mlflow.pytorch
    import numpy as np

    if model is None:
        from gan.models import load_generator

        model, _ = load_generator(files / entry["weights"])
    example = np.load(files / "example.npy") if entry["example"] else None
    package = str(Path(__file__).resolve().parent)
    mlflow.set_tracking_uri(entry["uri"])
    with mlflow.start_run(run_id=entry["run_id"]):
        info = mlflow.pytorch.log_model(model, name="generator", input_example=example,
                                        pip_requirements=entry["requirements"], code_paths=[package],
                                        serialization_format="pickle")
    _retry(lambda: client.update_run(entry["run_id"], status="RUNNING"))  # start_run's exit ended it
    return info.model_uri


_SENDERS = {"metrics": _send_metrics, "tags": _send_tags, "artifact": _send_artifact, "datasets": _send_datasets,
            "generator": _send_generator, "status": _send_status}


def _send(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any = None) -> Any:
    return _SENDERS[entry["kind"]](client, entry, files, model)


# The store answered and refused the entry; sending it again would be refused the same way.
_REFUSALS = {"INVALID_PARAMETER_VALUE", "INVALID_STATE", "BAD_REQUEST", "PERMISSION_DENIED"}


def _refusal(exc: BaseException, entry: dict[str, Any]) -> str | None:
    """Why the store refused `entry` for good, or None when the failure may pass (down, erroring)."""
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return f"run {entry['run_id']} is not in the store {entry['uri']}"
    if code in _REFUSALS:
        return f"the store refused it: {one_line(exc, 200)}"
    if isinstance(exc, (KeyError, TypeError, FileNotFoundError, UserError)):  # the entry, not the store
        return f"not a complete outbox entry ({type(exc).__name__}: {one_line(exc, 120)})"
    return None


@dataclass
class Drained:
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


def drain(uri: str, outbox: Outbox, seconds: float | None = None, lock_wait: float = 0.0) -> Drained:
    """Send the outbox's entries for `uri` to it, oldest first, stopping at the first it cannot take now.

    Entries the store refused for good are set aside rather than stopping the rest. Entries stay
    in the outbox until sent, so a pass cut short (store down, `seconds` spent) loses nothing.
    """
    done = Drained(uri, outbox.root)
    if not outbox.paths(uri):
        return done
    with outbox.lock(lock_wait) as locked:
        if not locked:
            done.problem = "another process is sending the outbox"
        else:
            done.problem = _probe(uri)
            if done.problem is None:
                _drain_locked(outbox, done, None if seconds is None else time.monotonic() + seconds)
        done.left = len(outbox.paths(uri))
    return done


def _drain_locked(outbox: Outbox, done: Drained, deadline: float | None) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(done.uri)
    for group in _groups(outbox.entries(done.uri)):
        if deadline is not None and time.monotonic() > deadline:
            done.problem = "out of time; the rest goes later"
            return
        entry = _merged([entry for _, entry in group])
        try:
            _send(client, entry, outbox.files(group[0][0]))
        except Exception as exc:
            why = _refusal(exc, entry)
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


def _groups(entries: list[tuple[Path, dict[str, Any]]]) -> Iterator[list[tuple[Path, dict[str, Any]]]]:
    """Entries in order, consecutive metrics of one run together up to MLflow's batch limit.

    A run that lost its store for an hour leaves one entry per Reporter flush; sending them
    as full batches takes a few calls instead of hundreds. The order is kept.
    """
    group: list[tuple[Path, dict[str, Any]]] = []
    for path, entry in entries:
        if group and not _joins(group, entry):
            yield group
            group = []
        group.append((path, entry))
    if group:
        yield group


def _joins(group: list[tuple[Path, dict[str, Any]]], entry: dict[str, Any]) -> bool:
    first = group[0][1]
    return (entry.get("kind") == first.get("kind") == "metrics" and entry.get("run_id") == first.get("run_id")
            and sum(len(e.get("metrics", [])) for _, e in group) + len(entry.get("metrics", [])) <= _BATCH_LIMIT)


def _merged(entries: list[dict[str, Any]]) -> dict[str, Any]:
    if len(entries) == 1:
        return entries[0]
    return {**entries[0], "metrics": [value for entry in entries for value in entry["metrics"]]}


# ---------------------------------------------------------------------------------------------
# The run

@dataclass(eq=False)
class _Item:
    """One thing to log, handed to the sender: an outbox entry in memory, with its staged files."""

    entry: dict[str, Any]  # with its place in the order ("seq"), store, run and kind
    files: Path | None = None  # copies taken when it was handed over: the source may change later
    model: Any = None  # the live generator, sent without a reload from its weights file
    state: str = "queued"  # -> sent | spooled | lost; the first to settle it wins
    result: Any = None


@dataclass(frozen=True)
class FinishReport:
    """What finish() could not deliver to the store. All empty: the store has everything."""

    uri: str
    run_id: str
    unreachable_since: str | None  # local time of the failure that started the backlog
    not_logged: dict[str, int]  # per kind (metrics, tags, artifact, generator, status): kept in the outbox
    rejected: dict[str, int]  # refused by the store for good, in the outbox's rejected/
    lost: dict[str, int]  # not even the outbox could keep these (disk full, no permission)
    outbox: Path
    message: str  # the paragraph printed; '' when everything arrived

    @property
    def complete(self) -> bool:
        return not (self.not_logged or self.rejected or self.lost)


class TrackedRun:
    """An open MLflow run. Stages log through this; nothing else imports mlflow.

    log_metrics, set_tags, log_artifact and log_generator hand their work to this run's sender
    thread and return at once. MLflow's own asynchronous logging (MLFLOW_ENABLE_ASYNC_LOGGING)
    covers metrics, params and tags only, and drops what the store does not take; this sender
    also carries artifacts and the model, and keeps what fails in the outbox.
    """

    def __init__(self, client: MlflowClient, run_id: str, outbox: Outbox | None = None, experiment_id: str = ""):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.uri = tracking_uri()
        self.outbox = outbox or Outbox.default()
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._inflight: _Item | None = None
        self._thread: threading.Thread | None = None
        self._stopping = self._abandoned = self._behind = False
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._lost: Counter = Counter()
        self._staging: Path | None = None
        self._report: FinishReport | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params not yet on the run; one already there with another value is a conflict.

        Synchronous: it runs once, before training, and later stages need the params there.
        """
        from mlflow.entities import Param

        logged = self._logged_params()
        new = [Param(k, _param_text(v)) for k, v in params.items() if k not in logged]
        for i in range(0, len(new), 100):
            _retry(lambda chunk=new[i:i + 100]: self.client.log_batch(self.run_id, params=chunk))

    def _logged_params(self) -> dict[str, str]:
        return _retry(lambda: self.client.get_run(self.run_id)).data.params

    def last_step(self, key: str) -> int:
        """The last step of metric `key` the store holds (0: none); read once, before training goes on."""
        history = _retry(lambda: self.client.get_metric_history(self.run_id, key))
        return max((m.step for m in history), default=0)

    def conflicts(self, params: dict[str, Any]) -> list[str]:
        logged = self._logged_params()
        return [k for k, v in params.items() if k in logged and logged[k] != _param_text(v)]

    def log_metrics(self, rows: Iterable[tuple[int, dict[str, float]]]) -> None:
        """Hand rows of (step, {name: value}) to the sender, one MLflow batch per entry; returns at once."""
        now = int(time.time() * 1000)  # when measured, not when the store got it
        values = [[name, float(value), now, int(step)] for step, row in rows for name, value in row.items()]
        for i in range(0, len(values), _BATCH_LIMIT):
            self._enqueue("metrics", {"metrics": values[i:i + _BATCH_LIMIT]})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._enqueue("tags", {"tags": {k: str(v) for k, v in tags.items()}})

    def log_datasets(self, datasets: list[dict[str, Any]]) -> None:
        """Each {name, digest, source, context, profile} as a dataset input of the run (the run page's
        Datasets box; `search_runs(filter_string="dataset.digest = '...'")` finds every run on it)."""
        self._enqueue("datasets", {"datasets": datasets})

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Hand a copy of the file to the sender (the file may be rewritten before it is sent)."""
        path = Path(path)
        files = self._new_files()
        shutil.copyfile(path, files / path.name)
        self._enqueue("artifact", {"file": path.name, "folder": folder}, files)

    def log_generator(self, generator: Any, input_example: Any, requirements: list[str],
                      weights_file: Path) -> str | None:
        """Log G as an MLflow model; returns its model URI, or None when it was kept in the outbox.

        `weights_file` (written by gan.models.save_generator) is copied now: if the store does not
        take the model, the outbox keeps it and G is rebuilt from it when the store answers again.
        """
        import numpy as np

        files = self._new_files()
        shutil.copyfile(weights_file, files / "generator.pt")
        if input_example is not None:
            np.save(files / "example.npy", np.asarray(input_example))
        item = self._enqueue("generator", {"weights": "generator.pt", "example": input_example is not None,
                                           "requirements": list(requirements)}, files, model=generator)
        with self._cond:
            self._cond.wait_for(lambda: item.state != "queued", MODEL_WAIT)
        return item.result if item.state == "sent" else None

    def wait(self, timeout: float) -> bool:
        """Block until everything handed over so far is sent or kept in the outbox; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and self._inflight is None, timeout)

    def page(self) -> str:
        """Where to see this run in the MLflow UI, in its model-training view (MLflow 3 opens the GenAI view
        unless the address asks: the view is the browser's preference, not the experiment's)."""
        path = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?workflowType=machine_learning"
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/{path}"
        return f"`mlflow ui --backend-store-uri {self.uri}`, then http://127.0.0.1:5000/{path}"

    def write_link(self, path: Path) -> None:
        """Record run id and store in `path` (run.json) so later stages reopen this run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": self.run_id, "tracking_uri": self.uri,
                                    "experiment": EXPERIMENT}, indent=2) + "\n")

    def finish(self, ok: bool = True, stage: str = "train") -> FinishReport:
        """Mark the run FINISHED or FAILED after everything queued, and say what did not arrive.

        Waits a bounded time for the sender (FINISH_WAIT without progress, FINISH_CAP in all);
        whatever is left then, the run status included, goes to the outbox. The paragraph of what
        was not logged is printed and returned in the report. A second call returns the first report.
        """
        if self._report is not None:
            return self._report
        self._enqueue("status", {"status": "FINISHED" if ok else "FAILED", "end_time": int(time.time() * 1000)})
        self._close()
        self._report = self._summarize(stage)
        if self._report.message:
            print(self._report.message, flush=True)
        return self._report

    # --- the sender

    def _new_files(self) -> Path:
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="gan-mlflow-"))
        return Path(tempfile.mkdtemp(dir=self._staging))

    def _enqueue(self, kind: str, payload: dict[str, Any], files: Path | None = None, model: Any = None) -> _Item:
        if self._report is not None:
            raise RuntimeError(f"MLflow run {self.run_id} is finished; log to it before finish()")
        entry = {"seq": next_seq(), "uri": self.uri, "run_id": self.run_id, "kind": kind, "made": time.time(),
                 **payload}
        item = _Item(entry, files, model)
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_loop, name=f"mlflow-{self.run_id[:8]}",
                                                daemon=True)
                self._thread.start()
                atexit.register(self._at_exit)
        return item

    def _send_loop(self) -> None:
        """Live sends while the store takes them; after a failure, the outbox, until it is sent in order."""
        self._behind = bool(self.outbox.paths(self.uri))  # older entries go first
        while True:
            with self._cond:
                while not self._items and not self._stopping and not self._abandoned:
                    if not self._cond.wait(RETRY_SECONDS) and self._behind:
                        break  # idle while behind: time to try the store again
                if self._abandoned or (self._stopping and not self._items):
                    break
                item = self._inflight = self._items.popleft() if self._items else None
            if self._behind:
                self._catch_up()
            if item is not None:
                self._handle(item)
            with self._cond:
                self._inflight = None
                self._cond.notify_all()
        if self._behind and not self._abandoned:
            self._catch_up(now=True)  # the store may be back for the last word

    def _handle(self, item: _Item) -> None:
        if not self._behind:
            try:
                result = _send(self.client, item.entry, item.files, item.model)
            except Exception as exc:  # down or erroring: this item and every later one go to the outbox
                self._fall_behind(exc)
            else:
                self._settle(item, "sent", result)
                return
        self._spool(item)

    def _fall_behind(self, exc: BaseException) -> None:
        self._behind = True
        if self._down_since is None:
            self._down_since = time.time()
        self._next_probe = time.monotonic() + RETRY_SECONDS
        print(f"MLflow: the store {self.uri} did not take an item ({type(exc).__name__}: {one_line(exc, 300)}); "
              f"keeping it and what follows in {shown(self.outbox.root)}/ and retrying every "
              f"{RETRY_SECONDS:g} s", flush=True)

    def _catch_up(self, now: bool = False) -> None:
        """Send the outbox for this store if it answers again; live sending resumes once it is empty."""
        if not now and time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + RETRY_SECONDS
        done = drain(self.uri, self.outbox)
        if done.sent or done.set_aside:
            print(done.summary(), flush=True)
        if done.left == 0 and done.problem is None:
            self._behind, self._down_since = False, None

    def _settle(self, item: _Item, state: str, result: Any = None) -> bool:
        """Mark `item` sent, spooled or lost; only the first call counts (finish may race the sender)."""
        with self._cond:
            if item.state != "queued":
                return False
            item.state, item.result = state, result
            self._cond.notify_all()
        if state == "sent" and item.files is not None:
            shutil.rmtree(item.files, ignore_errors=True)
        return True

    def _spool(self, item: _Item) -> None:
        with self._cond:
            if item.state != "queued":
                return
            item.state = "spooling"  # claimed: a racing finish() leaves it alone
        try:
            self.outbox.put(item.entry, item.files)
            item.state = "spooled"
        except OSError as exc:  # nowhere to keep it: counted and reported, training goes on
            item.state = "lost"
            self._lost[item.entry["kind"]] += amount(item.entry)
            print(f"MLflow: could not keep an item in {self.outbox.root}: {one_line(exc, 160)}", file=sys.stderr)
        with self._cond:
            self._cond.notify_all()

    def _close(self) -> None:
        """Stop the sender within the bounds; what it has not settled by then goes to the outbox."""
        if self._thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        started = last = time.monotonic()
        settled = -1
        while self._thread.is_alive():
            now = time.monotonic()
            if now - last > FINISH_WAIT or now - started > FINISH_CAP:
                self._abandon()
                break
            self._thread.join(0.1)
            if len(self._items) != settled:
                settled, last = len(self._items), now
        atexit.unregister(self._at_exit)
        if self._staging is not None and not self._thread.is_alive():
            shutil.rmtree(self._staging, ignore_errors=True)

    def _abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            left = ([self._inflight] if self._inflight else []) + list(self._items)
            self._items.clear()
            self._cond.notify_all()
        for item in left:  # the in-flight one too: a send that hangs may never return
            self._spool(item)

    def _at_exit(self) -> None:
        """A stage that ends without finish(): keep what is still queued rather than drop it."""
        if self._report is None:
            self._close()

    def _summarize(self, stage: str) -> FinishReport:
        pending = dict(count_by_kind(self.outbox.entries(self.uri), self.run_id))
        rejected = dict(count_by_kind(self.outbox.rejected.entries(self.uri), self.run_id))
        since = time.strftime("%H:%M:%S", time.localtime(self._down_since)) if self._down_since else None
        sentences = []
        if pending:
            how = f"was unreachable from {since}" if since else "was too slow to answer"
            sentences.append(f"the MLflow store {self.uri} {how}; not logged yet: {describe(pending)}; kept in "
                             f"{shown(self.outbox.root)}/ and sent by the next run that reaches the store, "
                             f"or now with {FLUSH_HINT}")
        if rejected:
            sentences.append(f"the store refused {describe(rejected)}; they are in "
                             f"{shown(self.outbox.rejected.root)}/ with the reason")
        if self._lost:
            sentences.append(f"lost (the outbox could not keep them): {describe(self._lost)}")
        message = f"{stage}: " + "; ".join(sentences) if sentences else ""
        return FinishReport(self.uri, self.run_id, since, pending, rejected, dict(self._lost),
                            self.outbox.root, message)


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def start_run(name: str | None, tags: dict[str, str], resume_run_id: str | None = None) -> TrackedRun:
    """Open a new run, or reopen `resume_run_id` when it still exists in this store (a resumed train)."""
    from mlflow.exceptions import MlflowException

    client = _client()
    if resume_run_id is not None:
        try:
            _retry(lambda: client.get_run(resume_run_id))
            _retry(lambda: client.update_run(resume_run_id, status="RUNNING"))
            return TrackedRun(client, resume_run_id)
        except MlflowException:
            print(f"MLflow run {resume_run_id} of the checkpoint is not in {tracking_uri()}; opening a new run")
    exp_id = _experiment_id(client)
    all_tags = {"git.commit": git_commit(), "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""), **tags}
    run_name = os.environ.get("DVC_EXP_NAME") or name
    run = _retry(lambda: client.create_run(exp_id, run_name=run_name, tags=all_tags))
    return TrackedRun(client, run.info.run_id, experiment_id=exp_id)


def reopen_run(link: Path, params: dict[str, Any]) -> TrackedRun:
    """Reopen the run that train recorded in `link`, and log this stage's params to it.

    When only a later stage re-executes with new params (train cached by DVC), the run
    already holds other values for those params, which MLflow forbids changing. Then a new
    run is opened as a child of the train run, carrying its tags, so both stay browsable.
    """
    from mlflow.exceptions import MlflowException

    if not link.is_file():
        raise UserError(f"{link}: missing; it is written by the train stage, so run `dvc repro train` first")
    try:
        info = json.loads(link.read_text())
        run_id = info["run_id"]
    except (ValueError, KeyError) as exc:
        raise UserError(f"{link}: not a run link written by train ({exc}); rerun `dvc repro -f train`") from None
    client = _client()
    try:
        parent = _retry(lambda: client.get_run(run_id))
    except MlflowException:
        raise UserError(f"{link}: MLflow run {run_id} is not in the store {tracking_uri()}; "
                        f"set MLFLOW_TRACKING_URI to the store train used ({info.get('tracking_uri')}) "
                        f"or rerun `dvc repro -f train`") from None
    run = TrackedRun(client, run_id, experiment_id=parent.info.experiment_id)
    if run.conflicts(params):
        tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        child = _retry(lambda: client.create_run(parent.info.experiment_id, run_name=parent.info.run_name,
                                                 tags={**tags, "mlflow.parentRunId": run_id}))
        run = TrackedRun(client, child.info.run_id, experiment_id=parent.info.experiment_id)
        run.log_params({k: v for k, v in parent.data.params.items() if k not in params})
    run.log_params(params)
    return run


WEIGHTS_ARTIFACT = "weights/generator.pt"  # in every run: G's state dict, which loads with weights_only=True
BEST = "best"  # the registry alias of each model's best version


def register_generator(run_id: str, name: str, primary: str, scores: dict[str, float],
                       tags: dict[str, str]) -> str:
    """Register the run's logged generator as a new version of `name`, with `scores` and `tags` on the version,
    and move the alias `best` to the version with the lowest `primary` score (FID, reverse KL). Only numbers
    of the same key (metric and sample count) on the same data are ranked: a version scored otherwise than
    the alias holder leaves the alias where it is. Returns a line saying what happened.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = _client()
    experiment = _retry(lambda: client.get_run(run_id)).info.experiment_id
    logged = _retry(lambda: client.search_logged_models(
        [experiment], filter_string=f"source_run_id = '{run_id}' AND name = 'generator'"))
    if not logged:
        raise UserError(f"the generator of run {run_id} is not in {tracking_uri()} yet; after "
                        f"`python -m gan.tracking flush` sends it, rerun `dvc repro -f evaluate`")
    model_id = max(logged, key=lambda m: m.creation_timestamp).model_id  # a resumed run's last one
    version_tags = {**tags, **{k: repr(float(v)) for k, v in scores.items()}, "primary_metric": primary}
    # models:/<model_id>, not runs:/…/generator (MLflow 3 then warns that the run has no such artifacts);
    # the fluent call also links the version on the logged model, which the run page reads
    version = mlflow.register_model(f"models:/{model_id}", name, tags=version_tags).version
    if not _retry(lambda: client.get_registered_model(name)).description:
        _retry(lambda: client.update_registered_model(name, description="Generators trained by the gan pipeline; "
                                                      "the alias @best is the best version by " + primary))
    group = (primary, tags.get("data.sha256"))

    def group_of(v: Any) -> tuple[str | None, str | None]:
        return v.tags.get("primary_metric"), v.tags.get("data.sha256")

    try:
        holder = _retry(lambda: client.get_model_version_by_alias(name, BEST))
    except MlflowException:
        holder = None
    line = f"registered as models:/{name}/{version} ({primary} {scores[primary]:.6g})"
    if holder is not None and group_of(holder) != group:  # another metric, sample count or data: no ranking
        return (f"{line}; @{BEST} stays version {holder.version}, scored by {group_of(holder)[0]} on data "
                f"{str(group_of(holder)[1])[:12]}, which this version's numbers cannot be compared with")
    rivals = [(float(v.tags[primary]), int(v.version))
              for v in _retry(lambda: client.search_model_versions(f"name = '{name}'"))
              if group_of(v) == group and primary in v.tags]
    best_score, best = min(rivals)
    _retry(lambda: client.set_registered_model_alias(name, BEST, str(best)))
    return f"{line}; models:/{name}@{BEST} is version {best} ({primary} {best_score:.6g})"


def fetch_generator(uri: str, dest: Path) -> tuple[Path, str]:
    """The weights file behind a model URI, downloaded into `dest`, and the run it came from.

    runs:/RUN_ID[/generator], models:/NAME/VERSION and models:/NAME@ALIAS are read from the store
    (MLFLOW_TRACKING_URI or ./mlflow.db); what is fetched is the run's weights/generator.pt, a state
    dict that loads with weights_only=True, never the pickled MLflow model.
    """
    from mlflow.exceptions import MlflowException

    store = tracking_uri()
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise UserError(f"{uri}: there is no MLflow store at {store}; run the pipeline here first, or set "
                        f"MLFLOW_TRACKING_URI to the store that holds the model")
    client = _client()
    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/")[0]
    elif uri.startswith("models:/"):
        run_id = _model_version(client, uri, store).run_id
    else:
        raise UserError(f"{uri}: not a model URI; use runs:/RUN_ID, models:/NAME/VERSION, models:/NAME@ALIAS "
                        f"or the path of a generator file (models/generator.pt)")
    try:
        path = client.download_artifacts(run_id, WEIGHTS_ARTIFACT, str(dest))
    except MlflowException as exc:
        raise UserError(f"{uri}: run {run_id} in {store} has no {WEIGHTS_ARTIFACT} "
                        f"({one_line(exc, 160)}); pass its DVC output models/generator.pt instead") from None
    return Path(path), run_id


def _model_version(client: MlflowClient, uri: str, store: str) -> Any:
    from mlflow.exceptions import MlflowException

    ref = uri.removeprefix("models:/")
    name, alias = ref.split("@", 1) if "@" in ref else (ref.split("/")[0], None)
    try:
        model = _retry(lambda: client.get_registered_model(name))
    except MlflowException:
        known = [m.name for m in _retry(lambda: client.search_registered_models())]
        raise UserError(f"{uri}: no registered model {name!r} in {store}; registered: "
                        f"{', '.join(known) or 'none (evaluate registers gan-<data>-<arch> after a run)'}") from None
    if alias is not None:
        try:
            return _retry(lambda: client.get_model_version_by_alias(name, alias))
        except MlflowException:
            aliases = ", ".join(f"@{a}" for a in (model.aliases or {})) or "none"
            raise UserError(f"{uri}: model {name!r} has no alias @{alias}; its aliases: {aliases}") from None
    version = ref.split("/", 1)[1] if "/" in ref else ""
    try:
        return _retry(lambda: client.get_model_version(name, version))
    except MlflowException:
        latest = max((int(v.version) for v in _retry(lambda: client.search_model_versions(f"name = '{name}'"))),
                     default=0)
        raise UserError(f"{uri}: model {name!r} has no version {version!r}; its versions are 1..{latest}, "
                        f"or use models:/{name}@{BEST}") from None


def flush(outbox: Outbox, lock_wait: float = 30.0) -> list[Drained]:
    """Send every entry of `outbox` to the store it records, oldest first; one Drained per store."""
    return [drain(uri, outbox, lock_wait=lock_wait) for uri in sorted({e["uri"] for _, e in outbox.entries()})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.tracking",
                                     description="The MLflow outbox: what the store could not take yet.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("flush", help="send the outbox to the stores its entries name, now")
    command.add_argument("--outbox", type=Path, default=None,
                         help="default: $GAN_MLFLOW_OUTBOX, else <repo root>/.mlflow-outbox")
    args = parser.parse_args(argv)
    outbox = Outbox(args.outbox) if args.outbox else Outbox.default()
    results = flush(outbox)
    for done in results:
        print(done.summary())
    if not results:
        print(f"MLflow: nothing to send in {shown(outbox.root)}/")
    return 1 if any(done.left for done in results) else 0


if __name__ == "__main__":
    sys.exit(main())
