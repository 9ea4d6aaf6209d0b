"""Cluster mode on real servers: three Valkey primaries (the bundled valkey-server binary with
`cluster-enabled yes`, the 16384 slots split in three, no replicas) and a real app server process
on `REDIS_URL=redis+cluster://…` — ingest, reads, pages, the collector, the alert engine, the live
channel; then a primary not serving the deployment's slot killed under it, and at last the whole
cluster killed and started again (docs/cluster.md)."""
import itertools
import random
import socket
import time

import pytest
import requests

from services.ingest.client import LuluPayClient
from tests.conftest import ServerProcess, free_port, server_env, wait_until
from tests.integration.test_first_view import PAGES_CONTENT, by_id, components, first_view
from tests.integration.test_realtime import WsClient, build_events
from tests.valkey_processes import ValkeyProcess
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]
SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))
TAG = "{lp}"


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


# a cluster node: it rejoins the cluster from its nodes.conf when started again, its data from its AOF
NODE = ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000",
        "appendonly yes", "appendfsync everysec", "hz 50"]


@pytest.fixture
def cluster(tmp_path):
    """Three primaries, no replicas, all 16384 slots covered (cluster_state:ok on each)."""
    nodes = []
    try:
        for i, (first, last) in enumerate(SLOTS):
            node = ValkeyProcess(tmp_path / f"node{i}", _cluster_port(), NODE)
            node.client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            nodes.append(node)
        for node in nodes[1:]:
            node.client.execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port)
        wait_until(lambda: all(b"cluster_state:ok" in n.client.execute_command("CLUSTER", "INFO") for n in nodes),
                   timeout=30, message="cluster_state:ok on all three")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _summary(server, start, end) -> requests.Response:
    return requests.get(server.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30)


def _drawn(server, page: str) -> None:
    """The page's first view arrives drawn (not the empty shell of a failed draw), no panel in its
    error state."""
    content = by_id(first_view(server, page), PAGES_CONTENT).get("children")
    assert content, f"{page}: not drawn"
    errors = [c["props"].get("id") for c in components(content) if "panel-error" in (c["props"].get("className") or "")]
    assert not errors, f"{page}: panels in their error state: {errors}"


def _live_build(server, build_id: str, timeout: float = 20) -> list[dict]:
    """Ingest one build now; a /ws subscriber receives its events in order (within `timeout` s).
    Returns the events."""
    live = WsClient(server.url, {"subscribe": ["builds"], "partners": ["acme-bank"]})
    try:
        build = build_events(build_id, "acme-bank", time.time() - 30)
        assert requests.post(server.url + "/api/v1/events", json={"events": build}, timeout=10).status_code == 202
        assert [m["data"]["id"] for m in live.collect(len(build), timeout=timeout)] == [e["id"] for e in build]
        return build
    finally:
        live.close()


