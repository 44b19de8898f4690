"""A team's tracking server for the tests: a real PostgreSQL (Debian's `postgresql` package) and a real
`mlflow server` on it with MLflow's basic-auth app, both on 127.0.0.1.

PostgreSQL refuses to run as root, so under root its cluster belongs to the `postgres` user, in a
folder of its own. Where PostgreSQL is not installed or does not start, the tests skip and say why.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import start_mlflow_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A throwaway cluster: user `gan` with a password, database `mlflow`, TCP on 127.0.0.1 only."""

    def __init__(self):
        self.bin = _postgres_bin()
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.folder = Path(tempfile.mkdtemp(prefix="gan-postgres-"))
        self.data = self.folder / "data"
        self.as_owner: list[str] = []

    @property
    def uri(self) -> str:
        return f"postgresql://gan:{self.password}@127.0.0.1:{self.port}/mlflow"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_owner, *args], capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> None:
        if self.bin is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
        if os.geteuid() == 0:  # the server will not run as root
            shutil.chown(self.folder, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        secret = self.folder / "password"
        secret.write_text(self.password)
        if self.as_owner:
            shutil.chown(secret, "postgres")
        steps = [[str(self.bin / "initdb"), "-D", str(self.data), "-U", "gan", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={secret}", "-E", "UTF8"],
                 [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start"],
                 [str(self.bin / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", "gan", "mlflow"]]
        for step in steps:
            done = self._run(*step)
            if done.returncode:
                log = self.folder / "server.log"
                detail = (done.stderr or done.stdout)[-800:] + (log.read_text()[-800:] if log.is_file() else "")
                pytest.skip(f"PostgreSQL could not be started ({Path(step[0]).name}): {detail}")

    def stop(self) -> None:
        if self.data.is_dir():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class AuthServer:
    """`mlflow server --app-name basic-auth` on PostgreSQL, artifacts in a folder; admin user and password."""

    def __init__(self, folder: Path, backend: str):
        self.folder, self.backend = folder, backend
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.user, self.password = "admin", secrets.token_hex(12)
        self.process: subprocess.Popen | None = None

    @property
    def credentials(self) -> dict[str, str]:
        """What a client sets to be let in."""
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_USERNAME": self.user,
                "MLFLOW_TRACKING_PASSWORD": self.password}

    def start(self, timeout: float = 240) -> None:
        config = self.folder / "basic_auth.ini"
        config.write_text("[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
                          f"admin_username = {self.user}\nadmin_password = {self.password}\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}  # CSRF protection of the auth app
        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "basic-auth",
                   "--backend-store-uri", self.backend, "--artifacts-destination", str(self.folder / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"]
        self.process = start_mlflow_server(command, self.uri, self.folder / "server.log", timeout, env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
