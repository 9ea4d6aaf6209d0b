"""Shared fixtures: a real Valkey server on a free port (flushed per test), bound services, and a
real server process for HTTP tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.settings import Settings
from services.embedded import EmbeddedValkey
from services.runtime import build_services

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
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), port=free_port(), persist=False).start()
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
    return Settings(_env_file=None, redis_url=valkey_url, data_dir=tmp_path / "data", ingest_tokens="")


@pytest.fixture
def services(settings, redis_client):
    """Services bound to the test Valkey (flushed)."""
    return build_services(settings)


class ServerProcess:
    """A real `lulupay-analytics serve` process."""

    def __init__(self, env: dict[str, str], port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--port", str(port), "--no-demo"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: self.proc.poll() is None and requests.get(self.url + "/healthz", timeout=1).ok,
                       timeout=60, message="server start")
        except AssertionError:
            self.stop()
            raise AssertionError(f"server did not start: {self.output()}") from None

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stdout.read() if self.proc.stdout else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