def test_the_app_on_a_three_primary_cluster(cluster, tmp_path):
    nodes = cluster
    slot = nodes[0].client.execute_command("CLUSTER", "KEYSLOT", TAG)
    owner = next(n for n, (first, last) in zip(nodes, SLOTS) if first <= slot <= last)
    others = [n for n in nodes if n is not owner]
    server = ServerProcess(server_env(
        REDIS_URL=f"redis+cluster://127.0.0.1:{nodes[0].port},127.0.0.1:{nodes[1].port}",
        LULUPAY_DATA_DIR=str(tmp_path / "srv"), LULUPAY_INGEST_DURABILITY="aof",
        LULUPAY_COLLECTOR_INTERVAL_S="1", LULUPAY_ALERT_INTERVAL_S="1"), free_port())
    try:
        assert requests.get(server.url + "/readyz", timeout=10).status_code == 200

        now = time.time()
        events = random_events(random.Random(41), 1000, now - 6 * 3600, now - 120, PARTNERS)
        start, end = now - 7 * 3600, now + 60
        with LuluPayClient(server.url, batch_size=500) as client:
            sent = client.send(events)
            assert (sent.accepted, sent.duplicates) == (len(events), 0)
            replay = client.send(events[:500])  # the same batch again: recognised, counted once
            assert (replay.accepted, replay.duplicates) == (0, 500)
        summary = _summary(server, start, end)
        assert summary.status_code == 200, summary.text[:500]
        assert_summary_matches(summary.json(), reference_summary(events, start, end, None))

        # every key lives in the one slot of the hash tag, so on the one primary serving it
        assert owner.client.dbsize() > 0
        assert [n.client.dbsize() for n in others] == [0, 0]
        assert owner.client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == owner.client.dbsize()

        build = _live_build(server, "cluster-build")  # the live channel: pub/sub on the cluster

        # the collector became leader (its lock is in the tag's slot), the alert engine evaluated
        # its rules, and /metrics answers
        wait_until(lambda: owner.client.exists(f"{TAG}:collector:lock"), timeout=30, message="collector leader")
        wait_until(lambda: owner.client.exists(f"{TAG}:alert:evals"), timeout=30, message="alert rules evaluated")
        metrics = requests.get(server.url + "/metrics", timeout=10)
        assert metrics.status_code == 200 and "lulupay_" in metrics.text
        for page in ("/operations?range=24h", "/partners?range=24h", "/capacity?range=24h", "/alerts"):
            _drawn(server, page)

        # a primary not serving the tag's slot dies (no replica to take over): by default
        # (cluster-require-full-coverage yes) every node then refuses keys, CLUSTERDOWN — the app's
        # slot too — and the app says so: 503, retry later; nothing half-written
        others[0].kill()
        wait_until(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 503,
                   timeout=30, message="readyz 503 once the cluster is down")
        assert b"cluster_state:fail" in owner.client.execute_command("CLUSTER", "INFO")
        more = random_events(random.Random(42), 100, now - 3600, now - 120, PARTNERS)
        refused = requests.post(server.url + "/api/v1/events", json={"events": more}, timeout=30)
        assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text[:300]
        assert _summary(server, start, end).status_code == 503
        # the survivors told to serve what they cover: the app's slot is served again, and the app
        # answers by itself (the dead node's breaker does not hold back the calls to the others)
        for node in (owner, others[1]):
            node.client.config_set("cluster-require-full-coverage", "no")
        wait_until(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 200,
                   timeout=30, message="readyz 200 with the app's slot served")
        with LuluPayClient(server.url, batch_size=500) as client:
            assert client.send(more).accepted == len(more)
        summary = _summary(server, start, end)
        assert summary.status_code == 200, summary.text[:500]
        assert_summary_matches(summary.json(), reference_summary(events + build + more, start, end, None))
        _drawn(server, "/operations?range=24h")

        # the whole cluster killed: 503 at once (not 500s), and back by itself once the nodes are
        # up again — with every acknowledged event (WAITAOF on the node that wrote)
        owner.kill()
        others[1].kill()
        wait_until(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 503,
                   timeout=10, message="readyz 503 with no node up")
        assert _summary(server, start, end).status_code == 503
        for node in nodes:
            node.start()
        wait_until(lambda: requests.get(server.url + "/readyz", timeout=10).status_code == 200,
                   timeout=30, message="readyz 200 with the nodes back")
        summary = _summary(server, start, end)
        assert summary.status_code == 200, summary.text[:500]
        assert_summary_matches(summary.json(), reference_summary(events + build + more, start, end, None))
        # live updates again, once each worker's subscriber has reconnected by itself (its own
        # backoff): a new build each try until one reaches a subscriber
        tries = itertools.count()
        wait_until(lambda: _live_build(server, f"after-the-restart-{next(tries)}", timeout=3), timeout=60,
                   interval=0.5, message="live updates after the restart")
        # the outage's 5xx are counted, and the alert engine records an alert state (WATCH + MULTI)
        wait_until(lambda: owner.client.hlen(f"{TAG}:alert:state"), timeout=30, message="an alert state stored")
    finally:
        server.stop()
    errors = [line for line in server.output().splitlines() if "ERROR" in line]
    assert not errors, "the server logged errors (background parts included):\n" + "\n".join(errors)
