"""Real-time channel: messages `{"stream", "ts", "data"}` published through Redis pub/sub so every
process (worker or instance) can fan them out to its own `/ws` clients."""
from __future__ import annotations

import logging
import time

import orjson
import redis

from services.store import STORE_ERRORS, Store

__all__ = ["STREAMS", "publish", "message"]

log = logging.getLogger(__name__)

STREAMS = ("builds", "metrics", "alerts", "partners")


def message(stream: str, data: dict, ts: float | None = None) -> dict:
    """One channel message."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    return {"stream": stream, "ts": time.time() if ts is None else ts, "data": data}


def publish(store: Store, stream: str, data: dict, ts: float | None = None) -> int:
    """Publish one message; returns how many processes received it (0 when the store is down: a
    live message is not worth failing the caller for)."""
    try:
        return int(store.client.publish(store.keys.realtime_channel(), orjson.dumps(message(stream, data, ts))))
    except (redis.RedisError, *STORE_ERRORS) as exc:
        log.debug("realtime publish skipped: %s", exc)
        return 0
