"""Two app instances on one store, each a real `serve` (gunicorn master + 2 workers): the live
channel, the read caches, the collector's and alert engine's leadership and alert delivery work
across them. The instances share a key prefix of their own on the session Valkey, so the
session's server process (`live_server`) neither leads them nor evaluates their alerts."""
from __future__ import annotations

import json
import random
import signal
import time

import psutil
import pytest
import redis
import requests
import yaml

from tests.conftest import ServerProcess, free_port, server_env, wait_until
from tests.integration.test_alert_delivery import Receiver
from tests.integration.test_realtime import WsClient, build_events
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PREFIX = "twin"
PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]


def _rules(receiver_url: str) -> dict:
    return {
        "rules": [{"name": "PartnerFailures", "metric": "failed_builds", "window": "10m", "op": ">=", "threshold": 3,
                   "for": "0s", "severity": "warning", "per_partner": True}],
        "receivers": [{"name": "ops", "webhook_url": receiver_url + "/hook"}],
        "route": {"receiver": "ops", "group_by": ["alertname", "partner_id"], "group_wait": "0s",
                  "group_interval": "1m", "repeat_interval": "4h"},
    }


def _failed_builds(partner: str, count: int, tag: str) -> list[dict]:
    now = time.time()
    events = []
    for i in range(count):
        bid = f"{tag}-{i}"
        events.append({"id": f"{bid}-s", "type": "build.started", "ts": now - 200, "partner_id": partner,
                       "build_id": bid, "build_type": "release", "app_version": "1.0.0"})
        events.append({"id": f"{bid}-f", "type": "build.finished", "ts": now - 30, "partner_id": partner,
                       "build_id": bid, "build_type": "release", "status": "failed", "duration_s": 170.0,
                       "failed_stage": "compilation", "error_category": "gradle", "error_message": "boom"})
    return events


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.stop()


@pytest.fixture
def twins(valkey_url, receiver, tmp_path):
    """Two instances on one store (prefix `twin`), the alert engine every second with a webhook
    receiver; the prefix's keys are deleted afterwards."""
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(_rules(receiver.url)))
    client = redis.Redis.from_url(valkey_url)

    def wipe():
        for key in client.scan_iter(match="{%s}*" % PREFIX, count=1000):
            client.delete(key)

    wipe()
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(ServerProcess(server_env(
                REDIS_URL=valkey_url, LULUPAY_KEY_PREFIX=PREFIX, LULUPAY_DATA_DIR=str(tmp_path / name),
                LULUPAY_ALERT_RULES=str(rules), LULUPAY_ALERT_INTERVAL_S="1", LULUPAY_COLLECTOR_INTERVAL_S="0.5",
                LULUPAY_ALERT_EXTERNAL_URL="http://lulupay.test"), free_port()))
        yield servers, client
    finally:
        for server in servers:
            server.stop()
        wipe()
        client.close()


