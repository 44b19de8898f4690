"""The only module that talks to MLflow: the run's lifecycle, batched metrics, artifacts, the model.

One MLflow run spans a pipeline execution. train opens it and writes its id to
``reports/train/run.json``; generate and evaluate reopen it from that file. The store is
``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<repo root>/mlflow.db`` where the repo
root is ``DVC_ROOT`` (set by DVC, also for queued experiments running in temp dirs).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from gan.errors import UserError, one_line  # noqa: E402

EXPERIMENT = os.environ.get("GAN_MLFLOW_EXPERIMENT", "gan")
_BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call
T = TypeVar("T")


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _retry(call: Callable[[], T], attempts: int = 8) -> T:
    """SQLite answers 'database is locked' while a parallel queue worker writes: wait and retry."""
    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _client() -> MlflowClient:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        _retry(lambda: client.search_experiments(max_results=1))
    except Exception as exc:
        raise UserError(f"MLflow store {uri} is not reachable ({type(exc).__name__}: "
                        f"{one_line(exc, 200)}); start the server or fix "
                        f"MLFLOW_TRACKING_URI") from None
    return client


def _experiment_id(client: MlflowClient) -> str:
    """Get or create the experiment; two queue workers may race to create it."""
    found = _retry(lambda: client.get_experiment_by_name(EXPERIMENT))
    if found is not None:
        return found.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # beside the store, so runs from `dvc exp run --queue` temp dirs land in one place
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    try:
        return _retry(lambda: client.create_experiment(EXPERIMENT, artifact_location=location))
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


class TrackedRun:
    """An open MLflow run. Stages log through this; nothing else imports mlflow."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id

    @property
    def uri(self) -> str:
        return tracking_uri()

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params not yet on the run; one already there with another value is a conflict."""
        logged = _retry(lambda: self.client.get_run(self.run_id)).data.params
        new = [Param(k, _param_text(v)) for k, v in params.items() if k not in logged]
        for i in range(0, len(new), 100):
            _retry(lambda chunk=new[i:i + 100]: self.client.log_batch(self.run_id, params=chunk))

    def conflicts(self, params: dict[str, Any]) -> list[str]:
        logged = _retry(lambda: self.client.get_run(self.run_id)).data.params
        return [k for k, v in params.items() if k in logged and logged[k] != _param_text(v)]

    def log_metrics(self, rows: Iterable[tuple[int, dict[str, float]]]) -> None:
        """Log rows of (step, {name: value}) in as few calls as MLflow allows."""
        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, step) for step, row in rows for name, value in row.items()]
        for i in range(0, len(metrics), _BATCH_LIMIT):
            _retry(lambda chunk=metrics[i:i + _BATCH_LIMIT]: self.client.log_batch(self.run_id, metrics=chunk))

    def set_tags(self, tags: dict[str, str]) -> None:
        _retry(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        _retry(lambda: self.client.log_artifact(self.run_id, str(path), folder))

    def log_generator(self, generator: Any, input_example: Any, requirements: list[str]) -> str:
        """Log G as an MLflow model that `mlflow.pytorch.load_model` loads; returns its model URI.

        Pickle format with this package's code bundled (code_paths), so the model loads
        anywhere with torch installed and takes any batch size; the pt2 format would fix
        the batch size to the input example's.
        """
        import mlflow.pytorch

        package = str(Path(__file__).resolve().parent)
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pytorch.log_model(generator, name="generator", input_example=input_example,
                                            pip_requirements=requirements, code_paths=[package],
                                            serialization_format="pickle")
        _retry(lambda: self.client.update_run(self.run_id, status="RUNNING"))
        return info.model_uri

    def finish(self, ok: bool = True) -> None:
        _retry(lambda: self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED"))

    def write_link(self, path: Path) -> None:
        """Record run id and store in `path` (run.json) so later stages reopen this run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": self.run_id, "tracking_uri": self.uri,
                                    "experiment": EXPERIMENT}, indent=2) + "\n")


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def start_run(name: str | None, tags: dict[str, str], resume_run_id: str | None = None) -> TrackedRun:
    """Open a new run, or reopen `resume_run_id` when it still exists in this store (a resumed train)."""
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
    return TrackedRun(client, run.info.run_id)


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
    client = _client()
    try:
        parent = _retry(lambda: client.get_run(run_id))
    except MlflowException:
        raise UserError(f"{link}: MLflow run {run_id} is not in the store {tracking_uri()}; "
                        f"set MLFLOW_TRACKING_URI to the store train used ({info.get('tracking_uri')}) "
                        f"or rerun `dvc repro -f train`") from None
    run = TrackedRun(client, run_id)
    if run.conflicts(params):
        tags = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        child = _retry(lambda: client.create_run(parent.info.experiment_id, run_name=parent.info.run_name,
                                                 tags={**tags, "mlflow.parentRunId": run_id}))
        run = TrackedRun(client, child.info.run_id)
        run.log_params({k: v for k, v in parent.data.params.items() if k not in params})
    run.log_params(params)
    return run
