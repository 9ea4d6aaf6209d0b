"""Shared by the benchmarks: wait for a `serve` process to answer /readyz; clean up on SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

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
