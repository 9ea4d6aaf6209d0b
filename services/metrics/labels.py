"""Bounded partner labels: the first N partners a deployment sees keep their id as the
`partner_id` label value, the rest share `other`."""
from __future__ import annotations

import logging
import threading

import redis

__all__ = ["PartnerLabels", "OTHER"]

log = logging.getLogger(__name__)

OTHER = "other"

_CLAIM_LABEL = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then redis.call('SADD', KEYS[1], ARGV[1]) return 1 end
return 0
"""


class PartnerLabels:
    """Partner id → label value: the first `cap` partners the deployment sees keep their id, the
    rest share `other`. The labelled set lives in the store, so every worker and instance agrees;
    each process remembers its answers."""

    def __init__(self, client: redis.Redis, key: str, cap: int):
        self.key = key
        self.cap = cap
        self._claim = client.register_script(_CLAIM_LABEL)
        self._client = client
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, partner_id: str) -> str:
        label = self._known.get(partner_id)
        if label is not None:
            return label
        try:
            label = partner_id if int(self._claim(keys=[self.key], args=[partner_id, self.cap])) else OTHER
        except redis.RedisError as exc:
            log.debug("partner label not claimed (%s); counted as other this time", exc)
            return OTHER
        with self._lock:
            self._known[partner_id] = label
        return label

    def labelled(self) -> set[str]:
        """Every partner id that has its own label."""
        return {m.decode() for m in self._client.smembers(self.key)}


