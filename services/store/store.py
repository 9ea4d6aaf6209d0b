"""The Redis/Valkey store: connection, the atomic ingest script, and bulk reads."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import orjson
import redis

from services.store.keys import Keys
from services.ingest.plan import DELTA_SEPARATOR, TOKEN_FIELD, WritePlan, merge_deltas, unique_token

__all__ = ["Store", "StoreUnavailable", "ApplyResult", "connect"]

STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionRefusedError, OSError)


class StoreUnavailable(Exception):
    """The store cannot be reached (or is still loading); callers answer 503 and retry later."""


def connect(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A redis-py client for `url` with bounded timeouts and a connection pool."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                health_check_interval=30, decode_responses=False)


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of one ingest script call."""

    already_stored: list[int] | None  # plan positions of events already stored (nothing written)
    compact: list[str]  # rollup lists long enough to merge


class Store:
    """Owns the Redis client and the scripts; everything else reads through it."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        scripts = resources.files("services.store").joinpath("scripts")
        self._ingest = client.register_script(scripts.joinpath("ingest.lua").read_text())
        self._compact = client.register_script(scripts.joinpath("compact.lua").read_text())
        self._read = client.register_script(scripts.joinpath("read.lua").read_text())
        self._scripts: dict[str, object] = {}  # other modules' scripts, registered once (see `script`)

    def apply(self, plan: WritePlan) -> ApplyResult:
        """Apply a plan atomically, unless some of its events are already stored."""
        try:
            result = self._ingest(keys=[self.keys.script_anchor()], args=plan.script_args())
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if int(result[0]) == 1:
            return ApplyResult(None, [k.decode() for k in result[1]])
        return ApplyResult([int(i) for i in result[1]], [])

    def compact(self, keys: list[str]) -> int:
        """Merge each rollup list into one delta (two round trips for all of them)."""
        if not keys:
            return 0
        lists = self.lrange_many(keys)
        ops = []
        for key, deltas in zip(keys, lists):
            if len(deltas) < 2:
                continue
            merged: dict = {}
            for blob in deltas:
                merge_deltas(merged, orjson.loads(blob))
            merged[TOKEN_FIELD] = unique_token()
            ops.append((key, deltas, orjson.dumps(merged)))
        return sum(self.compact_read(ops))

    def compact_read(self, ops: list[tuple[str, list[bytes], bytes]]) -> list[int]:
        """Replace the deltas of each (key, deltas as read, merged delta) by the merged delta, if the
        list still starts with exactly those deltas (else it is left alone): one flag per op."""
        args: list = []
        for key, deltas, merged in ops:
            args += [key, len(deltas), deltas[0], deltas[-1], merged]
        if not args:
            return []
        return [int(flag) for flag in self.run(lambda c: self._compact(keys=[self.keys.script_anchor()], args=args))]

    def ping(self) -> bool:
        """True when the store answers."""
        try:
            return bool(self.client.ping())
        except STORE_ERRORS:
            return False

    def lrange_many(self, keys: list[str]) -> list[list[bytes]]:
        """Whole lists of many keys in one round trip."""
        if not keys:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.lrange(key, 0, -1)
            return pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    READ_CHUNK = 2000  # keys per read-script call: the server serves other clients between calls

    def read_lists(self, keys: list[str], suffixes: list[bytes], groups: list[int] | None = None,
                   generations: list[str] | None = None) -> list:
        """For each key: 0 if its list still ends with the delta whose end is its suffix (the caller's
        sum of it is current), else the whole list. Suffix b'' = always the list. One round trip.
        `groups` (sizes, summing to len(keys)) are runs of keys read in one script call each, so
        one atomic snapshot (default: all keys one group); groups are packed into calls of about
        READ_CHUNK keys, and a call holds whole groups. `generations`: keys whose values (None when
        absent) are appended as one more element, read in the same call as the last group."""
        if not keys:
            if not generations:
                return []
            return [self.run(lambda c: c.mget(generations))]
        anchor = [self.keys.script_anchor()]
        sep = DELTA_SEPARATOR
        calls: list[tuple[int, int]] = []
        lo = hi = 0
        for size in (groups if groups is not None else [len(keys)]):
            if hi > lo and hi - lo + size > self.READ_CHUNK:
                calls.append((lo, hi))
                lo = hi
            hi += size
        if hi > lo:
            calls.append((lo, hi))
        try:
            pipe = self.client.pipeline(transaction=False)
            for i, (lo, hi) in enumerate(calls):
                args = [sep.join(k.encode() for k in keys[lo:hi]), sep.join(suffixes[lo:hi])]
                if generations and i == len(calls) - 1:
                    args.append(sep.join(g.encode() for g in generations))
                self._read(keys=anchor, client=pipe, args=args)
            out = []
            for part in pipe.execute():
                out.extend(part)
            if generations:
                out[-1] = [g if g else None for g in out[-1]]  # Lua false → nil → None
            return out
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    def script(self, source: str):
        """The registered script of `source` (redis-py's `Script`: EVALSHA, loading it when missing),
        created once per store rather than hashed again on every call."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = self.client.register_script(source)
        return registered

    def run(self, fn):
        """Run `fn(client)` translating connection problems into StoreUnavailable."""
        try:
            return fn(self.client)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
