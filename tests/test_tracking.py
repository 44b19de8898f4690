"""The MLflow linkage: one run per pipeline execution, in the right store, that never stalls or breaks training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, Server, stage_command
from mlflow.tracking import MlflowClient

from gan import tracking
from gan.errors import UserError
from gan.tracking.outbox import Outbox

FAST = 0.05  # seconds: a call the training loop makes must return well within this


@pytest.fixture(autouse=True)
def outbox(tmp_path, monkeypatch) -> Outbox:
    """Each test keeps what the store does not take in its own outbox, never in the repository's."""
    monkeypatch.setenv("GAN_MLFLOW_OUTBOX", str(tmp_path / "outbox"))
    return Outbox(tmp_path / "outbox")


class MovableStore:
    """A real SQLite store in its own folder; moving the folder away is a store that went away."""

    def __init__(self, folder: Path):
        self.folder, self.away = folder, folder.with_name(folder.name + "-away")
        folder.mkdir()
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"

    def take_away(self) -> None:
        self.folder.rename(self.away)

    def bring_back(self) -> None:
        self.away.rename(self.folder)


@pytest.fixture
def store(tmp_path, monkeypatch) -> MovableStore:
    movable = MovableStore(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", movable.uri)
    return movable


def timed(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def test_the_default_store_is_sqlite_at_the_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)  # a queued experiment runs elsewhere; the store stays at the root
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_a_run_is_named_after_the_dvc_experiment_and_tagged(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "my-exp")
    run = tracking.start_run("fallback-name", {"data.sha256": "abc"})
    info = MlflowClient(tracking.tracking_uri()).get_run(run.run_id)
    assert info.info.run_name == "my-exp"
    assert info.data.tags["dvc.exp_name"] == "my-exp" and info.data.tags["data.sha256"] == "abc"
    assert "git.commit" in info.data.tags


def test_later_stages_reopen_the_train_run_and_add_their_params(tmp_path):
    run = tracking.start_run("train", {})
    run.log_params({"train.lr_g": 0.1})
    link = tmp_path / "run.json"
    run.write_link(link)
    assert json.loads(link.read_text())["run_id"] == run.run_id
    again = tracking.reopen_run(link, {"evaluate.num_samples": 100})
    assert again.run_id == run.run_id
    params = MlflowClient(tracking.tracking_uri()).get_run(run.run_id).data.params
    assert params == {"train.lr_g": "0.1", "evaluate.num_samples": "100"}


def test_new_params_for_a_cached_train_run_go_to_a_child_run_with_the_parents_params(tmp_path):
    run = tracking.start_run("train", {"data.sha256": "abc"})
    run.log_params({"train.lr_g": 0.1, "evaluate.num_samples": 100})
    link = tmp_path / "run.json"
    run.write_link(link)
    child = tracking.reopen_run(link, {"evaluate.num_samples": 200})
    assert child.run_id != run.run_id
    data = MlflowClient(tracking.tracking_uri()).get_run(child.run_id).data
    assert data.tags["mlflow.parentRunId"] == run.run_id and data.tags["data.sha256"] == "abc"
    assert data.params == {"train.lr_g": "0.1", "evaluate.num_samples": "200"}


def test_metrics_rows_beyond_mlflows_batch_limit_all_arrive():
    run = tracking.start_run("metrics", {})
    run.log_metrics([(step, {"a": step * 0.5, "b": -step}) for step in range(1, 801)])  # 1,600 values
    assert run.wait(60)
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.run_id, "a")
    assert sorted((m.step, m.value) for m in history) == [(s, s * 0.5) for s in range(1, 801)]


def test_finish_with_the_store_up_delivers_everything_and_marks_the_run(tmp_path, capsys):
    run = tracking.start_run("finished", {})
    run.log_metrics([(1, {"loss": 0.5})])
    run.set_tags({"note": "hello"})
    (tmp_path / "figure.txt").write_text("a figure")
    run.log_artifact(tmp_path / "figure.txt", "figures")
    report = run.finish(ok=False, stage="evaluate")
    assert report.complete and report.message == "" and "evaluate:" not in capsys.readouterr().out
    client = MlflowClient(tracking.tracking_uri())
    got = client.get_run(run.run_id)
    assert got.info.status == "FAILED" and got.data.tags["note"] == "hello" and got.data.metrics["loss"] == 0.5
    assert [a.path for a in client.list_artifacts(run.run_id, "figures")] == ["figures/figure.txt"]


def test_a_missing_or_foreign_run_link_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="run `dvc repro train` first"):
        tracking.reopen_run(tmp_path / "absent.json", {})
    link = tmp_path / "run.json"
    link.write_text(json.dumps({"run_id": "0" * 32, "tracking_uri": "sqlite:///elsewhere.db"}))
    with pytest.raises(UserError, match=r"is not in the store .*the store train used \(sqlite:///elsewhere.db\)"):
        tracking.reopen_run(link, {})


