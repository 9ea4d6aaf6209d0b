"""Store faults through a real server process: a hung store (SIGSTOP), a killed one under ingest,
and what a 202 promises (WAITAOF on a real append-only file)."""
import os
import random
import signal
import threading
import time

import pytest
import requests

from services.ingest.client import LuluPayClient
from services.store.embedded import EmbeddedValkey
from tests.conftest import ServerProcess, free_port, server_env, wait_until
from tests.integration.test_realtime import WsClient
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]


def _pid(store: EmbeddedValkey) -> int:
    return store._server._process.pid


def _post(server, events):
    return requests.post(server.url + "/api/v1/events", json={"events": events}, timeout=30)


@pytest.fixture
def own_store(tmp_path):
    """A store of this test's own (append-only file on), on a fixed port it can be restarted on."""
    holder = {"store": EmbeddedValkey(tmp_path / "valkey", port=free_port()).start()}
    yield holder
    store = holder["store"]
    try:
        os.kill(_pid(store), signal.SIGCONT)
    except (ProcessLookupError, AttributeError, TypeError):
        pass
    store.stop()


@pytest.fixture
def server(own_store, tmp_path):
    proc = ServerProcess(server_env(REDIS_URL=own_store["store"].url, LULUPAY_DATA_DIR=str(tmp_path / "srv"),
                                    LULUPAY_ALERT_RULES="off"), free_port())
    yield proc
    proc.stop()


def _first_view(server, page):
    """The page's first view: the layout the browser asks for, drawn for the page it is on."""
    return requests.get(server.url + "/_dash-layout", headers={"Referer": server.url + page}, timeout=60)


def _ok_json(response):
    return response.json() if response.ok else None


def _timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def test_a_hung_store_costs_seconds_and_everything_recovers_after_it(own_store, server):
    now = time.time()
    events = random_events(random.Random(3), 30, now - 3600, now - 60, PARTNERS)
    assert _post(server, events).status_code == 202
    assert requests.get(server.url + "/operations", timeout=30).ok

    os.kill(_pid(own_store["store"]), signal.SIGSTOP)  # hung, not dead: connections are accepted, never answered
    try:
        ready, took = _timed(lambda: requests.get(server.url + "/readyz", timeout=30))
        assert ready.status_code == 503 and took < 5, (ready.status_code, took)
        summary, took = _timed(lambda: requests.get(server.url + "/api/v1/summary", timeout=30))
        assert summary.status_code == 503 and took < 5, (summary.status_code, took)
        assert "Retry-After" in summary.headers
        more = random_events(random.Random(4), 5, now - 600, now - 60, PARTNERS)
        ingest, took = _timed(lambda: _post(server, more))
        assert ingest.status_code == 503 and took < 5, (ingest.status_code, took)
        for page in ("/operations?range=24h", "/executive", "/partners", "/capacity", "/alerts"):
            layout, took = _timed(lambda: _first_view(server, page))
            assert layout.ok and took < 6, (page, layout.status_code, took)
            assert '"outage-alert"' in layout.text, f"{page}: the first view says the store is out"
    finally:
        os.kill(_pid(own_store["store"]), signal.SIGCONT)

    wait_until(lambda: requests.get(server.url + "/readyz", timeout=5).ok, timeout=20, message="ready again")
    # each worker process finds the store back on its next call after its breaker's cool-down (1 s):
    # until then a request may still get 503 (a producer retries it)
    wait_until(lambda: _post(server, more).status_code == 202, timeout=15, message="ingest again")
    wait_until(lambda: all('"outage-alert"' not in _first_view(server, "/operations?range=24h").text
                           for _ in range(4)), timeout=15, message="first views without the banner")
    start, end = now - 7200, now + 60
    summary = wait_until(lambda: _ok_json(requests.get(server.url + "/api/v1/summary",
                                                       params={"from": start, "to": end}, timeout=30)),
                         timeout=15, message="summary again")
    assert_summary_matches(summary, reference_summary(events + more, start, end, None))


