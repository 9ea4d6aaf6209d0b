"""The alert notification delivery queue on a real Valkey against a real local HTTP receiver (and a
real Alertmanager): retried with back-off on the injected clock, the same Idempotency-Key on every
attempt, one 2xx per notification, nothing lost to a lease that runs out or a kill -9 mid-POST."""
from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import requests

from services.alerting.delivery import DeliveryQueue, DeliveryWorker, Notification
from services.store import Store, connect
from services.store.keys import Keys
from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """A real HTTP server on a free port: records every request (path, headers, JSON body, what it
    answered) and answers from `answers` (a status, or (status, headers, body)), then `default`.
    With `hold_first`, the first request waits for that event and is answered only if its client is
    still connected (else recorded as `gone`)."""

    def __init__(self, answers=(), default=200, hold_first: threading.Event | None = None):
        self.answers = list(answers)
        self.default = default
        self.hold_first = hold_first
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    record = {"path": self.path, "headers": dict(self.headers), "body": orjson.loads(body),
                              "answered": None, "gone": False, "finished": False}
                    first = not receiver.requests
                    receiver.requests.append(record)
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                try:
                    if first and receiver.hold_first is not None:
                        receiver.hold_first.wait(20)
                        if _peer_gone(self.connection):
                            record["gone"] = True
                            self.close_connection = True
                            return
                    status, headers, text = answer if isinstance(answer, tuple) else (answer, {}, "")
                    payload = text.encode()
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    record["answered"] = status
                finally:
                    record["finished"] = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def keys(self) -> list[str]:
        return [r["headers"]["Idempotency-Key"] for r in self.requests]

    def completed_2xx(self, key: str) -> int:
        """2xx answers the receiver actually completed for `key` (once every handler has finished)."""
        wait_until(lambda: all(r["finished"] for r in self.requests), timeout=5, message="the receiver's handlers")
        return sum(1 for r in self.requests if r["headers"]["Idempotency-Key"] == key
                   and r["answered"] is not None and 200 <= r["answered"] < 300)

    def stop(self) -> None:
        if self.hold_first is not None:
            self.hold_first.set()
        self.server.shutdown()
        self.server.server_close()


