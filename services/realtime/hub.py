"""Real-time channel fan-out: each process runs one `Hub` whose subscriber thread fans every
message of the channel out to that process's own `/ws` clients, so a message reaches clients on
every worker and every instance.

A `Client` has a bounded queue: when it is full, the client cannot keep up and is closed with close
code 4008 and a reason (its socket is shut down if even the close frame cannot be written), without
ever blocking the hub or the other clients. Heartbeats (ping every 20 s, closed without pong) are
simple-websocket's; a connection that never subscribes is closed as idle.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time

import orjson
import redis

from services import metrics
from services.backoff import Backoff
from services.realtime.messages import scoped_snapshot
from services.store import STORE_ERRORS, Store

__all__ = ["Hub", "Client", "text_frame", "LockedSocket", "CLOSE_SLOW", "CLOSE_IDLE", "CLOSE_SHUTDOWN"]

log = logging.getLogger(__name__)

CLOSE_SLOW = (4008, "too slow: the message queue of this connection overflowed; reconnect")
CLOSE_IDLE = (4000, "idle: no subscribe message received")
CLOSE_SHUTDOWN = (1001, "server shutting down")
WAKE = "wake"  # queue item: look at the connection's input
# Streams whose messages concern many partners at once: a client limited to some partners gets
# its own copy with only theirs (services/realtime/messages.scoped_snapshot).
PER_PARTNER_STREAMS = frozenset({"metrics"})
# Streams whose messages without a partner go to every subscriber: the metrics snapshots (cut per
# client above). An alert without a partner is the deployment's own: only for a client that sees
# every partner (docs/alerting.md), like its rows in the API.
GLOBAL_STREAMS = frozenset({"metrics"})


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked server-to-client WebSocket text frame (RFC 6455 §5.2) of UTF-8 `payload`:
    built once per message and sent as is to every client, instead of framing it per client."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


# -- clients and the hub -------------------------------------------------------------------------
class Client:
    """One connection: its subscription, and the ordered, bounded way bytes reach its socket.

    Fast path: the hub thread writes a publication's frames straight to the socket without
    blocking (MSG_DONTWAIT) when nothing is pending — no thread wake-up per message, which is what
    lets one process serve a thousand sockets. Slow path: whatever cannot be written at once (the
    rest of a partial write, and everything after it, in order) goes to the connection's queue,
    which its own thread drains with blocking writes. Every write — the hub's, the connection
    thread's, simple-websocket's pongs and close frames (through `LockedSocket`) — holds
    `write_lock`, and nothing bypasses a non-empty queue, so frames never interleave or reorder.
    """

    def __init__(self, queue_size: int, sock: socket.socket | None = None):
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.streams: frozenset[str] = frozenset()
        self.partners: frozenset[str] | None = frozenset()  # nothing until a subscribe sets the scope
        self.subscribed = False
        self.sock = sock
        self.write_lock = threading.Lock()  # held while bytes are written to the socket
        self.state_lock = threading.Lock()  # guards `pending` (taken after write_lock, never before)
        self.pending = 0  # byte items queued and not yet written
        self.closing: tuple[int, str] | None = None
        self.closing_since = 0.0
        self.connected_at = time.monotonic()
        self.dead = False

    def subscribe(self, streams: frozenset[str], partners: frozenset[str] | None) -> None:
        self.streams, self.partners, self.subscribed = streams, partners, True

    def wants(self, stream: str, partner: str | None) -> bool:
        """Messages of its streams; a client limited to some partners gets a message only when it
        names one of them — or it is fleet-wide by nature (GLOBAL_STREAMS) — fail closed."""
        if stream not in self.streams:
            return False
        if self.partners is None:
            return True
        if partner is None:
            return stream in GLOBAL_STREAMS
        return partner in self.partners

    def deliver(self, data: bytes) -> bool:
        """Hand over frames (hub thread, never blocks): written now if nothing is pending and the
        socket takes them, else queued in order. False when the connection is closing or dead."""
        if self.closing or self.dead:
            return False
        if not self.write_lock.acquire(blocking=False):
            with self.state_lock:
                return self._enqueue(data)
        try:
            with self.state_lock:
                if self.pending or self.sock is None:
                    return self._enqueue(data)
            try:
                sent = self.sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.dead = True
                self.wake()
                return False
            if sent < len(data):  # the rest goes first, before any other writer (write lock held)
                with self.state_lock:
                    return self._enqueue(data[sent:])
            return True
        finally:
            self.write_lock.release()

    def _enqueue(self, data: bytes) -> bool:
        """Queue bytes for the connection thread (state lock held). Full: the client is too slow."""
        try:
            self.queue.put_nowait(data)
        except queue.Full:
            metrics.WS_DROPPED.labels("slow").inc()
            self.close_with(*CLOSE_SLOW)
            return False
        self.pending += 1
        return True

    def write(self, data: bytes) -> None:
        """A blocking, ordered write from any other thread (acks, errors, pongs, close frames)."""
        with self.write_lock:
            with self.state_lock:
                if self.pending:
                    if not self._enqueue(data):
                        raise BrokenPipeError("client closed as too slow")
                    return
            self.sock.sendall(data)

    def flush_one(self, data: bytes) -> None:
        """Write one queued item (the connection thread; blocking)."""
        with self.write_lock:
            try:
                self.sock.sendall(data)
            finally:
                with self.state_lock:
                    self.pending -= 1

    def wake(self) -> None:
        """Wake the connection's thread (input arrived, or the connection ended)."""
        try:
            self.queue.put_nowait(WAKE)
        except queue.Full:
            pass  # the thread is busy sending; it looks at input after the queue

    def close_with(self, code: int, reason: str) -> None:
        """Ask the connection's thread to close (it sends the close frame)."""
        if self.closing is None:
            self.closing = (code, reason)
            self.closing_since = time.monotonic()
            try:
                self.queue.put_nowait(None)  # wake the sender
            except queue.Full:
                pass  # it wakes on its next get; the reaper shuts the socket if it is stuck


