"""Shared fixtures: a private MLflow store per test session, and params files written by tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def mlflow_store(tmp_path_factory):
    """Every test session logs to its own SQLite store and outbox, never to the developer's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["GAN_MLFLOW_OUTBOX"] = str(store.parent / "outbox")  # never the checkout's .mlflow-outbox/
    yield f"sqlite:///{store}"


def write_params(directory: Path, overrides: dict) -> Path:
    """params.yaml = the shipped file with `overrides` (nested dicts) merged in."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_command(stage: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args]