def test_registering_a_run_whose_generator_has_not_arrived_says_how_to_send_it(store):
    client = MlflowClient(store.uri)
    run = client.create_run(client.create_experiment("gan"))
    with pytest.raises(UserError, match=r"generator of run \w+ is not in .* yet; after `python -m gan.tracking "
                                        r"flush` sends it, rerun `dvc repro -f evaluate`"):
        tracking.register_generator(run.info.run_id, "gan-test-mlp", "reverse_kl_1k", {"reverse_kl_1k": 0.1}, {})
    assert client.search_registered_models() == []


def test_an_unreachable_server_is_a_clear_error_within_seconds(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(UserError) as raised:
        tracking.start_run("x", {})
    assert time.monotonic() - started < 3
    message = str(raised.value)
    assert "MLflow store http://127.0.0.1:9 is not reachable" in message and "\n" not in message
    assert "start the server, or unset MLFLOW_TRACKING_URI" in message
    with pytest.raises(UserError, match="http://127.0.0.1:9 is not reachable"):
        tracking.check_store()


def test_mlflows_own_http_retries_give_up_in_seconds_not_minutes(monkeypatch):
    # MLflow's defaults (7 retries, backoff 2, 120 s timeout) keep one call on a dead server for ~4 minutes
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    tracking.start_run("x", {})  # the settings are made as the store's first client is
    assert int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) <= 1
    assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= 10


def test_importing_the_tracking_package_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); import gan.tracking; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing gan.tracking changed {result.stdout.strip()}"


def test_mlflow_is_imported_with_its_telemetry_off_when_a_stage_opens_a_run(tmp_path):
    code = ("from gan import tracking; tracking.start_run('x', {}); "
            "from mlflow.telemetry.client import get_telemetry_client; print(get_telemetry_client())")
    env = {"PATH": os.environ["PATH"], "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "GAN_MLFLOW_OUTBOX": str(tmp_path / "outbox")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "None", "MLflow set up its telemetry client"


_WORKER = """
import sys, time
from pathlib import Path
import mlflow.store.tracking.sqlalchemy_store  # before the start line, so that the workers meet at the store
from gan import tracking
folder, name = Path(sys.argv[1]), sys.argv[2]
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
print(tracking.start_run(name, {}).run_id)
"""


def test_parallel_workers_on_a_fresh_sqlite_store_create_it_and_the_experiment_once(tmp_path):
    """`dvc queue start -j 4` on a fresh clone: several train stages open the store and the experiment at once."""
    workers = 4
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    processes = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), f"worker-{i}"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(workers)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all at once, as queue workers started together reach the store
    outputs = [process.communicate(timeout=120) for process in processes]
    failed = [err.strip().splitlines()[-1:] for process, (_, err) in zip(processes, outputs) if process.returncode]
    assert not failed, f"{len(failed)} of {workers} workers failed: {failed}"
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments() if e.name != "Default"] == ["gan"]
    runs = client.search_runs([client.get_experiment_by_name("gan").experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip() for out, _ in outputs)


def test_artifacts_of_a_sqlite_store_live_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    monkeypatch.setenv("GAN_MLFLOW_EXPERIMENT", "beside-the-store")
    (tmp_path / "store").mkdir()
    run = tracking.start_run("x", {})
    experiment = MlflowClient(tracking.tracking_uri()).get_experiment_by_name("beside-the-store")
    assert experiment.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()
    assert run.run_id


def _log_through_an_outage(run: tracking.TrackedRun, source: Path, steps: range) -> list[float]:
    """Metrics every step, a new and a rewritten artifact and a tag every 10 steps; each call's seconds."""
    seconds = []
    for step in steps:
        seconds.append(timed(run.log_metrics, [(step, {"loss": step * 0.5})]))
        if step % 10 == 0:
            (source / f"grid_{step}.txt").write_text(f"grid {step}")
            (source / "latest.txt").write_text(f"latest {step}")  # rewritten: the store must get each version
            seconds.append(timed(run.log_artifact, source / f"grid_{step}.txt", "samples"))
            seconds.append(timed(run.log_artifact, source / "latest.txt"))
            seconds.append(timed(run.set_tags, {f"tag{step}": str(step)}))
    return seconds


def _run_through_an_outage(name: str, go_away, source: Path, steps: range) -> tuple[tracking.TrackedRun, list[float]]:
    """A run whose step 0 reached the store, then `go_away()`, then `_log_through_an_outage`."""
    run = tracking.start_run(name, {})
    run.log_metrics([(0, {"loss": 0.0})])
    assert run.wait(60)
    go_away()
    source.mkdir()
    return run, _log_through_an_outage(run, source, steps)


def test_a_store_that_goes_away_never_stalls_the_caller_and_everything_is_sent_in_order_later(
        store, outbox, tmp_path):
    source = tmp_path / "source"
    run, seconds = _run_through_an_outage("outage", store.take_away, source, range(1, 101))
    assert max(seconds) < FAST, f"a call waited {max(seconds):.3f} s on a store that is gone"
    report = run.finish()
    assert report.not_logged == {"metrics": 100, "artifact": 20, "tags": 10, "status": 1}
    assert report.unreachable_since and store.uri in report.message and "not logged yet: 100 metric values, " \
        "10 tags, 20 artifacts, the run status" in report.message and "gan.tracking flush" in report.message
    kinds = [entry["kind"] for _, entry in outbox.entries()]
    steps = [entry["metrics"][0][3] for _, entry in outbox.entries() if entry["kind"] == "metrics"]
    assert steps == list(range(1, 101)) and kinds[-1] == "status", "the outbox keeps the order of the calls"

    (source / "latest.txt").write_text("rewritten after the run")  # the outbox holds its own copies

    store.bring_back()
    (done,) = tracking.flush(outbox)
    assert done.left == 0 and done.sent == {"metrics": 100, "artifact": 20, "tags": 10, "status": 1}
    client = MlflowClient(store.uri)
    history = client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, s * 0.5) for s in range(101)]
    assert len(client.list_artifacts(run.run_id, "samples")) == 10
    latest = Path(client.download_artifacts(run.run_id, "latest.txt", str(tmp_path)))
    assert latest.read_text() == "latest 100", "the last version logged is the one the store keeps"
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert not outbox.entries()


