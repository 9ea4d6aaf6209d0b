"""The /ws channel under gunicorn with 2 workers: real WebSocket clients, real ingest over HTTP."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import websocket

from services.vocabulary import STAGES
from tests.conftest import GunicornProcess, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def web(valkey_url, redis_client, tmp_path):
    server = GunicornProcess(valkey_url, tmp_path, LULUPAY_WS_QUEUE_SIZE="16", LULUPAY_COLLECTOR_ENABLED="false")
    yield server
    server.stop()


class WsClient:
    """A websocket-client connection that subscribes and collects what it receives."""

    def __init__(self, url: str, subscribe: dict | None = None, **options):
        self.ws = websocket.create_connection(url.replace("http://", "ws://") + "/ws", timeout=10, **options)
        self.messages: list[dict] = []
        self.process = None
        if subscribe is not None:
            self.send(subscribe)
            ack = self.next()
            assert ack["stream"] == "subscribed", ack
            self.process = ack["data"]["process"]

    def send(self, doc) -> None:
        self.ws.send(doc if isinstance(doc, str) else json.dumps(doc))

    def next(self) -> dict:
        return json.loads(self.ws.recv())

    def collect(self, count: int, timeout: float = 20) -> list[dict]:
        """Receive until `count` messages of stream builds/partners arrived."""
        self.ws.settimeout(timeout)
        while len(self.messages) < count:
            self.messages.append(self.next())
        return self.messages

    def close(self) -> None:
        self.ws.close()


def build_events(build_id: str, partner: str, now: float) -> list[dict]:
    """One build: started, six stages, finished (in order)."""
    events = [{"type": "build.started", "id": f"{build_id}-s", "ts": now, "partner_id": partner,
               "build_id": build_id, "build_type": "release", "app_version": "5.0.0"}]
    for i, stage in enumerate(STAGES):
        events.append({"type": "build.stage", "id": f"{build_id}-{i}", "ts": now + i + 1, "partner_id": partner,
                       "build_id": build_id, "stage": stage, "status": "success", "duration_s": 1.0})
    events.append({"type": "build.finished", "id": f"{build_id}-f", "ts": now + 8, "partner_id": partner,
                   "build_id": build_id, "build_type": "release", "status": "success", "duration_s": 8.0})
    return events


def clients_on_both_workers(url: str, subscribe: dict, per_worker: int = 2) -> list[WsClient]:
    """Open connections until each of the two workers holds `per_worker` of them."""
    by_process: dict[int, list[WsClient]] = {}
    spare = []
    for _ in range(60):
        client = WsClient(url, subscribe)
        group = by_process.setdefault(client.process, [])
        (group if len(group) < per_worker else spare).append(client)
        if len(by_process) == 2 and all(len(g) >= per_worker for g in by_process.values()):
            break
    for client in spare:
        client.close()
    assert len(by_process) == 2, "connections never reached the second worker"
    return [c for group in by_process.values() for c in group]


def test_every_event_reaches_every_subscriber_on_both_workers_in_order(web):
    clients = clients_on_both_workers(web.url, {"subscribe": ["builds"]})
    filtered = WsClient(web.url, {"subscribe": ["builds"], "partners": ["acme-bank"]})
    now = time.time() - 60
    a, b = build_events("build-a", "acme-bank", now), build_events("build-b", "zen-pay", now)
    # interleaved, one event per request: requests land on both workers
    for ea, eb in zip(a, b):
        for event in (ea, eb):
            assert requests.post(web.url + "/api/v1/events", json=event, timeout=10).status_code == 202
    for client in clients:
        received = client.collect(len(a) + len(b))
        for events in (a, b):
            build_id = events[0]["build_id"]
            ids = [m["data"]["id"] for m in received if m["data"]["build_id"] == build_id]
            assert ids == [e["id"] for e in events], "every event, in ingest order per build"
        done = [m["data"]["stages_done"] for m in received if m["data"]["build_id"] == "build-a"]
        assert done == [0, 1, 2, 3, 4, 5, 6, 6]
        assert all(m["stream"] == "builds" and "ts" in m for m in received)
    # the partner filter: only acme-bank's build
    received = filtered.collect(len(a))
    assert {m["data"]["partner_id"] for m in received} == {"acme-bank"}
    # nothing of zen-pay arrives afterwards either: the next message is a later acme-bank event
    marker = build_events("build-c", "acme-bank", now)[0]
    requests.post(web.url + "/api/v1/events", json=marker, timeout=10)
    assert filtered.next()["data"]["id"] == marker["id"]
    for client in clients + [filtered]:
        client.close()


def test_bad_subscribe_messages_get_an_error_and_the_connection_stays_open(web):
    client = WsClient(web.url)
    for bad, expected in (("{not json", "not valid JSON"), ({"subscribe": ["nope"]}, "unknown stream"),
                          ({"subscribe": ["builds"], "partners": ["BAD ID"]}, "not a valid partner id"),
                          ("x" * 5000, "larger than 4096 bytes")):
        client.send(bad)
        answer = client.next()
        assert answer["stream"] == "error" and expected in answer["data"]["error"]
    client.send({"subscribe": ["partners"]})
    assert client.next()["stream"] == "subscribed"
    event = {"type": "partner.upserted", "id": "p-1", "ts": time.time(), "partner_id": "acme-bank",
             "name": "Acme Bank", "tier": "pro", "monthly_build_quota": 100, "status": "active"}
    requests.post(web.url + "/api/v1/events", json=event, timeout=10)
    message = client.next()
    assert message["stream"] == "partners" and message["data"]["tier"] == "pro"
    client.close()


def test_a_browser_from_another_origin_is_refused(web):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(web.url.replace("http://", "ws://") + "/ws", origin="http://evil.example")
    assert exc.value.status_code == 403


def scraped(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_slow_client_is_closed_and_the_others_keep_receiving(web):
    # The slow client: a tiny receive buffer, and it never reads.
    slow = WsClient(web.url, {"subscribe": ["builds"]}, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = WsClient(web.url, {"subscribe": ["builds"]})
    now = time.time() - 60
    sent = 0
    reader = threading.Thread(target=fast.collect, args=(401, 60), daemon=True)  # reads as a live client does
    reader.start()
    # Large messages (error text of 4,000 characters) fill the socket buffers fast.
    batch = [{"type": "build.finished", "id": f"big-{i}", "ts": now, "partner_id": "acme-bank", "build_id": f"b{i}",
              "build_type": "debug", "status": "failed", "duration_s": 1.0, "error_category": "gradle",
              "error_message": "x" * 4000} for i in range(400)]
    for i in range(0, len(batch), 10):  # 40 publications: more than the queue's 16
        assert requests.post(web.url + "/api/v1/events", json={"events": batch[i:i + 10]}, timeout=30).status_code == 202
        sent += 10
        # the fast client keeps up (it is never more than one publication behind)
        wait_until(lambda: len(fast.messages) >= sent, timeout=30, message=f"fast client has {sent} messages")
    wait_until(lambda: scraped(web.url, 'lulupay_websocket_dropped_clients_total{reason="slow"}') >= 1,
               timeout=30, message="the slow client dropped")
    # the fast client got every message, the slow one's trouble notwithstanding, and keeps receiving
    marker = build_events("after", "acme-bank", now)[0]
    requests.post(web.url + "/api/v1/events", json=marker, timeout=10)
    reader.join(60)
    assert [m["data"]["id"] for m in fast.messages] == [e["id"] for e in batch] + [marker["id"]]
    # the slow client, once it reads, finds the close frame with the reason (or a reset socket)
    slow.ws.settimeout(20)
    codes = []
    try:
        while True:
            opcode, frame = slow.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                codes.append(int.from_bytes(frame.data[:2], "big"))
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        codes.append("reset")
    assert codes and codes[0] in (4008, "reset")
    fast.close()
