"""The availability probe: one HTTP GET of the app's `/readyz` per collector round, counted per
UTC minute as up (a 200 within the timeout) or down (anything else: another status, a refused
connection, a timeout). The counts wait in a bounded per-minute buffer until the collector writes
them to the `sys` buckets (services/queries/system.write_probe_counts); while the store is
unreachable they stay there, and are written to their own minutes once it is back.
Definitions: docs/capacity.md."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

__all__ = ["Prober", "BUFFER_MINUTES"]

log = logging.getLogger(__name__)

BUFFER_MINUTES = 1440  # a day of minutes waits for the store; older minutes are dropped first


class Prober:
    """Probes `url` and buffers the outcomes per minute (thread-safe; at most `max_minutes` minutes)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0, clock: Callable[[], float] = time.time,
                 max_minutes: int = BUFFER_MINUTES, get: Callable[..., object] | None = None):
        self.url = url
        self.timeout_s = timeout_s
        self.clock = clock
        self.max_minutes = max_minutes
        self.dropped = 0  # probes lost because the buffer was full (oldest minutes first)
        self._session = requests.Session()
        self._get = get or self._session.get
        self._buffer: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def check(self) -> bool:
        """One probe now: True when the URL answers 200 within the timeout."""
        try:
            response = self._get(self.url, timeout=self.timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            log.debug("probe %s failed: %s", self.url, exc)
            return False
        try:
            return response.status_code == 200
        finally:
            response.close()

    def probe(self) -> bool:
        """Probe once and buffer the outcome under the minute the probe started in."""
        started = self.clock()
        up = self.check()
        self.record(started, up)
        return up

    def record(self, ts: float, up: bool) -> None:
        """Count one probe outcome in the minute of `ts`."""
        minute = int(ts // 60) * 60
        with self._lock:
            counts = self._buffer.get(minute)
            if counts is None:
                counts = self._buffer[minute] = [0, 0]
                self._bound()
            counts[0 if up else 1] += 1

    def _bound(self) -> None:
        while len(self._buffer) > self.max_minutes:
            oldest = min(self._buffer)
            self.dropped += sum(self._buffer.pop(oldest))
            log.warning("probe buffer full (%d minutes): the probes of %d dropped", self.max_minutes, oldest)

    def pending(self) -> dict[int, tuple[int, int]]:
        """A copy of the buffered (up, down) counts by minute start."""
        with self._lock:
            return {minute: (up, down) for minute, (up, down) in self._buffer.items()}

    def take(self) -> dict[int, tuple[int, int]]:
        """Empty the buffer and return what it held (give it back with `restore` if the write fails)."""
        with self._lock:
            taken, self._buffer = self._buffer, {}
        return {minute: (up, down) for minute, (up, down) in taken.items()}

    def restore(self, taken: dict[int, tuple[int, int]]) -> None:
        """Put counts that could not be written back into the buffer (added to what came meanwhile)."""
        with self._lock:
            for minute, (up, down) in taken.items():
                counts = self._buffer.setdefault(minute, [0, 0])
                counts[0] += up
                counts[1] += down
            self._bound()

    def close(self) -> None:
        """Close the keep-alive connection."""
        self._session.close()
