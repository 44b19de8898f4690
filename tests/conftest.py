"""Shared fixtures and helpers: a private MLflow store per test session, params files, repository copies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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


def benchmark_script(name: str):
    """benchmarks/<name>.py imported as a module (the folder is no package; its scripts import each other)."""
    import importlib.util

    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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


def run_stage(stage: str, directory: Path, *args: str) -> subprocess.CompletedProcess:
    """`python stages/<stage>.py ARGS` run inside this test process, in `directory`: the script's own code
    (argument parsing, one-line user errors, exit codes) without a new interpreter's imports, and counted
    by coverage. Its stdout and stderr are captured; the exit status is SystemExit's code, else 0. A test of
    what only a process shows (a kill, an exit before heavy imports) runs `stage_command` instead."""
    import runpy

    import torch

    script = ROOT / "stages" / f"{stage}.py"
    argv, cwd = sys.argv, os.getcwd()
    # what a stage sets for its whole process, put back for the tests that follow
    torch_state = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(),
                   torch.utils.deterministic.fill_uninitialized_memory, torch.backends.cudnn.benchmark)
    sys.argv = [str(script), *args]
    os.chdir(directory)
    try:
        def script_main() -> None:  # a script's exit status is 0 unless it raises SystemExit
            runpy.run_path(str(script), run_name="__main__")

        return _in_process([str(script), *args], script_main)
    finally:
        sys.argv = argv
        os.chdir(cwd)
        torch.use_deterministic_algorithms(torch_state[0])
        torch.set_num_threads(torch_state[1])
        torch.utils.deterministic.fill_uninitialized_memory = torch_state[2]
        torch.backends.cudnn.benchmark = torch_state[3]


def run_gan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `gan` command line (`python -m gan ARGS`) in this process, with `env` set for the call."""
    from gan.__main__ import main

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        return _in_process(["gan", *args], lambda: main(list(args)))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _in_process(args: list[str], call) -> subprocess.CompletedProcess:
    """`call()` with stdout and stderr captured, as a process's result: its exit status is what it returned
    (None: 0) or what it passed to SystemExit (a message there is printed to stderr and exits 1)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = call()
        except SystemExit as exc:
            code = exc.code
            if isinstance(code, str):
                print(code, file=sys.stderr)
                code = 1
    return subprocess.CompletedProcess(args, 0 if code is None else code, out.getvalue(), err.getvalue())


def run_train(directory: Path, in_process: bool = True) -> subprocess.CompletedProcess:
    """The train stage in `directory`, as DVC would run it: in this process (see run_stage), or as a process
    of its own, which a run of several training processes needs (their output is not this process's)."""
    if in_process:
        return run_stage("train", directory)
    return subprocess.run(stage_command("train"), cwd=directory, capture_output=True, text=True, timeout=300)


def dvc_stage_args(stage: str) -> list[str]:
    """The arguments dvc.yaml's command gives `stages/<stage>.py`."""
    command = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"].split()
    assert command[:2] == ["python", f"stages/{stage}.py"], command
    return command[2:]


# The tiny pipeline: every stage of dvc.yaml on mnist5k, small enough for the fast suite (about 6 s)
TINY = {
    "model": {"width": 8, "latent_dim": 16},
    "train": {"steps": 30, "batch_size": 16, "lr_g": 0.002, "lr_d": 0.002, "sample_every": 15,
              "checkpoint_every": 15, "log_every": 5, "eval_every": 30, "eval_samples": 200},
    "features": {"epochs": 1},
    "generate": {"num_samples": 200, "grid_rows": 4, "interpolation_rows": 2, "interpolation_steps": 4},
    "evaluate": {"num_samples": 200},
}
TINY_STAGES = ("plots_page", "prepare", "features", "reference", "train", "generate", "evaluate")


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """One finished tiny pipeline for the tests that only read its outputs: each stage script of dvc.yaml
    run in order, with dvc.yaml's arguments, in a fresh folder. Runs once per test session."""
    return run_pipeline(tmp_path_factory.mktemp("tiny-pipeline"), TINY, TINY_STAGES)


def run_pipeline(root: Path, params: dict, stages: tuple[str, ...]) -> Path:
    """params.yaml with `params`, then each stage script in order with dvc.yaml's arguments; fails on the first
    stage that fails, with its output."""
    write_params(root, params)
    for stage in stages:
        result = run_stage(stage, root, *dvc_stage_args(stage))
        assert result.returncode == 0, f"{stage} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return root


def assert_refused(overrides: dict, says: str) -> None:
    """The shipped params.yaml with `overrides` (section -> keys) is refused before any work, in one line
    that contains `says`."""
    from gan.config import parse_params
    from gan.errors import UserError

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    with pytest.raises(UserError) as caught:
        parse_params(params)
    assert says in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def only_checkpoint(directory: Path) -> Path | None:
    found = list((directory / "checkpoints").glob("*/last.pt"))
    return found[0] if found else None


def kill_at_first_checkpoint(directory: Path, steps: int) -> int:
    """Start the train stage, SIGKILL its whole process group once a checkpoint exists; the step it holds."""
    from gan import checkpoint

    process = subprocess.Popen(stage_command("train"), cwd=directory, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while only_checkpoint(directory) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = checkpoint.load(only_checkpoint(directory), "checkpoint", "")["step"]
    assert 0 < killed_at < steps
    return killed_at


def run(args: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    """Run a command; with `ok`, fail the test with the end of its output unless it exits 0."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def dvc(root: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], root, env, ok)


def drain_queue(root: Path, env: dict[str, str], names: list[str], jobs: int, timeout: float = 900) -> str:
    """Start `jobs` DVC queue workers, wait until each queued experiment in `names` has ended (Success or
    Failed), stop the workers; returns the last `dvc queue status`, with the workers' logs appended when
    the queue did not drain in time.

    `dvc queue start` forks a watcher per worker that keeps the caller's stdout until that worker ends,
    so its output goes to a file here: captured, it would block until the last worker exits. A worker
    can miss its own shutdown and idle for ever after its task (dvc-task's monitor sees an empty queue
    while the task runs; seen in CI), which would block such a start past any timeout. A task left queued
    with no worker alive to take it (treeverse/dvc#10562) gets the queue started again, as a user would."""
    log = root / ".dvc" / "tmp" / "test-queue-start.log"
    celery = root / ".dvc" / "tmp" / "exps" / "celery"

    def start() -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            code = subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)], cwd=root,
                                  env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=120).returncode
        assert code == 0, log.read_text()[-3000:]

    def ended(status: str) -> bool:
        lines = status.splitlines()
        return all(any(name in line and ("Success" in line or "Failed" in line) for line in lines)
                   for name in names)

    start()
    deadline, status, restarts = time.monotonic() + timeout, "", 0
    try:
        while time.monotonic() < deadline:
            status = dvc(root, env, "queue", "status").stdout
            if ended(status):
                return status
            if "Running" not in status and "Worker status: 0 active, 0 idle" in status and restarts < 3:
                restarts += 1
                start()
            time.sleep(2)
        logs = "".join(f"\n--- {w.name}\n{w.read_text(errors='replace')[-3000:]}" for w in sorted(celery.glob("*.out")))
        return f"{status}\nthe queue did not drain in {timeout:.0f} s ({restarts} restarts){logs}"
    finally:
        dvc(root, env, "queue", "stop", "--kill", ok=False)
        for pid_file in celery.glob("*.pid"):  # a worker that missed its shutdown misses this one too
            pid = pid_file.read_text().strip()
            command = Path(f"/proc/{pid}/cmdline")
            try:
                if pid.isdigit() and b"queue-worker" in command.read_bytes():  # not a process reusing the pid
                    os.kill(int(pid), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass


def copy_repository(dest: Path, params: dict) -> tuple[Path, dict[str, str]]:
    """A fresh clone-like copy of this checkout (tracked files and untracked ones git does not ignore),
    `params` merged into params.yaml, as a new git repo with one commit; and the environment to run
    DVC in it: this venv first on PATH, no MLflow store or DVC variables inherited, no PYTHONPATH,
    so that the stages import gan/ as a user's do."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    write_params(dest, params)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_URI", "DVC_", "PYTHONPATH"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
                "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    for args in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        run(args, dest, env)
    return dest, env


def make_run_dir(path: Path, params: dict) -> Path:
    """A folder ready for `stages/train.py`: params.yaml, prepared data and the evaluator."""
    from gan.config import parse_params
    from gan.data.datasets import prepare
    from gan.features import build_evaluator

    path.mkdir()
    write_params(path, params)
    cfg = parse_params(params)
    prepare(cfg, path / "data" / "prepared")
    build_evaluator(cfg, path / "data" / "prepared", path / "models" / "evaluator.pt", path / "features.json")
    return path


def crash_and_resume(tmp_path: Path, params: dict) -> tuple[Path, Path, subprocess.CompletedProcess, int]:
    """The same training run twice: straight through, and killed at its first checkpoint then resumed.
    Returns (straight folder, crashed folder, the resumed run's result, the step it resumed at)."""
    straight = make_run_dir(tmp_path / "straight", params)
    assert run_train(straight).returncode == 0
    crashed = make_run_dir(tmp_path / "crashed", params)
    killed_at = kill_at_first_checkpoint(crashed, params["train"]["steps"])
    resumed = run_train(crashed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {killed_at}" in resumed.stdout
    return straight, crashed, resumed, killed_at


def start_mlflow_server(command: list[str], uri: str, log_path: Path, timeout: float = 240,
                        env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `command` (an mlflow server) in its own process group; return once `uri`/health answers."""
    with log_path.open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(uri + "/health", timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"mlflow server did not come up: {log_path.read_text()[-3000:]}")


class Server:
    """A real `mlflow server` on one port and one SQLite store, which a test kills and starts again."""

    def __init__(self, folder: Path, store: Path | None = None):
        self.folder, self.store = folder, store or folder / "mlflow.db"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                   f"sqlite:///{self.store}", "--artifacts-destination", str(self.folder / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.process = start_mlflow_server(command, self.uri, self.folder / "server.log", timeout)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # the server and its workers, as a crash would
        self.process.wait()