def test_a_store_killed_under_ingest_loses_nothing_acknowledged_with_the_clients_retries(own_store, server, tmp_path):
    now = time.time()
    events = random_events(random.Random(5), 3000, now - 6 * 3600, now - 60, PARTNERS)
    client = LuluPayClient(server.url, batch_size=50, max_retries=60, backoff_s=0.05)
    sent = {}

    def produce():
        sent["result"] = client.send(events)

    producer = threading.Thread(target=produce)
    producer.start()
    store = own_store["store"]
    wait_until(lambda: store._server.is_running() and int(
        requests.get(server.url + "/api/v1/summary", params={"from": now - 7 * 3600, "to": now + 60},
                     timeout=10).json().get("builds_total", 0) or 0) > 0, timeout=60, message="some batches stored")
    port = int(store.url.rsplit(":", 1)[1].split("/")[0])
    os.kill(_pid(store), signal.SIGKILL)  # mid-ingest: batches in flight get 503 and are retried
    store._server._process.wait()
    store._unlock()
    restarted = EmbeddedValkey(tmp_path / "valkey", port=port).start()  # replays its append-only file
    own_store["store"] = restarted
    producer.join(timeout=180)
    assert not producer.is_alive() and "result" in sent, "the producer finished"
    result = sent["result"]
    assert result.accepted + result.duplicates == len(events)
    start, end = now - 7 * 3600, now + 60
    summary = requests.get(server.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30).json()
    assert_summary_matches(summary, reference_summary(events, start, end, None))  # each event counted once


def test_a_202_means_the_batch_is_in_the_append_only_file(own_store, server, tmp_path):
    now = time.time()
    marker = f"on-disk-{random.Random().getrandbits(48):x}"
    event = {**random_events(random.Random(6), 1, now - 600, now - 60, PARTNERS)[-1], "id": marker}
    assert _post(server, [event]).status_code == 202
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "valkey").rglob("*.aof*") if p.is_file())
    assert marker.encode() in on_disk, "acknowledged, so already written to the append-only file"


def test_a_store_without_an_append_only_file_gets_503_naming_the_setting_unless_memory_is_chosen(tmp_path):
    store = EmbeddedValkey(tmp_path / "valkey", port=free_port(), persist=False).start()
    try:
        now = time.time()
        events = random_events(random.Random(7), 3, now - 600, now - 60, PARTNERS)
        env = dict(REDIS_URL=store.url, LULUPAY_ALERT_RULES="off", LULUPAY_DATA_DIR=str(tmp_path / "a"))
        strict = ServerProcess(server_env(**env), free_port())
        try:
            refused = _post(strict, events)
            assert refused.status_code == 503
            assert "LULUPAY_INGEST_DURABILITY" in refused.text
        finally:
            strict.stop()
        env.update(LULUPAY_INGEST_DURABILITY="memory", LULUPAY_DATA_DIR=str(tmp_path / "b"))
        relaxed = ServerProcess(server_env(**env), free_port())
        listener = WsClient(relaxed.url, {"subscribe": ["builds"]})
        try:
            accepted = _post(relaxed, events)
            assert accepted.status_code == 202, accepted.text
            assert accepted.json() == {"accepted": 0, "duplicates": len(events)}, \
                "the refused batch was written (only its durability unconfirmed): the retry is a replay"
            # nobody announced the refused batch: its replay does, once (the live channel has it)
            builds = [e["id"] for e in events if e["type"].startswith("build.")]  # the `builds` stream's
            assert [m["data"]["id"] for m in listener.collect(len(builds))] == builds
            assert _post(relaxed, events).json() == {"accepted": 0, "duplicates": len(events)}
            marker = {**next(e for e in random_events(random.Random(8), 1, now - 600, now - 60, PARTNERS)
                             if e["type"] == "build.started"), "id": "after"}
            assert _post(relaxed, [marker]).status_code == 202
            assert listener.next()["data"]["id"] == "after", "the second replay announced nothing"
        finally:
            listener.close()
            relaxed.stop()
    finally:
        store.stop()
