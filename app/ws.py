"""`WS /ws`: the real-time channel's endpoint (flask-sock), one thread per connection.

Protocol: the client sends `{"subscribe": [...], "partners": [...]}` at any time; the
server answers `{"stream": "subscribed", ...}` or `{"stream": "error", "data": {"error": ...}}`
(the connection stays open), then pushes `{"stream", "ts", "data"}` messages of its streams.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from urllib.parse import urlsplit

import orjson
from flask import Flask, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from app.api import json_response
from app.auth import current_principal
from services import metrics
from services.realtime import Client, LockedSocket, SubscribeError, parse_subscribe

__all__ = ["install", "origin_allowed"]

log = logging.getLogger(__name__)

WS_PATH = "/ws"
# The kernel send buffer of each socket: bounds memory per connection and lets a client that stops
# reading fill its queue (and be closed) in seconds rather than after megabytes.
SEND_BUFFER_BYTES = 64 * 1024


def origin_allowed(origin: str | None, host: str, allowed: list[str]) -> bool:
    """Browsers send Origin: it must be this host or a configured origin. Non-browser clients send
    none (no ambient credentials to abuse) and are let through to authentication."""
    if not origin:
        return True
    if origin in allowed:
        return True
    return urlsplit(origin).netloc == host


def _error(text: str) -> str:
    return orjson.dumps({"stream": "error", "ts": time.time(), "data": {"error": text}}).decode()


class _ReaderThread(threading.Thread):
    """simple-websocket's per-connection reader, as a daemon: a worker that is stopping (its
    sockets closed with 1001) exits without waiting for readers still selecting on a peer that
    never answers the close (a reader wakes only once per ping interval)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.daemon = True


def install(server: Flask, services) -> None:
    """Add the `/ws` route and its origin check to `server`."""
    settings = services.settings
    hub = services.hub
    server.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": settings.ws_ping_interval_s,
                                            "max_message_size": 64 * 1024, "thread_class": _ReaderThread}
    allowed = [o.strip() for o in settings.ws_allowed_origins.split(",") if o.strip()]
    sock = Sock(server)

    @server.before_request
    def _ws_origin():
        if request.path != WS_PATH:
            return None
        if not origin_allowed(request.headers.get("Origin"), request.host, allowed):
            metrics.WS_DROPPED.labels("bad_origin").inc()
            return json_response({"error": f"origin {request.headers.get('Origin')!r} is not allowed "
                                           "(LULUPAY_WS_ALLOWED_ORIGINS)", "field": "Origin"}, 403)
        return None

    @sock.route(WS_PATH)
    def ws_route(ws):
        # The gate refused anonymous requests before the upgrade: this is the signed-in principal,
        # and every subscribe request is scoped by it.
        principal = current_principal()
        raw = getattr(ws, "sock", None)
        if raw is not None:
            try:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            except OSError:
                pass
        client = hub.connect(raw)
        if raw is not None:
            ws.sock = LockedSocket(raw, client)  # every write of simple-websocket goes through the client
        _wake_on_input(ws, client)
        try:
            _serve(ws, client, principal)
        except (ConnectionClosed, OSError):
            pass
        except Exception:
            log.exception("websocket connection failed")
            metrics.WS_DROPPED.labels("error").inc()
        finally:
            hub.disconnect(client)


class _WakeEvent(threading.Event):
    """simple-websocket's "input arrived / connection ended" event, which also wakes the connection's
    thread blocked on its queue, so the thread never polls (1,000 polling threads cost a core)."""

    def __init__(self, client: Client):
        super().__init__()
        self.client = client

    def set(self) -> None:
        super().set()
        self.client.wake()


def _wake_on_input(ws, client: Client) -> None:
    ws.event = _WakeEvent(client)
    client.wake()  # input that arrived before the swap is looked at once


def _stop_reading(client: Client) -> None:
    """After our close frame: stop reading the socket. simple-websocket's reader thread (not a
    daemon) would otherwise wait for the peer's answer for up to a ping interval, and a worker's
    graceful stop waited for those threads (20 s with a client that never answers the close)."""
    try:
        client.sock.shutdown(socket.SHUT_RD)
    except (OSError, AttributeError):  # already gone
        pass


def _serve(ws, client: Client, principal) -> None:
    """Write what the hub queued and answer subscribe requests until the connection ends. Blocks
    on the client's queue: queued bytes, input wake-ups and the close request all arrive there."""
    while ws.connected:
        if client.closing:
            code, reason = client.closing
            ws.close(reason=code, message=reason)
            _stop_reading(client)
            return
        item = client.queue.get()
        while isinstance(item, bytes):  # what the hub could not write at once, then the rest queued
            client.flush_one(item)
            if client.closing:
                break
            try:
                item = client.queue.get_nowait()
            except queue.Empty:
                item = None
        if client.dead:
            return
        while True:
            incoming = ws.receive(timeout=0)
            if incoming is None:
                break
            try:
                streams, partners = parse_subscribe(incoming, principal)
            except SubscribeError as exc:
                ws.send(_error(str(exc)))
                metrics.WS_MESSAGES.labels("error").inc()
                continue
            client.subscribe(streams, partners)
            ws.send(orjson.dumps({"stream": "subscribed", "ts": time.time(),
                                  "data": {"subscribe": sorted(streams),
                                           "partners": None if partners is None else sorted(partners),
                                           "process": os.getpid()}}).decode())
