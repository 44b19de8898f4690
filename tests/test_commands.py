"""`gan sample` on bad input: one line that names the model URI or file and says what to do."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROOT, run_gan


def gan(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run_gan(*args, env=env)


@pytest.mark.parametrize(("uri", "store", "says"), [
    ("models:/gan-mnist5k-dcgan@best", "sqlite:////nonexistent/folder/mlflow.db",
     "models:/gan-mnist5k-dcgan@best: there is no MLflow store at sqlite:////nonexistent/folder/mlflow.db"),
    ("models:/gan-mnist5k-dcgan@best", "http://127.0.0.1:9",
     "MLflow store http://127.0.0.1:9 is not reachable"),
    ("s3://bucket/generator.pt", "", "s3://bucket/generator.pt: no such generator file, and not an MLflow URI"),
])
def test_a_model_that_cannot_be_reached_is_one_line_naming_it(uri, store, says, tmp_path):
    result = gan("sample", "--model", uri, "-o", str(tmp_path / "grid.png"), MLFLOW_TRACKING_URI=store)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("gan sample: error: ") and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_output_that_is_neither_png_nor_npz_is_refused_before_any_work(tmp_path):
    result = gan("sample", "--model", str(ROOT / "models/generator.pt"), "-o", str(tmp_path / "grid.jpg"))
    assert result.returncode == 2 and "write a .png" in result.stderr, result.stderr
