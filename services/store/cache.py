"""Caches next to the store: the per-process bucket cache of the rollup reader, and the shared
query cache (results in Redis for a few seconds per query and filter set, single flight per process)."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import orjson
import redis

from services.metrics import QUERY_DURATION

__all__ = ["BucketCache", "QueryCache"]

log = logging.getLogger(__name__)


class BucketCache:
    """Per process: rollup key → (suffix of the list's last delta, sum of the list's deltas, the
    generation of its bucket when it was read).

    An entry is used only after the store confirms that it is current: either its bucket's
    generation is still the one read before the list was (every ingest batch sets the generation
    of each bucket it writes to a fresh token, in the same atomic script), or the list still ends
    with that delta (services/store/scripts/read.lua): appends always add a delta with a fresh
    token and compactions keep the sum, so a late event invalidates the entries of its bucket and
    nothing else. Least recently used entries go first once `max_fields` fields are held."""

    def __init__(self, max_fields: int = 1_000_000):
        self.max_fields = max_fields
        self._entries: OrderedDict[str, tuple[bytes, object, bytes | None]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._fields = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, keys: list[str]) -> list[tuple[bytes, dict, bytes | None] | None]:
        with self._lock:
            entries = self._entries
            out = []
            for key in keys:
                entry = entries.get(key)
                if entry is not None:
                    entries.move_to_end(key)
                out.append(entry)
            return out

    def put(self, key: str, suffix: bytes, value, size: int | None = None, generation: bytes | None = None) -> None:
        """Keep `value` (a sum of fields, or a block of them: `size` fields) for `key` while its list
        ends with the delta ending in `suffix` (b'' = nothing to check by: not kept), or while its
        bucket's generation is `generation` (read before the list; None = unknown)."""
        size = len(value) if size is None else size
        if (not suffix and generation is None) or size > self.max_fields:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._fields -= self._sizes.pop(key)
            self._entries[key] = (suffix, value, generation)
            self._sizes[key] = size
            self._fields += size
            while self._fields > self.max_fields:
                dropped, _ = self._entries.popitem(last=False)
                self._fields -= self._sizes.pop(dropped)

    def set_generations(self, keys: list[str], generations: list[bytes | None]) -> None:
        """Record each key's bucket generation (read before the store confirmed the entry current)."""
        with self._lock:
            entries = self._entries
            for key, generation in zip(keys, generations):
                entry = entries.get(key)
                if entry is not None and generation is not None and entry[2] != generation:
                    entries[key] = (entry[0], entry[1], generation)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._fields = 0



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
