"""Sending one item to the store, by kind (metrics, tags, datasets, artifact, generator, status).

The same functions send a live item and an outbox entry: both are the entry's JSON, with the files
staged beside it. `refusal` tells a store that is down or erroring (send again later) from one that
refused the entry for good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan.errors import UserError, one_line
from gan.tracking.store import retry

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

BATCH_LIMIT = 1000  # MLflow's cap on metrics per log_batch call
GAN_PACKAGE = Path(__file__).resolve().parents[1]  # bundled with the logged generator (code_paths)


def _send_metrics(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in entry["metrics"]]
    retry(lambda: client.log_batch(entry["run_id"], metrics=metrics))


def _send_tags(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import RunTag

    tags = [RunTag(key, value) for key, value in entry["tags"].items()]
    retry(lambda: client.log_batch(entry["run_id"], tags=tags))


def _send_datasets(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [DatasetInput(Dataset(name=d["name"], digest=d["digest"], source_type="local",
                                   source=json.dumps({"uri": d["source"]}), profile=json.dumps(d["profile"])),
                           tags=[InputTag("mlflow.data.context", d["context"])]) for d in entry["datasets"]]
    retry(lambda: client.log_inputs(entry["run_id"], datasets=inputs))


def _send_artifact(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    retry(lambda: client.log_artifact(entry["run_id"], str(files / entry["file"]), entry["folder"]))


def _send_status(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any) -> None:
    retry(lambda: client.set_terminated(entry["run_id"], entry["status"], entry["end_time"]))


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
    mlflow.set_tracking_uri(entry["uri"])
    with mlflow.start_run(run_id=entry["run_id"]):
        info = mlflow.pytorch.log_model(model, name="generator", input_example=example,
                                        pip_requirements=entry["requirements"], code_paths=[str(GAN_PACKAGE)],
                                        serialization_format="pickle")
    retry(lambda: client.update_run(entry["run_id"], status="RUNNING"))  # start_run's exit ended it
    return info.model_uri


_SENDS = {"metrics": _send_metrics, "tags": _send_tags, "artifact": _send_artifact, "datasets": _send_datasets,
          "generator": _send_generator, "status": _send_status}


def send(client: MlflowClient, entry: dict[str, Any], files: Path | None, model: Any = None) -> Any:
    """Send one entry (its files staged in `files`); the generator's model URI, else None."""
    return _SENDS[entry["kind"]](client, entry, files, model)


# The store answered and refused the entry; sending it again would be refused the same way.
_REFUSALS = {"INVALID_PARAMETER_VALUE", "INVALID_STATE", "BAD_REQUEST", "PERMISSION_DENIED"}


def refusal(exc: BaseException, entry: dict[str, Any]) -> str | None:
    """Why the store refused `entry` for good, or None when the failure may pass (down, erroring)."""
    code = getattr(exc, "error_code", "")
    if code == "RESOURCE_DOES_NOT_EXIST":
        return f"run {entry['run_id']} is not in the store {entry['uri']}"
    if code in _REFUSALS:
        return f"the store refused it: {one_line(exc, 200)}"
    if isinstance(exc, (KeyError, TypeError, FileNotFoundError, UserError)):  # the entry, not the store
        return f"not a complete outbox entry ({type(exc).__name__}: {one_line(exc, 120)})"
    return None
