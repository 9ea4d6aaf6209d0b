"""Real-time channel (DESIGN.md "Real-time channel"): messages `{"stream", "ts", "data"}`.

Publishers (ingest, the collector, later the alert engine) `publish()` to one Redis pub/sub
channel; each process runs one `Hub` whose subscriber thread fans every message out to that
process's own `/ws` clients, so a message reaches clients on every worker and every instance.

A `Client` has a bounded queue: when it is full, the client cannot keep up and is closed with close
code 4008 and a reason (its socket is shut down if even the close frame cannot be written), without
ever blocking the hub or the other clients. Heartbeats (ping every 20 s, closed without pong) are
simple-websocket's; a connection that never subscribes is closed as idle.
"""
from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Iterable

import orjson
import redis

from services import metrics
from services.events import STAGES
from services.store import STORE_ERRORS, Store

__all__ = ["STREAMS", "publish", "publish_many", "message", "Hub", "Client", "SubscribeError", "parse_subscribe",
           "build_messages", "CLOSE_SLOW", "CLOSE_IDLE", "CLOSE_SHUTDOWN"]

log = logging.getLogger(__name__)

STREAMS = ("builds", "metrics", "alerts", "partners")
PARTNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_SUBSCRIBE_BYTES = 4096
MAX_PARTNERS = 500
CLOSE_SLOW = (4008, "too slow: the message queue of this connection overflowed; reconnect")
CLOSE_IDLE = (4000, "idle: no subscribe message received")
CLOSE_SHUTDOWN = (1001, "server shutting down")
_BUILD_TYPES = ("build.started", "build.stage", "build.finished")


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
        if kind in _BUILD_TYPES:
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


def parse_subscribe(raw: str | bytes, visible: set[str] | None) -> tuple[frozenset[str], frozenset[str] | None]:
    """(streams, partners) of a subscribe request; partners None = every partner the caller may
    see. Raises SubscribeError naming the field at fault."""
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
    if partners is None or partners == []:
        chosen = None if visible is None else frozenset(visible)
    else:
        if not isinstance(partners, list) or len(partners) > MAX_PARTNERS:
            raise SubscribeError(f"partners: must be a list of at most {MAX_PARTNERS} partner ids")
        for pid in partners:
            if not isinstance(pid, str) or not PARTNER_RE.match(pid):
                raise SubscribeError(f"partners: {pid!r} is not a valid partner id")
        chosen = frozenset(partners) if visible is None else frozenset(partners) & frozenset(visible)
    return frozenset(streams), chosen


# -- clients and the hub -------------------------------------------------------------------------
class Client:
    """One connection's subscription and bounded outgoing queue."""

    def __init__(self, queue_size: int, sock: socket.socket | None = None):
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.streams: frozenset[str] = frozenset()
        self.partners: frozenset[str] | None = None
        self.subscribed = False
        self.sock = sock
        self.closing: tuple[int, str] | None = None
        self.closing_since = 0.0
        self.connected_at = time.monotonic()

    def subscribe(self, streams: frozenset[str], partners: frozenset[str] | None) -> None:
        self.streams, self.partners, self.subscribed = streams, partners, True

    def wants(self, stream: str, partner: str | None) -> bool:
        if stream not in self.streams:
            return False
        return partner is None or self.partners is None or partner in self.partners

    def offer(self, batch: list[tuple[bytes, str, float]]) -> bool:
        """Queue the messages of one publication (serialised message, stream, publication time);
        False (and marked for closing) when the queue is full: `queue_size` publications behind."""
        if self.closing:
            return False
        try:
            self.queue.put_nowait(batch)
            return True
        except queue.Full:
            metrics.WS_DROPPED.labels("slow").inc()
            self.close_with(*CLOSE_SLOW)
            return False

    def close_with(self, code: int, reason: str) -> None:
        """Ask the connection's thread to close (it sends the close frame)."""
        if self.closing is None:
            self.closing = (code, reason)
            self.closing_since = time.monotonic()
            try:
                self.queue.put_nowait(None)  # wake the sender
            except queue.Full:
                pass  # it wakes on its next get; the reaper shuts the socket if it is stuck


class Hub:
    """One per process: the Redis subscriber thread and the connected clients."""

    def __init__(self, store: Store, *, queue_size: int = 256, idle_s: float = 60.0, stuck_s: float = 5.0):
        self.store = store
        self.queue_size = queue_size
        self.idle_s = idle_s
        self.stuck_s = stuck_s
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.subscribed = threading.Event()

    # clients
    def connect(self, sock: socket.socket | None = None) -> Client:
        self._ensure_started()
        client = Client(self.queue_size, sock)
        with self._lock:
            self._clients.add(client)
        metrics.WS_CONNECTIONS.inc()
        return client

    def disconnect(self, client: Client) -> None:
        with self._lock:
            if client not in self._clients:
                return
            self._clients.discard(client)
        metrics.WS_CONNECTIONS.dec()

    def client_count(self) -> int:
        return len(self._clients)

    # fan-out
    def dispatch(self, raw: bytes) -> int:
        """Fan one pub/sub payload (a JSON list of messages) out; returns messages queued. Each
        message is serialised once; each client gets one queue item per payload (its messages)."""
        try:
            messages = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("realtime: dropped a malformed channel payload")
            return 0
        if not isinstance(messages, list):
            messages = [messages]
        with self._lock:
            clients = [c for c in self._clients if c.subscribed and not c.closing]
        if not clients:
            return 0
        prepared = []
        for msg in messages:
            data = msg.get("data") if isinstance(msg, dict) else None
            partner = data.get("partner_id") if isinstance(data, dict) else None
            stream = msg.get("stream") if isinstance(msg, dict) else None
            prepared.append((stream, partner, (orjson.dumps(msg), stream, msg.get("ts") or time.time())))
        queued = 0
        for client in clients:
            batch = [payload for stream, partner, payload in prepared if client.wants(stream, partner)]
            if batch and client.offer(batch):
                queued += len(batch)
        return queued

    # threads
    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            for target, name in ((self._listen, "realtime-subscriber"), (self._reap, "realtime-reaper")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _listen(self) -> None:
        channel = self.store.keys.realtime_channel()
        failures = 0
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel)
                self.subscribed.set()
                failures = 0
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=1.0)
                    if msg is not None and msg["type"] == "message":
                        self.dispatch(msg["data"])
            except (redis.RedisError, *STORE_ERRORS) as exc:
                self.subscribed.clear()
                failures += 1
                if failures == 1:
                    log.warning("realtime: store subscription lost (%s); retrying", exc)
                self._stop.wait(min(0.5 * 2 ** failures, 10.0))
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass

    def _reap(self) -> None:
        """Close idle connections; shut down sockets stuck on a close that cannot be written."""
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self._lock:
                clients = list(self._clients)
            for client in clients:
                if not client.subscribed and client.closing is None and now - client.connected_at > self.idle_s:
                    metrics.WS_DROPPED.labels("idle").inc()
                    client.close_with(*CLOSE_IDLE)
                elif client.closing and now - client.closing_since > self.stuck_s and client.sock is not None:
                    try:
                        client.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def stop(self) -> None:
        """Close every client (1001) and stop the threads."""
        self._stop.set()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close_with(*CLOSE_SHUTDOWN)
        for thread in self._threads:
            thread.join(5)
