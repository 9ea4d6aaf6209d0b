"""Shared fixtures: a real Valkey server on a free port (flushed per test), bound services, and a
real server process for HTTP tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from app.settings import Settings
from services.store.embedded import EmbeddedValkey
from services.container import build_services

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may raise while the thing starts up
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last error: {last_error!r})")


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory) -> str:
    """URL of a real Valkey server for the whole session."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), port=free_port(), persist=True).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(valkey_url):
    """A redis-py client on the session server, flushed before and after each test."""
    import redis

    client = redis.Redis.from_url(valkey_url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings(valkey_url, tmp_path) -> Settings:
    """Settings pointing at the test Valkey."""
    return Settings(_env_file=None, redis_url=valkey_url, data_dir=tmp_path / "data", ingest_tokens="",
                    forecast_wait_s=0.2)


@pytest.fixture
def services(settings, redis_client):
    """Services bound to the test Valkey (flushed)."""
    return build_services(settings)


class ServerProcess:
    """A real `lulupay-analytics serve` process."""

    def __init__(self, env: dict[str, str], port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # its output goes to a file: a pipe nobody reads until the end would block the server once
        # its logs fill the pipe's 64 KiB (a session-long server logs more than that)
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--port", str(port), "--no-demo"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: self.proc.poll() is None and requests.get(self.url + "/healthz", timeout=1).ok,
                       timeout=60, message="server start")
        except AssertionError:
            self.stop()
            raise AssertionError(f"server did not start: {self.output()}") from None

    def output(self) -> str:
        """What the server printed so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class GunicornProcess:
    """The Procfile's `web:` line, run as written (gunicorn, gunicorn.conf.py), in its own process
    group, with `env` on top of this interpreter's environment."""

    def __init__(self, valkey_url: str, tmp_path: Path, **env: str):
        import signal  # noqa: F401  (used by stop)

        web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = server_env(REDIS_URL=valkey_url, PORT=str(self.port), WEB_CONCURRENCY="2", GUNICORN_THREADS="16",
                              PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus-multiproc"),
                              LULUPAY_DATA_DIR=str(tmp_path),
                              PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], **env)
        self.log = open(tmp_path / "gunicorn.log", "w+")
        self.proc = subprocess.Popen(["bash", "-c", "exec " + web.split(":", 1)[1].strip()], cwd=ROOT,
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: self.proc.poll() is None and requests.get(self.url + "/readyz", timeout=2).ok,
                       timeout=60, message="gunicorn start")
        except AssertionError:
            self.stop()
            raise AssertionError("gunicorn did not start:\n" + self.output()) from None

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


# Keys the session's server process writes by itself whatever a test does: its HTTP statistics
# flusher, its collector (samples, snapshot, lock, partner labels) and its alert engine's evaluations.
BACKGROUND_KEY_PARTS = (b":http:", b":sys:", b":metrics:", b":collector:", b":alert:evals")


def stored_keys(client) -> list[bytes]:
    """Every key in the store except the session server's background writes: what a rejected
    request must leave empty."""
    return [key for key in client.scan_iter(count=1000) if not any(part in key for part in BACKGROUND_KEY_PARTS)]


def server_env(**overrides: str) -> dict[str, str]:
    """Environment for a server process: this interpreter's, without .env surprises."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LULUPAY_") and k != "REDIS_URL"}
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def live_server(valkey_url, tmp_path_factory):
    """A real server process on the session Valkey, ingest open (no tokens)."""
    server = ServerProcess(server_env(REDIS_URL=valkey_url,
                                      LULUPAY_DATA_DIR=str(tmp_path_factory.mktemp("srv"))), free_port())
    yield server
    server.stop()


class InProcessServer:
    """The app (create_app) served by werkzeug's threaded server on a free port in this process,
    so a test can reach its services (users, store) directly. `stop()` shuts it down."""

    def __init__(self, settings: Settings):
        import threading

        from werkzeug.serving import make_server

        from app.factory import create_app

        self.app = create_app(settings)
        self.services = self.app.server.extensions["lulupay"]
        self.server = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.services.hub.stop()


@pytest.fixture
def login_settings(valkey_url, tmp_path) -> Settings:
    """Settings of a deployment where everybody signs in (LULUPAY_AUTH=login)."""
    return Settings(_env_file=None, redis_url=valkey_url, data_dir=tmp_path / "data", ingest_tokens="ingest-secret",
                    auth="login", collector_enabled=False, forecast_wait_s=0.2)


@pytest.fixture
def login_server(login_settings, redis_client):
    """An in-process server in login mode on the (flushed) test Valkey."""
    server = InProcessServer(login_settings)
    yield server
    server.stop()


def sign_in(base_url: str, username: str, password: str, session: requests.Session | None = None) -> requests.Session:
    """A requests session signed in through the real login form (CSRF token included)."""
    import re

    session = session or requests.Session()
    form = session.get(base_url + "/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = session.post(base_url + "/login", data={"username": username, "password": password, "csrf_token": token,
                                                     "next": "/"}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, (answer.status_code, answer.text[:300])
    return session
