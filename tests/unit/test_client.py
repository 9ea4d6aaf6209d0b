"""LuluPayClient against a real tiny HTTP server: batching, auth, ids, retries, errors."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from services.ingest.client import ClientError, LuluPayClient, SendResult


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.server.script:
            status, headers, answer = self.server.script.pop(0)
        else:
            status, headers, answer = 202, {}, {"accepted": len(body["events"]), "duplicates": 0}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A server on 127.0.0.1; set `.script` to [(status, headers, body), ...] for the next answers."""
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.script = [], []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def sleeps():
    return []


def make_client(url, sleeps, **kw):
    return LuluPayClient(url, sleep=sleeps.append, **kw)


def events(n, with_ids=True):
    return [{**({"id": f"e{i}"} if with_ids else {}), "type": "build.started", "ts": 1.7e9 + i,
             "partner_id": "acme-bank", "build_id": f"b{i}", "build_type": "debug", "app_version": "3.14.2"}
            for i in range(n)]


def test_sends_batches_of_batch_size(server, sleeps):
    with make_client(server.url + "/", sleeps, batch_size=1000) as client:
        result = client.send(iter(events(2500)))
    assert result == SendResult(accepted=2500, duplicates=0, batches=3)
    assert [len(r["body"]["events"]) for r in server.requests] == [1000, 1000, 500]
    assert {r["path"] for r in server.requests} == {"/api/v1/events"}
    assert [e["id"] for r in server.requests for e in r["body"]["events"]] == [f"e{i}" for i in range(2500)]
    assert not sleeps


def test_empty_input_sends_nothing(server, sleeps):
    assert make_client(server.url, sleeps).send([]) == SendResult(0, 0, 0)
    assert not server.requests


def test_token_goes_in_a_bearer_header(server, sleeps):
    make_client(server.url, sleeps, token="s3cret").send(events(1))
    make_client(server.url, sleeps).send(events(1))
    assert server.requests[0]["headers"]["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in server.requests[1]["headers"]


def test_duplicates_are_reported(server, sleeps):
    server.script = [(202, {}, {"accepted": 1, "duplicates": 2})]
    assert make_client(server.url, sleeps).send(events(3)) == SendResult(accepted=1, duplicates=2, batches=1)


def test_503_is_retried_after_the_servers_retry_after(server, sleeps):
    server.script = [(503, {"Retry-After": "2"}, {"error": "store unavailable"})]
    result = make_client(server.url, sleeps).send(events(5))
    assert result == SendResult(accepted=5, duplicates=0, batches=1)
    assert sleeps == [2.0]
    assert len(server.requests) == 2 and server.requests[0]["body"] == server.requests[1]["body"]


def test_429_502_504_back_off_exponentially_with_jitter(server, sleeps):
    server.script = [(429, {}, {"error": "slow down"}), (502, {}, {}), (504, {}, {})]
    result = make_client(server.url, sleeps, backoff_s=0.5).send(events(1))
    assert result.accepted == 1 and len(server.requests) == 4
    for attempt, wait_s in enumerate(sleeps):
        assert 0.25 * 2 ** attempt <= wait_s <= 0.5 * 2 ** attempt
    assert len(sleeps) == 3


def test_the_backoff_stops_growing_at_max_backoff_s(server, sleeps):
    server.script = [(502, {}, {})] * 6
    result = make_client(server.url, sleeps, backoff_s=0.5, max_backoff_s=1.0, max_retries=6).send(events(1))
    assert result.accepted == 1 and len(sleeps) == 6
    assert all(0.25 <= wait_s <= 1.0 for wait_s in sleeps) and max(sleeps[2:]) > 0.5


def test_a_cap_below_the_base_backoff_is_refused():
    with pytest.raises(ValueError, match="max_backoff_s"):
        LuluPayClient("http://127.0.0.1:9", backoff_s=2.0, max_backoff_s=1.0)


def test_missing_ids_are_assigned_once_and_kept_across_retries(server, sleeps):
    server.script = [(503, {"Retry-After": "0"}, {"error": "store unavailable"})]
    batch = events(3, with_ids=False)
    batch[1]["id"] = "given"
    make_client(server.url, sleeps).send(batch)
    first, second = ([e["id"] for e in r["body"]["events"]] for r in server.requests)
    assert first == second and first[1] == "given"
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in (first[0], first[2])) and first[0] != first[2]
    assert [e["id"] for e in batch] == first  # a re-send of the same dicts is idempotent


def test_422_raises_at_once_with_the_servers_message(server, sleeps):
    details = [{"index": 0, "field": "partner_id", "message": "string does not match pattern"}]
    server.script = [(422, {}, {"error": "1 invalid event(s)", "details": details})]
    with pytest.raises(ClientError) as err:
        make_client(server.url, sleeps).send(events(2))
    assert err.value.status == 422 and err.value.body["details"] == details
    assert "1 invalid event(s)" in str(err.value)
    assert len(server.requests) == 1 and not sleeps


@pytest.mark.parametrize("status", [400, 401, 413])
def test_other_client_errors_are_not_retried(server, sleeps, status):
    server.script = [(status, {}, {"error": "nope"})]
    with pytest.raises(ClientError) as err:
        make_client(server.url, sleeps).send(events(1))
    assert err.value.status == status and len(server.requests) == 1 and not sleeps


def test_retries_run_out(server, sleeps):
    server.script = [(503, {"Retry-After": "1"}, {"error": "store unavailable"})] * 3
    with pytest.raises(ClientError) as err:
        make_client(server.url, sleeps, max_retries=2).send(events(1))
    assert err.value.status == 503 and len(server.requests) == 3 and sleeps == [1.0, 1.0]


def test_connection_errors_are_retried_then_reported(sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(ClientError) as err:
        make_client(f"http://127.0.0.1:{port}", sleeps, max_retries=3, timeout_s=2).send(events(1))
    assert err.value.status == 0 and len(sleeps) == 3


class _FlakySession:
    """Times out on the first post, then answers 202."""

    def __init__(self):
        self.calls = 0
        self.closed = False

    def post(self, url, **kw):
        self.calls += 1
        if self.calls == 1:
            raise requests.Timeout("read timed out")
        resp = requests.Response()
        resp.status_code = 202
        resp._content = json.dumps({"accepted": len(kw["json"]["events"]), "duplicates": 0}).encode()
        return resp

    def close(self):
        self.closed = True


def test_timeouts_are_retried_and_an_injected_session_is_left_open(sleeps):
    session = _FlakySession()
    client = make_client("http://lulupay.invalid", sleeps, session=session, timeout_s=1.5)
    assert client.send(events(2)).accepted == 2
    client.close()
    assert session.calls == 2 and len(sleeps) == 1 and not session.closed


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        LuluPayClient("http://x", batch_size=5001)
    with pytest.raises(ValueError):
        LuluPayClient("http://x", timeout_s=0)
