"""Shared by the benchmarks: wait for a `serve` process to answer /readyz; clean up on SIGTERM; start
and stop the Procfile's web line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    """Poll /readyz until the server answers; fail if it exits or does not start in time."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=1).ok:
                return
        except requests.RequestException:  # refused, or accepted before a worker is ready
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.1)


def exit_cleanly_on_sigterm() -> None:
    """A benchmark stopped with SIGTERM (`kill`, a CI timeout) unwinds like Ctrl-C: its `with` and
    `finally` blocks stop the server process and the embedded Valkey it started, instead of
    leaving a valkey-server behind (as `kill <benchmark>` did)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def start_web(store_url: str, port: int, data_dir: str, log_path: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
    """The Procfile's `web:` line (`gunicorn --config gunicorn.conf.py`, WEB_CONCURRENCY=2 unless
    `env` says otherwise) on `store_url`, in its own session (stop it with `stop_web`); stdout and
    stderr to `log_path` (default: discarded)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LULUPAY_")}
    full.update(REDIS_URL=store_url, PORT=str(port), WEB_CONCURRENCY="2",
                PROMETHEUS_MULTIPROC_DIR=str(Path(data_dir) / "prom"), LULUPAY_DATA_DIR=str(data_dir),
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    full.update(env or {})
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
                                cwd=Path(__file__).resolve().parent.parent, env=full, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log_path:
            out.close()  # the child holds its own descriptor


def stop_web(server: subprocess.Popen, timeout: float = 60) -> float:
    """SIGTERM to the server's process group (gunicorn's graceful shutdown), SIGKILL after
    `timeout` s; the seconds it took to exit."""
    started = time.monotonic()
    if server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        except ProcessLookupError:
            pass
    return time.monotonic() - started
