"""One leader per deployment: a Redis key `SET NX PX` holding the leader's id, renewed by the
holder (compare-and-expire) and released by it (compare-and-delete). The collector uses it; the
alert engine will use the same lock, so one process runs both."""
from __future__ import annotations

import logging

import redis

__all__ = ["LeaderLock"]

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLock:
    """The lock `key` held by `owner` for `ttl_ms` at a time."""

    def __init__(self, client: redis.Redis, key: str, owner: str, ttl_ms: int):
        self.client = client
        self.key = key
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.held = False
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire_or_renew(self) -> bool:
        """Renew the lock when this owner holds it, else try to take it; True while held. Store
        errors propagate (the caller counts this round as failed and is no longer leader)."""
        if self.held and int(self._renew(keys=[self.key], args=[self.owner, self.ttl_ms])):
            return True
        if self.held:
            log.warning("%s lost the lock %s", self.owner, self.key)
        self.held = bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))
        if self.held:
            log.info("%s is now the leader (%s)", self.owner, self.key)
        return self.held

    def release(self) -> None:
        """Give the lock up (another candidate takes over at once); a store error leaves it to expire."""
        if self.held:
            try:
                self._release(keys=[self.key], args=[self.owner])
            except redis.RedisError as exc:
                log.debug("lock %s not released (%s); it expires by itself", self.key, exc)
        self.held = False
