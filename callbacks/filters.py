"""From the shell's filter store to a concrete [start, end) and partner set, and a Redis cache."""
from __future__ import annotations

import logging
import math
import threading
import time
from datetime import date, datetime, timezone

import orjson
import redis

from layouts.shell import RANGES
from services.metrics import QUERY_DURATION

__all__ = ["resolve_range", "resolve_partners", "resolve_scope", "QueryCache"]

log = logging.getLogger(__name__)


def resolve_range(filters: dict, now: float) -> tuple[float, float]:
    """[start, end) in epoch seconds. Relative presets end now; custom dates are whole UTC days
    (the end date included)."""
    span = RANGES.get(filters.get("range") or "24h")
    if span:
        return now - span, now
    start = datetime.combine(date.fromisoformat(filters["from"][:10]), datetime.min.time(), tzinfo=timezone.utc)
    end = datetime.combine(date.fromisoformat(filters["to"][:10]), datetime.min.time(), tzinfo=timezone.utc)
    start_ts, end_ts = start.timestamp(), end.timestamp() + 86400
    return min(start_ts, end_ts - 86400), max(end_ts, start_ts + 86400)


def resolve_partners(filters: dict, visible: set[str] | None) -> list[str] | None:
    """The selected partners within what the caller may see (None = all visible)."""
    selected = set(filters.get("partners") or [])
    if not selected:
        return None if visible is None else sorted(visible)
    return sorted(selected if visible is None else selected & visible)


def resolve_scope(filters: dict, services) -> tuple[float, float, list[str] | None, tuple]:
    """(start, end, partners, cache key) of a filter set for the current caller. The cache key is
    minute-aligned: the rollups are no finer, and a board refreshing every 5 s shares one entry
    per minute and filter set."""
    start, end = resolve_range(filters, services.clock())
    partners = resolve_partners(filters, services.visible_partners())
    return start, end, partners, (math.floor(start / 60), math.ceil(end / 60), partners)


class _Flight:
    """One computation in progress that callers with the same cache key wait for."""

    __slots__ = ("done", "value", "error", "waiting")

    def __init__(self):
        self.done = threading.Event()
        self.value: bytes | None = None  # the result as JSON, as the cache holds it
        self.error: BaseException | None = None
        self.waiting = 0


class QueryCache:
    """Results cached in Redis for a few seconds per query and filter set, so a hundred people
    watching the same board cost about one query. A cache failure never fails the panel.

    Single flight: while one thread of this process computes a (query, filter set), others asking
    for the same wait for its result instead of computing it again — so refreshes that arrive
    faster than a slow query answers (auto-refresh, many viewers) do not pile up work."""

    _flights: dict[str, _Flight] = {}  # shared by every instance of the process
    _flights_lock = threading.Lock()
    wait_s = 30.0  # a waiter gives up on a stuck computation and computes itself

    def __init__(self, client: redis.Redis, prefix: str, timeout_s: int = 5):
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_s

    def get_or_compute(self, name: str, args: tuple, compute):
        """The cached value of `compute()` for (name, args), computing and storing it when missing."""
        key = self.prefix + name + ":" + orjson.dumps(args).decode()
        try:
            cached = self.client.get(key)
        except redis.RedisError:
            cached = None
        if cached is not None:
            return orjson.loads(cached)
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.waiting += 1
            if flight.done.wait(self.wait_s):
                if flight.error is not None:
                    raise flight.error
                return orjson.loads(flight.value)
            return compute()
        try:
            started = time.perf_counter()
            value = compute()
            QUERY_DURATION.labels("dashboard").observe(time.perf_counter() - started)  # store queries only, not hits
            flight.value = blob = orjson.dumps(value)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)
            flight.done.set()
        try:
            self.client.set(key, blob, ex=self.timeout_s)
        except redis.RedisError as exc:
            log.debug("query cache write skipped: %s", exc)
        return value