class LockedSocket:
    """The connection's socket as simple-websocket sees it: its writes (handshake done; pongs,
    close frames, `ws.send`) go through the client's ordered write path."""

    def __init__(self, sock: socket.socket, client: Client):
        self._sock = sock
        self._client = client

    def send(self, data: bytes) -> int:
        self._client.write(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self._client.write(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


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
        self.backoff = Backoff(base_s=1.0, cap_s=10.0)  # resubscribe after a lost store connection

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
        with self._lock:
            clients = [c for c in self._clients if c.subscribed and not c.closing]
        if not clients:  # nobody listening in this process: not even worth parsing
            return 0
        try:
            messages = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("realtime: dropped a malformed channel payload")
            return 0
        if not isinstance(messages, list):
            messages = [messages]
        messages = [m for m in messages if isinstance(m, dict)]
        prepared = []
        for msg in messages:
            data = msg.get("data") if isinstance(msg, dict) else None
            partner = data.get("partner_id") if isinstance(data, dict) else None
            partner = partner if isinstance(partner, str) else None
            stream = msg.get("stream") if isinstance(msg, dict) else None
            prepared.append((stream, partner, (text_frame(orjson.dumps(msg)), stream, msg.get("ts") or time.time())))
        queued = 0
        counts: dict[str, int] = {}
        scoped: dict[tuple[int, frozenset], bytes] = {}  # (message, partner set) → frame, once per dispatch

        def frame_for(i: int, client: Client) -> bytes:
            stream, _, (frame, _, _) = prepared[i]
            if stream not in PER_PARTNER_STREAMS or client.partners is None:
                return frame
            key = (i, client.partners)
            if key not in scoped:
                scoped[key] = text_frame(orjson.dumps(scoped_snapshot(messages[i], client.partners)))
            return scoped[key]

        for client in clients:
            chosen = [(frame_for(i, client), stream) for i, (stream, partner, _) in enumerate(prepared)
                      if client.wants(stream, partner)]
            if not chosen:
                continue
            data = chosen[0][0] if len(chosen) == 1 else b"".join(frame for frame, _ in chosen)
            if client.deliver(data):
                queued += len(chosen)
                for _, stream in chosen:
                    counts[stream] = counts.get(stream, 0) + 1
        for stream, count in counts.items():
            metrics.WS_MESSAGES.labels(stream).inc(count)
        if queued:  # publication → handed to every client of this process
            metrics.WS_DELIVERY.observe(max(0.0, time.time() - min(p[2][2] for p in prepared)))
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
                        try:
                            self.dispatch(msg["data"])
                        except Exception:  # one odd publication must not end this process's fan-out
                            log.exception("realtime: a publication could not be dispatched")
            except (redis.RedisError, *STORE_ERRORS) as exc:
                self.subscribed.clear()
                failures += 1
                if failures == 1:
                    log.warning("realtime: store subscription lost (%s); retrying", exc)
                self._stop.wait(self.backoff.delay(failures - 1))
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