def _tree_pids(server: ServerProcess) -> set[int]:
    """The pids of an instance: its `serve` process, gunicorn's master and workers."""
    try:
        parent = psutil.Process(server.proc.pid)
        return {parent.pid} | {child.pid for child in parent.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _leader(servers, client) -> int | None:
    """Which instance holds the collector lock (its value names the holder's pid), or None."""
    owner = client.get("{%s}:collector:lock" % PREFIX)
    if owner is None:
        return None
    pid = int(owner.decode().split(":")[1])
    return next((i for i, server in enumerate(servers) if pid in _tree_pids(server)), None)


def _crash(server: ServerProcess) -> None:
    """SIGKILL every process of an instance at once (no graceful stop, no lock released)."""
    processes = [psutil.Process(pid) for pid in _tree_pids(server)]
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


def _evaluated_at(client) -> float:
    """When the engine last evaluated the rule (its record in the store), 0 before the first round."""
    docs = client.hvals("{%s}:alert:evals" % PREFIX)
    return max((float(json.loads(doc)["evaluated_at"]) for doc in docs), default=0.0)


def _hooks(receiver, partner: str, status: str) -> list[dict]:
    return [r["body"] for r in receiver.requests
            if r["body"]["status"] == status and r["body"]["groupLabels"].get("partner_id") == partner]


def test_the_live_channel_and_the_caches_of_one_instance_see_what_the_other_ingested(twins):
    (a, b), _ = twins
    now = time.time()
    events = random_events(random.Random(7), 40, now - 3 * 3600, now - 120, PARTNERS)
    start, end = now - 4 * 3600, now + 60
    # b reads (and caches) first; a ingests; b's next read has the new builds, exactly
    first = requests.get(b.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30)
    assert first.status_code == 200 and first.json()["builds_total"] == 0
    half = len(events) // 2
    assert requests.post(a.url + "/api/v1/events", json={"events": events[:half]}, timeout=30).status_code == 202
    summary = requests.get(b.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30).json()
    assert_summary_matches(summary, reference_summary(events[:half], start, end, None))
    assert requests.post(b.url + "/api/v1/events", json={"events": events[half:]}, timeout=30).status_code == 202
    for server in (a, b):  # each instance's caches: the other's writes show at once
        summary = requests.get(server.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30).json()
        assert_summary_matches(summary, reference_summary(events, start, end, None))
    # the live channel: a build ingested through a reaches a subscriber connected to b, in order
    listener = WsClient(b.url, {"subscribe": ["builds"]})
    build = build_events("twin-live", "acme-bank", time.time() - 60)
    assert requests.post(a.url + "/api/v1/events", json={"events": build}, timeout=30).status_code == 202
    listener.ws.settimeout(20)
    received = []
    while len(received) < len(build):
        message = listener.next()
        if message["data"].get("build_id") == "twin-live":
            received.append(message["data"]["id"])
    assert received == [e["id"] for e in build]
    listener.close()


def test_one_leader_evaluates_and_delivers_once_and_the_other_instance_takes_over(twins, receiver):
    servers, client = twins
    leader = wait_until(lambda: _leader(servers, client) is not None, timeout=30, message="a collector leader") \
        and _leader(servers, client)
    other = 1 - leader
    # the alerts stream reaches a subscriber of the instance that does not lead
    listener = WsClient(servers[other].url, {"subscribe": ["alerts"]})
    assert requests.post(servers[other].url + "/api/v1/events", json={"events": _failed_builds("acme-bank", 4, "acme")},
                         timeout=30).status_code == 202
    message = listener.collect(1, timeout=30)[0]
    assert message["stream"] == "alerts" and message["data"]["partner_id"] == "acme-bank"
    assert message["data"]["state"] == "firing"
    wait_until(lambda: _hooks(receiver, "acme-bank", "firing"), timeout=30, message="the firing notification")
    # three more rounds (each instance delivers what is due in between): still one notification
    told = time.time()
    wait_until(lambda: _evaluated_at(client) > told + 3, timeout=30, message="three more rounds")
    assert len(_hooks(receiver, "acme-bank", "firing")) == 1, receiver.requests
    api = requests.get(servers[other].url + "/api/v1/alerts", timeout=30).json()
    (alert,) = [row for row in api["alerts"] if row.get("partner_id") == "acme-bank"]
    assert alert["state"] == "firing"

    # the leader crashes: the other instance takes the lock, evaluates and delivers
    _crash(servers[leader])
    wait_until(lambda: _leader(servers, client) == other, timeout=30, message="takeover")
    assert requests.post(servers[other].url + "/api/v1/events", json={"events": _failed_builds("zenith-pay", 3, "zen")},
                         timeout=30).status_code == 202
    wait_until(lambda: _hooks(receiver, "zenith-pay", "firing"), timeout=30,
               message="the new leader's notification")
    assert len(_hooks(receiver, "acme-bank", "firing")) == 1  # the old alert is not told again
    assert not _hooks(receiver, "acme-bank", "resolved")
    listener.close()
