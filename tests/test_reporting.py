"""The collector of per-step numbers: the history file, the hand-over to MLflow, the offline curves picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import tracking
from gan.reporting import Reporter, save_curves


def _history(steps: int) -> list[list[float]]:
    rng = np.random.default_rng(0)
    return [[float(s), 1.3 + rng.normal(0, .1), .7 + rng.normal(0, .1), .6, .4] for s in range(1, steps + 1)]


def test_curves_have_a_panel_for_losses_d_outputs_and_each_training_score(tmp_path):
    bare, scored = tmp_path / "bare.png", tmp_path / "scored.png"
    save_curves(_history(400), [], [], bare)
    save_curves(_history(400), [[0, 2400.0, 10.0], [200, 90.0, 1.0], [400, 31.0, 0.5]],
                ["fid_domain_1k", "reverse_kl_1k"], scored)
    bare_w, bare_h = Image.open(bare).size
    scored_w, scored_h = Image.open(scored).size
    assert scored_h == bare_h
    assert abs(scored_w / bare_w - 4 / 2) < 0.05, "two score columns add two panels to the two of losses and D"
    pixels = np.asarray(Image.open(scored).convert("L"))
    assert pixels.std() > 10, "the figure has content, not a blank canvas"


def test_curves_of_a_run_too_short_to_smooth(tmp_path):
    path = tmp_path / "curves.png"
    save_curves(_history(3), [[0, 50.0]], ["fid_domain_1k"], path)
    assert Image.open(path).size[0] > 0


def _values(value: float) -> dict[str, torch.Tensor]:
    return {column: torch.tensor(value) for column in Reporter.columns}


def _history_steps(path: Path) -> list[int]:
    return [int(line.split("\t")[0]) for line in path.read_text().splitlines()[1:]]


def test_a_failed_write_of_the_history_file_is_raised_at_once_by_the_flush_that_hit_it(tmp_path):
    path = tmp_path / "history.tsv"
    reporter = Reporter(path, tracking.start_run("reporter", {}), [], total=2, start=0)
    path.unlink()
    path.mkdir()  # the plots file can no longer be appended to
    reporter.add(1, _values(0.5))
    with pytest.raises(IsADirectoryError):
        reporter.flush()


def test_a_store_that_went_away_never_stops_the_reporter_and_the_history_file_has_every_step(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_MLFLOW_OUTBOX", str(tmp_path / "outbox"))
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    run = tracking.start_run("reporter", {})
    (tmp_path / "store").rename(tmp_path / "gone")
    path = tmp_path / "history.tsv"
    reporter = Reporter(path, run, [], total=40, start=0)
    for step in range(1, 41):
        reporter.add(step, _values(step))
        if step % 10 == 0:
            reporter.flush()
    reporter.close()
    assert _history_steps(path) == list(range(1, 41))
    assert run.finish().not_logged == {"metrics": 40 * len(Reporter.columns), "status": 1}


class RefusingRun:
    """Stands in for a run whose log_metrics raises, which TrackedRun itself never does."""

    def log_metrics(self, rows):
        raise ConnectionError("the store went away")


def test_a_run_that_raises_on_log_metrics_does_not_stop_the_reporter(tmp_path, capsys):
    path = tmp_path / "history.tsv"
    reporter = Reporter(path, RefusingRun(), [], total=20, start=0)
    for step in range(1, 21):
        reporter.add(step, _values(step))
        if step % 5 == 0:
            reporter.flush()
    reporter.close()
    assert _history_steps(path) == list(range(1, 21)) and reporter.store_failures == 4
    assert capsys.readouterr().err.count("could not hand metrics to MLflow") == 1
