"""Messages of the real-time channel (`{"stream", "ts", "data"}`): building them,
publishing them to the one Redis pub/sub channel, and parsing a client's subscribe request."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import orjson
import redis

from services.metrics.labels import OTHER
from services.scope import MAX_PARTNERS_PER_REQUEST, Principal, ScopeError, scope_for
from services.store import STORE_ERRORS, Store
from services.vocabulary import BUILD_EVENT_TYPES, STAGES, STREAMS, is_partner_id

__all__ = ["STREAMS", "publish", "publish_many", "message", "build_messages", "SubscribeError", "parse_subscribe",
           "MAX_SUBSCRIBE_BYTES", "scoped_snapshot"]

log = logging.getLogger(__name__)

MAX_SUBSCRIBE_BYTES = 4096


# -- publishing ----------------------------------------------------------------------------------
def message(stream: str, data: dict, ts: float | None = None) -> dict:
    """One channel message."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    return {"stream": stream, "ts": time.time() if ts is None else ts, "data": data}


def publish_many(store: Store, messages: list[dict]) -> int:
    """Publish messages in one PUBLISH (the hub splits them); returns how many processes received
    them (0 when the store is down: a live message is not worth failing the caller for)."""
    if not messages:
        return 0
    try:
        return int(store.client.publish(store.keys.realtime_channel(), orjson.dumps(messages)))
    except (redis.RedisError, *STORE_ERRORS) as exc:
        log.debug("realtime publish skipped: %s", exc)
        return 0


def publish(store: Store, stream: str, data: dict, ts: float | None = None) -> int:
    """Publish one message on `stream` (the one function the collector and alert engine call)."""
    return publish_many(store, [message(stream, data, ts)])


def build_messages(events: Iterable[dict], now: float, live_window_s: float) -> list[dict]:
    """Channel messages for accepted events: build progress on `builds`, partner upserts on
    `partners`. Events older than the live window (history loads) are not live news."""
    out = []
    oldest = now - live_window_s
    for event in events:
        kind = event["type"]
        if event["ts"] < oldest:
            continue
        if kind in BUILD_EVENT_TYPES:
            if kind == "build.started":
                done = 0
            elif kind == "build.stage":
                done = STAGES.index(event["stage"]) + (0 if event["status"] == "failed" else 1)
            elif event["status"] == "success":
                done = len(STAGES)
            else:
                failed = event.get("failed_stage")
                done = STAGES.index(failed) if failed else None
            out.append(message("builds", {**event, "stages_done": done, "stages_total": len(STAGES)}, now))
        elif kind == "partner.upserted":
            out.append(message("partners", {**event, "change": "upsert"}, now))
    return out


# -- subscribe requests --------------------------------------------------------------------------
class SubscribeError(ValueError):
    """A bad subscribe request (the message says what is wrong)."""


def parse_subscribe(raw: str | bytes, principal: Principal) -> tuple[frozenset[str], frozenset[str] | None]:
    """(streams, partners) of a subscribe request by `principal`; partners None = every partner
    (for a principal that sees them all). The partners come from the one scope rule: none asked =
    every partner the principal may see; one it may not see → SubscribeError. Raises SubscribeError
    naming the field at fault."""
    if len(raw) > MAX_SUBSCRIBE_BYTES:
        raise SubscribeError(f"message larger than {MAX_SUBSCRIBE_BYTES} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SubscribeError("message is not valid JSON") from None
    if not isinstance(doc, dict) or "subscribe" not in doc:
        raise SubscribeError('expected {"subscribe": [streams], "partners": [ids]}')
    unknown = set(doc) - {"subscribe", "partners"}
    if unknown:
        raise SubscribeError(f"unknown field(s): {', '.join(sorted(unknown))}")
    streams = doc["subscribe"]
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        raise SubscribeError("subscribe: must be a list of stream names")
    bad = sorted(set(streams) - set(STREAMS))
    if bad:
        raise SubscribeError(f"subscribe: unknown stream(s) {', '.join(bad)}; known: {', '.join(STREAMS)}")
    partners = doc.get("partners")
    if partners is None:
        partners = []
    if not isinstance(partners, list) or len(partners) > MAX_PARTNERS_PER_REQUEST:
        raise SubscribeError(f"partners: must be a list of at most {MAX_PARTNERS_PER_REQUEST} partner ids")
    for pid in partners:
        if not is_partner_id(pid):
            raise SubscribeError(f"partners: {str(pid)[:80]!r} is not a valid partner id")
    try:
        scope = scope_for(principal, requested=partners, explicit="deny")
    except ScopeError as exc:
        raise SubscribeError(exc.message) from None
    return frozenset(streams), None if scope.partners is None else frozenset(scope.partners)


# The collector's snapshot (`metrics` stream) carries figures keyed by partner id, and host figures.
_PER_PARTNER = ("active_builds", "quota_used_ratio", "builds_this_month")
_FLEET_WIDE = ("ts", "system")


def scoped_snapshot(msg: dict, partners: frozenset[str]) -> dict:
    """A `metrics` message as a client limited to `partners` may see it: the per-partner figures of
    those partners only, totals over them, and no fleet composition (host figures stay)."""
    data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
    out = {key: data[key] for key in _FLEET_WIDE if key in data}  # an allowlist: a new key is not sent
    for key in _PER_PARTNER:
        values = data.get(key)
        if isinstance(values, dict):
            # the metrics label `other` (partners past the label cap) is never one client's partner
            out[key] = {pid: value for pid, value in values.items() if pid in partners and pid != OTHER}
    out["active_builds_total"] = sum(v for v in out.get("active_builds", {}).values() if isinstance(v, (int, float)))
    return {**msg, "data": out}
