"""Scale-out on real servers: a primary with a replica watched by a sentinel (the bundled
valkey-server binary in --sentinel mode) — the primary is killed under ingest and reads, the app
follows the sentinel to the promoted replica by itself and nothing acknowledged is lost."""
import random
import threading
import time

import pytest
import redis
import requests

from services.ingest.client import LuluPayClient
from tests.conftest import ServerProcess, free_port, server_env, wait_until
from tests.valkey_processes import ValkeyProcess
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]
MASTER = "lulupay"


# `appendfsync always`: with LULUPAY_INGEST_REPLICAS=1 a 202 waits until a replica has the batch in
# its AOF on disk (WAITAOF 1 1), and a replica on `everysec` gets there about once a second, so
# every batch took ~1 s (measured: 0.4–1 s with everysec, 16–44 ms with always; docs/reliability.md)
DATA = ["appendonly yes", "appendfsync always", "hz 50"]


@pytest.fixture
def replicated(tmp_path):
    """(primary, replica, sentinel) on free ports; the sentinel fails over one second after the
    primary stops answering."""
    primary_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    primary = ValkeyProcess(tmp_path / "primary", primary_port, DATA)
    replica = ValkeyProcess(tmp_path / "replica", replica_port, DATA + [f"replicaof 127.0.0.1 {primary_port}"])
    wait_until(lambda: redis.Redis(port=replica_port).info("replication")["master_link_status"] == "up",
               timeout=20, message="replica in sync")
    sentinel = ValkeyProcess(tmp_path / "sentinel", sentinel_port, [
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1",
        f"sentinel down-after-milliseconds {MASTER} 1000",
        f"sentinel failover-timeout {MASTER} 5000",
        f"sentinel parallel-syncs {MASTER} 1",
    ], sentinel=True)
    wait_until(lambda: redis.Redis(port=sentinel_port).execute_command("SENTINEL", "REPLICAS", MASTER),
               timeout=20, message="the sentinel found the replica")
    yield primary, replica, sentinel
    for server in (sentinel, replica, primary):
        server.stop()


def _master_port(sentinel) -> int:
    host, port = redis.Redis(port=sentinel.port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
    return int(port)


def test_the_primary_killed_under_ingest_and_reads_the_app_follows_the_sentinel_and_loses_nothing(replicated, tmp_path):
    primary, replica, sentinel = replicated
    server = ServerProcess(server_env(REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", REDIS_SENTINEL_MASTER=MASTER,
                                      LULUPAY_INGEST_REPLICAS="1", LULUPAY_ALERT_RULES="off",
                                      LULUPAY_DATA_DIR=str(tmp_path / "srv")), free_port())
    try:
        now = time.time()
        events = random_events(random.Random(21), 1200, now - 6 * 3600, now - 60, PARTNERS)  # ≈ 10,000 events
        batches = [events[i:i + 250] for i in range(0, len(events), 250)]
        start, end = now - 7 * 3600, now + 60
        # retries every ≤ 0.5 s (a production client backs off up to 30 s, which only stretches the test)
        client = LuluPayClient(server.url, batch_size=250, max_retries=400, backoff_s=0.05, max_backoff_s=0.5)
        sent = {"accepted": 0, "duplicates": 0, "batches": 0}
        reads = {"ok": 0, "failed": 0}
        done = threading.Event()

        def produce():  # batch after batch, each retried until it is acknowledged
            try:
                for batch in batches:
                    result = client.send(batch)
                    sent["accepted"] += result.accepted
                    sent["duplicates"] += result.duplicates
                    sent["batches"] += 1
            finally:
                done.set()

        def read():
            while not done.is_set():
                answer = requests.get(server.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30)
                reads["ok" if answer.ok else "failed"] += 1
                done.wait(0.05)  # a reader's pace, not a busy loop

        threads = [threading.Thread(target=produce, daemon=True), threading.Thread(target=read, daemon=True)]
        for thread in threads:
            thread.start()
        wait_until(lambda: sent["batches"] >= 5 and reads["ok"] >= 3, timeout=60, message="ingest and reads under way")
        primary.kill()
        wait_until(lambda: _master_port(sentinel) == replica.port, timeout=30, message="the sentinel promoted the replica")
        assert not done.is_set(), "the producer was still sending when the primary died"
        # the old primary comes back as a replica of the new one, as its operator (or, 10–30 s
        # later, the sentinel) would make it: until then the promoted primary has no replica, and
        # LULUPAY_INGEST_REPLICAS=1 refuses to acknowledge (the producer keeps retrying)
        primary.start()
        primary.client.execute_command("REPLICAOF", "127.0.0.1", replica.port)
        wait_until(lambda: primary.client.info("replication")["master_link_status"] == "up",
                   timeout=60, message="the old primary is a replica now")
        assert done.wait(120), f"the producer finished ({sent['batches']} of {len(batches)} batches)"
        for thread in threads:
            thread.join(timeout=30)
        assert sent["batches"] == len(batches)
        assert sent["accepted"] + sent["duplicates"] == len(events)
        assert reads["ok"] > 3
        summary = requests.get(server.url + "/api/v1/summary", params={"from": start, "to": end}, timeout=30).json()
        assert_summary_matches(summary, reference_summary(events, start, end, None))  # once each, none lost
        assert requests.get(server.url + "/readyz", timeout=10).ok
    finally:
        server.stop()
