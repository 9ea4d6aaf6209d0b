"""gunicorn entry points; importing this module builds nothing (each worker builds the app).

* `production_server()` — what the Procfile's `web:` line serves (gunicorn.conf.py's `wsgi_app`):
  the app on REDIS_URL, built in each worker after the fork.
* `GunicornServer` — that same command (`gunicorn --config gunicorn.conf.py`) as a child process
  of `lulupay-analytics serve`, which owns what must outlive it (the embedded store, the demo data)
  and stops them after it. gunicorn's master forks its workers from a process holding none of them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["GUNICORN_CONF", "production_server", "GunicornServer"]

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def production_server():
    """The Flask server of the app built from the environment's settings; needs REDIS_URL."""
    from app.factory import create_app
    from app.settings import Settings

    settings = Settings()
    if not settings.store_url:
        raise RuntimeError("REDIS_URL must be set when running under gunicorn (the embedded store is for `serve`)")
    return create_app(settings).server


class GunicornServer:
    """`gunicorn --config gunicorn.conf.py` (this interpreter's) as a child process, bound to
    `host:port`, with `env` on top of this process's environment. `start()`, then
    `wait_until_serving()`, `send_signal()` (SIGINT: quick stop, SIGTERM: graceful), `wait()`;
    `stop()` ends it if it still runs. It gets SIGTERM if this process dies (Linux)."""

    def __init__(self, host: str, port: int, *, env: dict[str, str], log_level: str, workers: int | None = None):
        self.host = host
        self.port = port
        self._env = env
        self._log_level = log_level
        self._workers = workers
        self._process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The Procfile's web line, plus the address, the log level and (maybe) the worker count;
        without gunicorn's control socket, whose one path per user several instances would share."""
        command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF),
                   "--bind", f"{url_host(self.host)}:{self.port}", "--log-level", self._log_level.lower(),
                   "--name", "lulupay-analytics", "--no-control-socket"]
        return command + (["--workers", str(self._workers)] if self._workers else [])

    def start(self) -> "GunicornServer":
        """Start gunicorn's master (it binds the address, then boots the workers)."""
        self._process = subprocess.Popen(self.command(), env={**os.environ, **self._env},
                                         preexec_fn=_parent_death_signal())
        return self

    @property
    def local_url(self) -> str:
        """Where this machine reaches the server."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{url_host(host)}:{self.port}"

    def wait_until_serving(self, timeout_s: float | None = None) -> bool:
        """Poll `/healthz` until a worker answers: True; False when gunicorn ended first (or
        `timeout_s` ran out)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (deadline is None or time.monotonic() < deadline) and self._process.poll() is None:
            try:
                with urllib.request.urlopen(self.local_url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:  # not listening or no worker yet
                time.sleep(0.2)
        return False

    def send_signal(self, signum: int) -> None:
        """Pass a signal on to gunicorn's master (when it still runs)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def wait(self) -> int:
        """Wait for gunicorn to end; its exit status (negative: the signal that killed it)."""
        return self._process.wait()

    def stop(self, timeout_s: float = 40.0) -> None:
        """SIGTERM (graceful: gunicorn waits up to its graceful_timeout of 30 s), then SIGKILL."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


def url_host(host: str) -> str:
    """`host` as it is written in a URL or a bind address (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def _parent_death_signal():
    """What the child runs before gunicorn: ask for SIGTERM when the parent dies (Linux's
    PR_SET_PDEATHSIG), so a killed `serve` leaves no gunicorn holding its port; None elsewhere.
    Looked up here, before the fork: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)
