"""One MLflow run per pipeline execution: train opens it, generate and evaluate reopen it from run.json.

Logging calls hand their item to the run's sender (gan.tracking.sender) and return at once; `finish`
marks the run and says what the store did not get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from gan.errors import UserError
from gan.tracking.drain import connect
from gan.tracking.outbox import Outbox, count_by_kind, describe, repo_root, shown
from gan.tracking.sender import Sender
from gan.tracking.sends import BATCH_LIMIT
from gan.tracking.store import experiment_id, experiment_name, retry, tracking_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MODEL_WAIT = 120.0  # log_generator waits this long for the model to be sent or kept
FLUSH_HINT = "`python -m gan.tracking flush`"


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

    log_metrics, set_tags, log_datasets, log_artifact and log_generator hand their work to this run's
    sender and return at once. MLflow's own asynchronous logging (MLFLOW_ENABLE_ASYNC_LOGGING) covers
    metrics, params and tags only, and drops what the store does not take; the sender also carries
    artifacts and the model, and keeps what fails in the outbox.
    """

    def __init__(self, client: MlflowClient, run_id: str, outbox: Outbox | None = None, experiment_id: str = ""):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.uri = tracking_uri()
        self.outbox = outbox or Outbox.default()
        self._sender = Sender(client, self.uri, run_id, self.outbox)
        self._report: FinishReport | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params not yet on the run; one already there with another value is a conflict.

        Synchronous: it runs once, before training, and later stages need the params there.
        """
        from mlflow.entities import Param

        logged = self._logged_params()
        new = [Param(k, _param_text(v)) for k, v in params.items() if k not in logged]
        for i in range(0, len(new), 100):
            retry(lambda chunk=new[i:i + 100]: self.client.log_batch(self.run_id, params=chunk))

    def _logged_params(self) -> dict[str, str]:
        return retry(lambda: self.client.get_run(self.run_id)).data.params

    def last_step(self, key: str) -> int:
        """The last step of metric `key` the store holds (0: none); read once, before training goes on."""
        history = retry(lambda: self.client.get_metric_history(self.run_id, key))
        return max((m.step for m in history), default=0)

    def conflicts(self, params: dict[str, Any]) -> list[str]:
        logged = self._logged_params()
        return [k for k, v in params.items() if k in logged and logged[k] != _param_text(v)]

    def log_metrics(self, rows: Iterable[tuple[int, dict[str, float]]]) -> None:
        """Hand rows of (step, {name: value}) to the sender, one MLflow batch per entry; returns at once."""
        now = int(time.time() * 1000)  # when measured, not when the store got it
        values = [[name, float(value), now, int(step)] for step, row in rows for name, value in row.items()]
        for i in range(0, len(values), BATCH_LIMIT):
            self._sender.put("metrics", {"metrics": values[i:i + BATCH_LIMIT]})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._sender.put("tags", {"tags": {k: str(v) for k, v in tags.items()}})

    def log_datasets(self, datasets: list[dict[str, Any]]) -> None:
        """Each {name, digest, source, context, profile} as a dataset input of the run (the run page's
        Datasets box; `search_runs(filter_string="dataset.digest = '...'")` finds every run on it)."""
        self._sender.put("datasets", {"datasets": datasets})

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Hand a copy of the file to the sender (the file may be rewritten before it is sent)."""
        path = Path(path)
        files = self._sender.new_files()
        shutil.copyfile(path, files / path.name)
        self._sender.put("artifact", {"file": path.name, "folder": folder}, files)

    def log_generator(self, generator: Any, input_example: Any, requirements: list[str],
                      weights_file: Path) -> str | None:
        """Log G as an MLflow model; returns its model URI, or None when it was kept in the outbox.

        `weights_file` (written by gan.models.save_generator) is copied now: if the store does not
        take the model, the outbox keeps it and G is rebuilt from it when the store answers again.
        """
        import numpy as np

        files = self._sender.new_files()
        shutil.copyfile(weights_file, files / "generator.pt")
        if input_example is not None:
            np.save(files / "example.npy", np.asarray(input_example))
        item = self._sender.put("generator", {"weights": "generator.pt", "example": input_example is not None,
                                              "requirements": list(requirements)}, files, model=generator)
        self._sender.wait_for(item, MODEL_WAIT)
        return item.result if item.state == "sent" else None

    def wait(self, timeout: float) -> bool:
        """Block until everything handed over so far is sent or kept in the outbox; False on timeout."""
        return self._sender.wait(timeout)

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
                                    "experiment": experiment_name()}, indent=2) + "\n")

    def finish(self, ok: bool = True, stage: str = "train") -> FinishReport:
        """Mark the run FINISHED or FAILED after everything queued, and say what did not arrive.

        Waits a bounded time for the sender (FINISH_WAIT without progress, FINISH_CAP in all);
        whatever is left then, the run status included, goes to the outbox. The paragraph of what
        was not logged is printed and returned in the report. A second call returns the first report.
        """
        if self._report is not None:
            return self._report
        self._sender.put("status", {"status": "FINISHED" if ok else "FAILED", "end_time": int(time.time() * 1000)})
        self._sender.close()
        self._report = self._summarize(stage)
        if self._report.message:
            print(self._report.message, flush=True)
        return self._report

    def _summarize(self, stage: str) -> FinishReport:
        pending = dict(count_by_kind(self.outbox.entries(self.uri), self.run_id))
        rejected = dict(count_by_kind(self.outbox.rejected.entries(self.uri), self.run_id))
        lost: Counter = self._sender.lost
        down = self._sender.down_since
        since = time.strftime("%H:%M:%S", time.localtime(down)) if down else None
        sentences = []
        if pending:
            how = f"was unreachable from {since}" if since else "was too slow to answer"
            sentences.append(f"the MLflow store {self.uri} {how}; not logged yet: {describe(pending)}; kept in "
                             f"{shown(self.outbox.root)}/ and sent by the next run that reaches the store, "
                             f"or now with {FLUSH_HINT}")
        if rejected:
            sentences.append(f"the store refused {describe(rejected)}; they are in "
                             f"{shown(self.outbox.rejected.root)}/ with the reason")
        if lost:
            sentences.append(f"lost (the outbox could not keep them): {describe(lost)}")
        message = f"{stage}: " + "; ".join(sentences) if sentences else ""
        return FinishReport(self.uri, self.run_id, since, pending, rejected, dict(lost), self.outbox.root, message)


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def start_run(name: str | None, tags: dict[str, str], resume_run_id: str | None = None) -> TrackedRun:
    """Open a new run, or reopen `resume_run_id` when it still exists in this store (a resumed train)."""
    client = connect()  # before any import of mlflow (see connect)
    from mlflow.exceptions import MlflowException

    if resume_run_id is not None:
        try:
            retry(lambda: client.get_run(resume_run_id))
            retry(lambda: client.update_run(resume_run_id, status="RUNNING"))
            return TrackedRun(client, resume_run_id)
        except MlflowException:
            print(f"MLflow run {resume_run_id} of the checkpoint is not in {tracking_uri()}; opening a new run")
    exp_id = experiment_id(client)
    all_tags = {"git.commit": git_commit(), "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""), **tags}
    run_name = os.environ.get("DVC_EXP_NAME") or name
    run = retry(lambda: client.create_run(exp_id, run_name=run_name, tags=all_tags))
    return TrackedRun(client, run.info.run_id, experiment_id=exp_id)


def reopen_run(link: Path, params: dict[str, Any]) -> TrackedRun:
    """Reopen the run that train recorded in `link`, and log this stage's params to it.

    When only a later stage re-executes with new params (train cached by DVC), the run
    already holds other values for those params, which MLflow forbids changing. Then a new
    run is opened as a child of the train run, carrying its tags, so both stay browsable.
    """
    if not link.is_file():
        raise UserError(f"{link}: missing; it is written by the train stage, so run `dvc repro train` first")
    try:
        info = json.loads(link.read_text())
        run_id = info["run_id"]
    except (ValueError, KeyError) as exc:
        raise UserError(f"{link}: not a run link written by train ({exc}); rerun `dvc repro -f train`") from None
    client = connect()
    from mlflow.exceptions import MlflowException

    try:
        parent = retry(lambda: client.get_run(run_id))
    except MlflowException:
        raise UserError(f"{link}: MLflow run {run_id} is not in the store {tracking_uri()}; "
                        f"set MLFLOW_TRACKING_URI to the store train used ({info.get('tracking_uri')}) "
                        f"or rerun `dvc repro -f train`") from None
    run = TrackedRun(client, run_id, experiment_id=parent.info.experiment_id)
    if run.conflicts(params):
        tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        child = retry(lambda: client.create_run(parent.info.experiment_id, run_name=parent.info.run_name,
                                                tags={**tags, "mlflow.parentRunId": run_id}))
        run = TrackedRun(client, child.info.run_id, experiment_id=parent.info.experiment_id)
        run.log_params({k: v for k, v in parent.data.params.items() if k not in params})
    run.log_params(params)
    return run