def test_the_next_run_that_reaches_the_store_sends_the_outbox_first(store, outbox, capsys):
    old = tracking.start_run("old", {})
    store.take_away()
    old.log_metrics([(step, {"loss": float(step)}) for step in range(5)])
    old.finish()
    assert outbox.entries()
    store.bring_back()
    tracking.start_run("new", {})
    assert not outbox.entries()
    assert "MLflow: sent 5 metric values, the run status" in capsys.readouterr().out
    client = MlflowClient(store.uri)
    assert [m.step for m in client.get_metric_history(old.run_id, "loss")] == list(range(5))
    assert client.get_run(old.run_id).info.status == "FINISHED"


def test_entries_of_a_run_the_store_no_longer_has_are_set_aside_by_flush(store, outbox):
    run = tracking.start_run("lost-run", {})
    store.take_away()
    run.log_metrics([(1, {"loss": 1.0})])
    run.finish()
    store.folder.mkdir()  # a new, empty store where the old one was: the entries' run is not in it
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri}
    result = subprocess.run([sys.executable, "-m", "gan.tracking", "flush"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert not outbox.entries() and len(outbox.rejected.entries()) == 2
    assert f"entries of run {run.run_id} set aside in " in result.stdout, result.stdout
    assert "is not in the store" in result.stdout
    assert all(entry["rejected"].startswith(f"run {run.run_id} is not in the store")
               for _, entry in outbox.rejected.entries())


def test_flush_with_the_store_still_down_keeps_the_entries_and_says_why(store, outbox):
    run = tracking.start_run("still-down", {})
    store.take_away()
    run.log_metrics([(1, {"loss": 1.0})])
    run.finish()
    (done,) = tracking.flush(outbox)
    assert done.left == 2 and not done.sent and "does not exist" in done.problem
    assert "2 entries" in done.summary() and "stay in" in done.summary()


def _small_generator(tmp_path: Path):
    from gan import models
    from gan.config import parse_params

    cfg = parse_params({"data": {"name": "grid25"}, "model": {"arch": "mlp", "width": 8, "latent_dim": 4}})
    generator, _ = models.build("mlp", (2,), 4, 8)
    weights = tmp_path / "generator.pt"
    meta = {"shape": [2], "sha256": "0" * 64, "kind": "points", "num_classes": 0}
    models.save_generator(generator, cfg, meta, 10, weights)
    return generator.eval(), weights


def test_a_generator_the_store_could_not_take_is_rebuilt_from_its_weights_and_logged_later(
        store, outbox, tmp_path):
    import mlflow
    import mlflow.pytorch

    generator, weights = _small_generator(tmp_path)
    run = tracking.start_run("model", {})
    store.take_away()
    example = torch.randn(3, 4).numpy()
    started = time.monotonic()
    assert run.log_generator(generator, example, ["torch"], weights) is None
    assert time.monotonic() - started < 5, "a store that is gone is not waited for"
    weights.write_bytes(b"overwritten by a later run")  # the outbox kept its own copy
    assert run.finish().not_logged == {"generator": 1, "status": 1}
    store.bring_back()
    (done,) = tracking.flush(outbox)
    assert done.sent == {"generator": 1, "status": 1}
    model_id = MlflowClient(store.uri).get_run(run.run_id).outputs.model_outputs[0].model_id
    mlflow.set_tracking_uri(store.uri)  # models:/ URIs resolve through the current store
    logged = mlflow.pytorch.load_model(f"models:/{model_id}")
    z = torch.randn(5, 4)
    assert torch.equal(logged(z), generator(z))


@pytest.mark.system
def test_the_train_stage_reports_an_unreachable_store_in_seconds(tmp_path):
    from test_training import make_run_dir

    directory = make_run_dir(tmp_path / "run")
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    started = time.monotonic()
    result = subprocess.run(stage_command("train"), cwd=directory, env=env, capture_output=True, text=True,
                            timeout=120)
    seconds = time.monotonic() - started
    assert result.returncode == 2 and seconds < 5, (seconds, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("train: error: MLflow store http://127.0.0.1:9 is not reachable")
    assert "start the server, or unset MLFLOW_TRACKING_URI" in lines[0]
    print(f"unreachable store reported in {seconds:.2f} s")


@pytest.fixture
def server(tmp_path, monkeypatch):
    folder = tmp_path / "server"
    folder.mkdir()
    running = Server(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", running.uri)
    yield running
    if running.process is not None and running.process.poll() is None:
        running.kill()


def _flush_command(outbox: Outbox) -> subprocess.CompletedProcess:
    env = {**os.environ, "GAN_MLFLOW_OUTBOX": str(outbox.root)}
    return subprocess.run([sys.executable, "-m", "gan.tracking", "flush"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.system
def test_nothing_waits_on_a_killed_server_and_flush_sends_everything_once_it_is_back(server, outbox, tmp_path):
    server.start()
    run, seconds = _run_through_an_outage("killed", server.kill, tmp_path / "source", range(1, 301))
    print(f"with the server down: log calls took at most {1000 * max(seconds):.2f} ms, "
          f"median {1000 * sorted(seconds)[len(seconds) // 2]:.3f} ms")
    assert max(seconds) < FAST
    report = run.finish()
    assert report.not_logged == {"metrics": 300, "artifact": 60, "tags": 30, "status": 1}
    assert f"the MLflow store {server.uri} was unreachable from" in report.message

    server.start()
    result = _flush_command(outbox)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 300 metric values, 30 tags, 60 artifacts, the run status" in result.stdout
    client = MlflowClient(server.uri)
    history = client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, s * 0.5) for s in range(301)]
    assert len(client.list_artifacts(run.run_id, "samples")) == 30
    assert Path(client.download_artifacts(run.run_id, "latest.txt", str(tmp_path))).read_text() == "latest 300"
    assert client.get_run(run.run_id).info.status == "FINISHED"


@pytest.mark.system
def test_the_train_stage_outlives_its_killed_server_and_the_run_is_complete_after_a_flush(server, outbox, tmp_path):
    import mlflow
    import mlflow.pytorch
    from test_training import RESUME_PARAMS, make_run_dir

    directory = make_run_dir(tmp_path / "run")
    server.start()
    process = subprocess.Popen(stage_command("train"), cwd=directory, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    first_grid = directory / "reports/train/samples/step_000000.png"
    deadline = time.monotonic() + 240
    while not first_grid.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    output, _ = process.communicate(timeout=600)
    print(output[-1200:])
    assert process.returncode == 0, output
    steps = RESUME_PARAMS["train"]["steps"]
    history = (directory / "reports/train/history.tsv").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in history[1:]] == list(range(1, steps + 1))
    assert "train: the MLflow store" in output and "not logged yet:" in output and "the run status" in output
    assert "the generator model" in output, output

    server.start()
    result = _flush_command(outbox)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = json.loads((directory / "reports/train/run.json").read_text())["run_id"]
    run = MlflowClient(server.uri).get_run(run_id)
    loss_d = MlflowClient(server.uri).get_metric_history(run_id, "loss_d")
    assert sorted(m.step for m in loss_d) == list(range(1, steps + 1))
    assert run.info.status == "FINISHED"
    mlflow.set_tracking_uri(server.uri)  # the stage ran in its own process; this one may point elsewhere
    generator = mlflow.pytorch.load_model(f"models:/{run.outputs.model_outputs[0].model_id}")
    assert generator(torch.randn(3, RESUME_PARAMS["model"]["latent_dim"])).shape == (3, 2)