def _peer_gone(sock: socket.socket) -> bool:
    """True when the client closed (or reset) the connection."""
    readable, _, _ = select.select([sock], [], [], 1.0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@pytest.fixture
def store(redis_client, valkey_url):
    return Store(connect(valkey_url), Keys("lp"))


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def notification(nid: str, url: str, *, kind: str = "webhook", created_at: float, body=None,
                 partner_ids=("acme-bank",)) -> Notification:
    return Notification(id=nid, receiver="ops-hook", kind=kind, url=url,
                        body=body if body is not None else {"version": "4", "status": "firing", "alerts": [{"n": nid}]},
                        group_key="{}:{alertname=\"HighCpu\"}", status="firing", created_at=created_at,
                        partner_ids=partner_ids)


NOW = float(int(time.time()))


def test_a_failing_receiver_gets_retries_with_backoff_and_the_same_key_until_one_2xx(store, receivers):
    receiver = receivers([503, (503, {"Retry-After": "10"}, "busy"), 200])
    clock = Clock(NOW)
    queue = DeliveryQueue(store, clock=clock, backoff_base_s=2.0, backoff_max_s=300.0)
    note = notification("alert-1:firing", receiver.url + "/hook", created_at=NOW)
    assert queue.enqueue(note) is True
    first = queue.deliver_due()
    assert [(a["http_status"], a["outcome"], a["attempt"], a["next_at"], a["applied"]) for a in first] == \
        [(503, "retry", 1, NOW + 2.0, "retry")]
    assert queue.deliver_due() == []  # not due before NOW + 2 (base × 2**0)
    [pending] = queue.pending()
    assert (pending["id"], pending["due_at"], pending["attempts"], pending["leased"]) == (note.id, NOW + 2, 1, False)
    assert pending["last"]["http_status"] == 503 and "url" not in pending and "body" not in pending
    clock.advance(2.0)
    second = queue.deliver_due()
    # base × 2**1 = 4 s, but the receiver asked for 10 (Retry-After honoured, capped at backoff_max_s)
    assert [(a["http_status"], a["attempt"], a["next_at"]) for a in second] == [(503, 2, NOW + 2 + 10)]
    assert "busy" in second[0]["error"]
    clock.advance(9.9)
    assert queue.deliver_due() == []
    clock.advance(0.1)
    third = queue.deliver_due()
    assert [(a["http_status"], a["outcome"], a["attempt"], a["applied"]) for a in third] == \
        [(200, "delivered", 3, "delivered")]
    clock.advance(3600)
    assert queue.deliver_due() == [] and queue.pending() == []
    # what the receiver saw: three POSTs, one key, one completed 2xx
    assert receiver.keys() == [note.id] * 3 and receiver.completed_2xx(note.id) == 1
    for request in receiver.requests:
        assert request["path"] == "/hook" and request["body"] == note.body
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["User-Agent"] == "lulupay-analytics"
    # every attempt recorded, newest first, with the times of the injected clock
    recorded = queue.attempts(NOW - 60, NOW + 7200)
    assert [(a["ts"], a["attempt"], a["http_status"], a["outcome"]) for a in recorded] == [
        (NOW + 12, 3, 200, "delivered"), (NOW + 2, 2, 503, "retry"), (NOW, 1, 503, "retry")]
    assert all(a["receiver"] == "ops-hook" and a["notification_id"] == note.id and a["duration_ms"] >= 0
               and "applied" not in a for a in recorded)
    assert queue.attempts(NOW - 60, NOW + 7200, limit=1)[0]["attempt"] == 3
    assert queue.attempts(NOW - 60, NOW + 2) == recorded[2:]  # [since, until)
    assert queue.attempts(NOW - 60, NOW + 7200, partners={"acme-bank"}) == recorded
    assert queue.attempts(NOW - 60, NOW + 7200, partners={"zenith-pay"}) == []
    assert queue.stats() == {"queued": 0, "due": 0, "leased": 0, "done": 1, "delivered": 1, "rejected": 0,
                             "expired": 0, "retried": 2}


def test_enqueue_is_idempotent_also_after_delivery_and_across_restarts(store, receivers):
    receiver = receivers()
    clock = Clock(NOW)
    queue = DeliveryQueue(store, clock=clock)
    note = notification("alert-2:firing", receiver.url, created_at=NOW)
    assert queue.enqueue(note) is True
    assert queue.enqueue(note) is False
    assert [a["outcome"] for a in queue.deliver_due()] == ["delivered"]
    assert queue.enqueue(note) is False  # done, kept for max_age_s
    restarted = DeliveryQueue(store, clock=clock)  # an engine restarted that enqueues again
    clock.advance(3600)
    assert restarted.enqueue(note) is False and restarted.deliver_due() == []
    # older than max_age_s: not queued at all (its done marker may be gone by then)
    clock.advance(86400)
    assert restarted.enqueue(note) is False
    assert restarted.enqueue(notification("old", receiver.url, created_at=clock() - 86400)) is False
    assert receiver.keys() == [note.id]


def test_alertmanager_kind_posts_the_alert_list_to_api_v2_alerts(store, receivers):
    receiver = receivers()
    queue = DeliveryQueue(store, clock=Clock(NOW))
    alerts = [{"labels": {"alertname": "LuluPayTest"}, "annotations": {"summary": "x"}}]
    queue.enqueue(notification("am-1", receiver.url + "/", kind="alertmanager", created_at=NOW, body=alerts))
    assert [a["http_status"] for a in queue.deliver_due()] == [200]
    assert [(r["path"], r["body"]) for r in receiver.requests] == [("/api/v2/alerts", alerts)]


def test_a_4xx_is_rejected_at_once_and_a_receiver_that_keeps_failing_expires(store, receivers):
    clock = Clock(NOW)
    broken = receivers([(400, {}, "invalid_payload")])
    queue = DeliveryQueue(store, clock=clock, backoff_base_s=4.0, max_age_s=10.0, lease_s=11.0)
    queue.enqueue(notification("bad-1", broken.url + "/services/T0/B0/SECRET", created_at=NOW))
    [rejected] = queue.deliver_due()
    assert (rejected["http_status"], rejected["outcome"], rejected["applied"]) == (400, "rejected", "rejected")
    assert "invalid_payload" in rejected["error"]
    clock.advance(3600)
    assert queue.deliver_due() == [] and len(broken.requests) == 1
    # nobody listening: connection errors are retried until the next try would be past max_age_s
    clock.now = NOW
    dead_url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRET"
    queue.enqueue(notification("dead-1", dead_url, created_at=NOW))
    [first] = queue.deliver_due()
    assert (first["http_status"], first["outcome"], first["next_at"]) == (None, "retry", NOW + 4)
    assert "ConnectionError" in first["error"] and "SECRET" not in first["error"]
    clock.advance(4)
    [last] = queue.deliver_due()  # the next try would be at NOW + 4 + 8 >= NOW + 10
    assert (last["outcome"], last["applied"], last["attempt"]) == ("expired", "expired", 2)
    # a notification left in the queue beyond max_age_s is given up without a POST
    slow = receivers()
    queue.enqueue(notification("late-1", slow.url, created_at=clock() - 5))
    clock.advance(6)
    [late] = queue.deliver_due()
    assert (late["outcome"], late["http_status"], slow.requests) == ("expired", None, [])
    assert queue.stats()["rejected"] == 1 and queue.stats()["expired"] == 2 and queue.pending() == []
    with pytest.raises(ValueError, match="lease_s"):
        DeliveryQueue(store, clock=clock, http_timeout_s=20.0)
    with pytest.raises(ValueError, match="kind"):
        notification("x", slow.url, kind="email", created_at=NOW)
    with pytest.raises(ValueError, match="id"):
        notification("has space", slow.url, created_at=NOW)


def test_a_claim_never_finished_is_delivered_by_another_process_after_its_lease(store, receivers):
    receiver = receivers([503, 200])
    clock = Clock(NOW)
    crashed, other = (DeliveryQueue(store, clock=clock, lease_s=30.0) for _ in range(2))
    note = notification("lease-1", receiver.url, created_at=NOW)
    crashed.enqueue(note)
    claim = crashed._claim_one()  # claimed, then the process "dies" before the POST
    assert claim is not None and other.deliver_due() == []
    assert other.pending()[0]["leased"] is True and other.stats()["leased"] == 1
    clock.advance(30.0)
    second_claim = other._claim_one()  # the lease ran out: the other process takes it …
    assert second_claim[1] == 2
    late = crashed._deliver(*claim)  # … and the first one's late failure does not reschedule it
    assert (late["http_status"], late["applied"]) == (503, "stale")
    assert other.pending()[0]["due_at"] == clock() + 30.0
    done = other._deliver(*second_claim)
    assert (done["http_status"], done["attempt"], done["applied"]) == (200, 2, "delivered")
    assert receiver.keys() == [note.id, note.id] and receiver.completed_2xx(note.id) == 1
    clock.advance(3600)
    assert crashed.deliver_due() == [] and other.deliver_due() == []


CHILD = """
import sys, time
from services.alerting.delivery import DeliveryQueue
from services.store import Store, connect
from services.store.keys import Keys
queue = DeliveryQueue(Store(connect(sys.argv[1]), Keys("lp")), clock=time.time, http_timeout_s=10.0, lease_s=30.0)
queue.deliver_due()
"""


def test_a_process_killed_mid_post_loses_nothing_and_sends_one_2xx_per_key(store, receivers, valkey_url):
    release = threading.Event()
    receiver = receivers(hold_first=release)
    enqueuer = DeliveryQueue(store, clock=time.time)
    notes = [notification(f"kill-{i}", receiver.url + "/hook", created_at=time.time()) for i in range(3)]
    assert all(enqueuer.enqueue(n) for n in notes)
    child = subprocess.Popen([sys.executable, "-c", CHILD, valkey_url], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_until(lambda: receiver.requests, timeout=15, message="the child's first POST")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    release.set()
    wait_until(lambda: receiver.requests[0]["finished"], timeout=5, message="the held request to end")
    assert receiver.requests[0]["gone"] is True and receiver.requests[0]["answered"] is None
    assert store.client.zcard(store.keys.alert_delivery_queue()) == 3  # still queued, one under a lease
    fresh = DeliveryQueue(store, clock=lambda: time.time() + 31.0)  # past the dead process's lease
    delivered = fresh.deliver_due()
    assert sorted(a["notification_id"] for a in delivered) == [n.id for n in notes]
    assert all(a["outcome"] == "delivered" and a["applied"] == "delivered" for a in delivered)
    assert {a["notification_id"]: a["attempt"] for a in delivered}[receiver.requests[0]["headers"]["Idempotency-Key"]] == 2
    assert sorted(receiver.keys()) == sorted([n.id for n in notes] + [receiver.requests[0]["headers"]["Idempotency-Key"]])
    assert all(receiver.completed_2xx(n.id) == 1 for n in notes)
    assert fresh.stats()["queued"] == 0 and fresh.stats()["delivered"] == 3


def test_the_worker_delivers_in_the_background_until_stopped(store, receivers):
    receiver = receivers()
    queue = DeliveryQueue(store, clock=time.time)
    worker = DeliveryWorker(queue, interval_s=0.05).start()
    try:
        queue.enqueue(notification("worker-1", receiver.url, created_at=time.time()))
        wait_until(lambda: receiver.completed_2xx("worker-1") == 1, timeout=5, message="the worker's delivery")
    finally:
        assert worker.stop() is True


AM_CONFIG = """
route:
  receiver: local
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: local
    webhook_configs:
      - url: {url}
        send_resolved: false
"""


@contextlib.contextmanager
def real_alertmanager(tmp_path, hook_url: str):
    """A real Debian Alertmanager on a free port routing everything to `hook_url`; yields its base URL."""
    from tests.monitoring.conftest import require

    binary = require("prometheus-alertmanager")["prometheus-alertmanager"]
    (tmp_path / "am.yml").write_text(AM_CONFIG.format(url=hook_url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "am.log", "w+") as log:
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is None and requests.get(base + "/-/ready", timeout=1).ok, timeout=15,
                       message="alertmanager ready")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.mark.monitoring
def test_a_real_alertmanager_accepts_the_alert_and_routes_it_to_its_webhook(store, receivers, tmp_path):
    hook = receivers()
    with real_alertmanager(tmp_path, hook.url + "/am-hook") as base:
        starts_at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = [{"labels": {"alertname": "LuluPayTest", "severity": "warning"}, "annotations": {"summary": "x"},
                 "startsAt": starts_at, "generatorURL": "http://127.0.0.1/alerts"}]
        queue = DeliveryQueue(store, clock=time.time)
        queue.enqueue(notification("am-real-1", base, kind="alertmanager", created_at=time.time(), body=body))
        assert [(a["http_status"], a["outcome"]) for a in queue.deliver_due()] == [(200, "delivered")]
        listed = requests.get(base + "/api/v2/alerts", timeout=5).json()
        assert [a["labels"]["alertname"] for a in listed] == ["LuluPayTest"]
        routed = wait_until(lambda: [r for r in hook.requests if r["path"] == "/am-hook"], timeout=20,
                            message="alertmanager's webhook notification")
        assert routed[0]["body"]["alerts"][0]["labels"]["alertname"] == "LuluPayTest"
        assert routed[0]["body"]["status"] == "firing"
