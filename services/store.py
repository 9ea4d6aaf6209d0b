"""The Redis/Valkey store: connection, the atomic ingest script, and bulk reads."""
from __future__ import annotations

from importlib import resources

import redis

from services.keys import Keys
from services.rollups import WritePlan

__all__ = ["Store", "StoreUnavailable", "connect"]

STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionRefusedError, OSError)


class StoreUnavailable(Exception):
    """The store cannot be reached (or is still loading); callers answer 503 and retry later."""


def connect(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A redis-py client for `url` with bounded timeouts and a connection pool."""
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                health_check_interval=30, decode_responses=False)


class Store:
    """Owns the Redis client and the ingest script; everything else reads through it."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        source = resources.files("services").joinpath("ingest_script.lua").read_text()
        self._ingest = client.register_script(source)

    def apply(self, plan: WritePlan) -> list[int] | None:
        """Apply a plan atomically; None when written, else the plan indexes already stored."""
        try:
            result = self._ingest(keys=[self.keys.script_anchor()], args=[plan.payload()])
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
        if int(result[0]) == 1:
            return None
        return [int(i) for i in result[1]]

    def ping(self) -> bool:
        """True when the store answers."""
        try:
            return bool(self.client.ping())
        except STORE_ERRORS:
            return False

    def hgetall_many(self, keys: list[str]) -> list[dict[bytes, bytes]]:
        """HGETALL of many keys in one round trip."""
        if not keys:
            return []
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc

    def run(self, fn):
        """Run `fn(client)` translating connection problems into StoreUnavailable."""
        try:
            return fn(self.client)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(str(exc)) from exc
