"""Shared by the benchmarks: wait for a `serve` process to answer /readyz."""
from __future__ import annotations

import subprocess
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
