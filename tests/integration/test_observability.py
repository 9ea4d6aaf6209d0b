"""Metrics, HTTP statistics and the collector against a real Valkey and real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services import metrics
from services.collector import Collector
from services.store.keys import RESOLUTIONS
from services.queries.system import HttpStats, http_series, system_series, system_summary, write_system_sample
from tests.conftest import ROOT, free_port, server_env, wait_until

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a /metrics page."""
    text = requests.get(url, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- partner labels --------------------------------------------------------------------------
def test_partner_labels_cap_is_shared_and_stable(services, redis_client):
    key = services.store.keys.metrics_partner_labels()
    first = metrics.PartnerLabels(services.store.client, key, cap=2)
    second = metrics.PartnerLabels(services.store.client, key, cap=2)  # another worker
    assert [first("p1"), second("p2"), second("p3"), first("p3")] == ["p1", "p2", "other", "other"]
    assert second("p1") == "p1"  # labelled by the other process: agreed through the store
    assert first.labelled() == {"p1", "p2"}


def test_record_events_counts_accepted_events_only(services):
    label = services.partner_labels
    before = metrics.BUILDS.labels("acme", "success", "release")._value.get()
    now = services.clock()
    event = {"type": "build.finished", "id": "f-1", "ts": now - 10, "partner_id": "acme", "build_id": "b1",
             "build_type": "release", "status": "success", "duration_s": 300.0}
    services.ingest.ingest_batch([event])
    services.ingest.ingest_batch([event])  # a replay: not counted again
    assert label("acme") == "acme"
    assert metrics.BUILDS.labels("acme", "success", "release")._value.get() == before + 1


# -- HTTP statistics ---------------------------------------------------------------------------
def test_http_stats_flush_to_every_resolution_and_read_back(services):
    clock = [1_800_000_030.0]
    stats = HttpStats(services.store, clock=lambda: clock[0])
    for status, seconds in ((200, 0.010), (200, 0.020), (404, 0.002), (500, 0.300)):
        stats.record(status, seconds)
    assert stats.flush()
    for res in RESOLUTIONS:
        fields = services.store.client.hgetall(services.store.keys.http(res.name, res.bucket(clock[0])))
        assert fields[b"n:2xx"] == b"2" and fields[b"n:4xx"] == b"1" and fields[b"n:5xx"] == b"1"
    series = http_series(services.store, 1_800_000_000, 1_800_000_060, now=1_800_000_060, step_s=60)
    (row,) = series["rows"]
    assert (row["requests"], row["errors_4xx"], row["errors_5xx"]) == (4, 1, 1)
    assert row["error_ratio"] == 0.5
    durations = [0.010, 0.020, 0.002, 0.300]
    assert row["p99_s"] == pytest.approx(float(np.percentile(durations, 99)), rel=0.011)
    assert row["p50_s"] == pytest.approx(float(np.percentile(durations, 50)), rel=0.011)
    assert stats.flush()  # nothing buffered: nothing written twice
    assert services.store.client.hget(services.store.keys.http("m", 1_800_000_000), "n:2xx") == b"2"


def test_series_windows_merge_their_buckets_in_the_store(own_services):
    """A 5-minute window sums its five minute hashes (counts, latency histogram) and averages the
    host samples of its minutes; an empty window stays empty."""
    services = own_services
    base = 1_800_000_000  # a multiple of 300: windows start on it
    stats_clock = [0.0]
    stats = HttpStats(services.store, clock=lambda: stats_clock[0])
    for minute, (ok, failed) in enumerate(((3, 0), (1, 1), (0, 0), (2, 0), (4, 2), (5, 0))):
        stats_clock[0] = base + minute * 60 + 5
        for _ in range(ok):
            stats.record(200, 0.010 * (minute + 1))
        for _ in range(failed):
            stats.record(503, 0.5)
    assert stats.flush()
    rows = http_series(services.store, base, base + 900, now=base + 900, step_s=300)["rows"]
    assert [r["ts"] for r in rows] == [base, base + 300, base + 600]
    assert (rows[0]["requests"], rows[0]["errors_5xx"], rows[0]["errors_4xx"]) == (13, 3, 0)
    assert (rows[1]["requests"], rows[1]["errors_5xx"]) == (5, 0)
    assert rows[1]["p50_s"] == pytest.approx(0.060, rel=0.011)
    assert rows[0]["p99_s"] == pytest.approx(0.5, rel=0.011)
    assert rows[2]["requests"] == 0 and rows[2]["p50_s"] is None

    for minute, cpu in ((0, 10.0), (1, 30.5), (5, 80.0)):
        sample = {measure: 1.0 for measure in ("memory_percent", "disk_percent", "memory_used_bytes",
                                               "disk_used_bytes", "load_1m")}
        write_system_sample(services.store, {**sample, "cpu_percent": cpu}, base + minute * 60 + 1)
    rows = system_series(services.store, base, base + 600, now=base + 600, step_s=300)["rows"]
    assert rows[0]["cpu_percent"] == pytest.approx((10.0 + 30.5) / 2) and rows[1]["cpu_percent"] == 80.0


def test_http_stats_keep_counts_while_the_store_is_down(services):
    from services.store import Store, connect
    down = Store(connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5), services.store.keys)
    stats = HttpStats(down, clock=lambda: 1_800_000_030.0)
    stats.record(200, 0.01)
    assert not stats.flush()
    stats.store = services.store  # the store is back
    assert stats.flush()
    assert services.store.client.hget(services.store.keys.http("m", 1_800_000_000), "n:2xx") == b"1"


# -- collector (in-process) --------------------------------------------------------------------
@pytest.fixture
def own_services(settings, redis_client):
    """Services under their own key prefix: the session's `serve` process runs a collector too, and
    must not hold this deployment's lock."""
    from services.container import build_services
    return build_services(settings.model_copy(update={"key_prefix": "collector-test"}))


def test_collector_round_writes_sample_snapshot_and_publishes(own_services, tmp_path):
    services = own_services
    pubsub = services.store.client.pubsub()
    pubsub.subscribe(services.store.keys.realtime_channel())
    wait_until(lambda: pubsub.get_message(timeout=0.1), message="subscription confirmed")
    collector = Collector(services, interval_s=1, disk_path=tmp_path, labels=services.partner_labels)
    assert collector.run_once() is True
    now = services.clock()
    summary = system_summary(services.store, now - 120, now + 60, now)
    assert summary["samples"] == 1 and 0 <= summary["cpu_percent_avg"] <= 100
    snapshot = services.store.client.get(services.store.keys.metrics_snapshot())
    assert snapshot and b'"system"' in snapshot
    message = wait_until(lambda: pubsub.get_message(timeout=0.1), message="metrics message")
    assert b'"stream":"metrics"' in message["data"]
    collector.stop()
    assert services.store.client.get(services.store.keys.collector_lock()) is None  # released
    pubsub.close()


def test_second_collector_stands_by_while_the_first_holds_the_lock(own_services, tmp_path):
    services = own_services
    a = Collector(services, interval_s=1, disk_path=tmp_path, owner="a")
    b = Collector(services, interval_s=1, disk_path=tmp_path, owner="b")
    assert a.run_once() and not b.run_once() and a.run_once()
    assert services.store.client.get(services.store.keys.collector_lock()) == b"a"
    a.stop()  # releases: b takes over on its next round
    assert b.run_once()
    b.stop()


# -- collector processes: election and takeover -------------------------------------------------
def _collector_process(valkey_url: str, port: int, tmp_path) -> subprocess.Popen:
    env = server_env(REDIS_URL=valkey_url, LULUPAY_DATA_DIR=str(tmp_path), LULUPAY_KEY_PREFIX="election")
    return subprocess.Popen([sys.executable, "-m", "app", "--log-level", "WARNING", "collector", "--interval", "0.5",
                             "--metrics-port", str(port)], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_two_collector_processes_one_writes_and_the_other_takes_over(valkey_url, redis_client, tmp_path):
    ports = [free_port(), free_port()]
    procs = [_collector_process(valkey_url, port, tmp_path) for port in ports]
    try:
        def leader_index():
            owner = redis_client.get("{election}:collector:lock")
            if owner is None:
                return None
            pid = int(owner.decode().split(":")[1])
            return next((i for i, p in enumerate(procs) if p.pid == pid), None)

        leader = wait_until(lambda: leader_index() is not None, timeout=30, message="a leader") and leader_index()
        other = 1 - leader
        wait_until(lambda: scrape(f"http://127.0.0.1:{ports[other]}/metrics"), timeout=30, message="standby metrics")
        # the leader writes samples; the stand-by writes none
        wait_until(lambda: scrape(f"http://127.0.0.1:{ports[leader]}/metrics")[
            ("lulupay_collector_samples_total", ())] >= 3, timeout=30, message="leader samples")
        standby = scrape(f"http://127.0.0.1:{ports[other]}/metrics")
        assert standby[("lulupay_collector_samples_total", ())] == 0
        assert standby[("lulupay_collector_leader", ())] == 0
        # the stand-by still exposes the deployment gauges, from the leader's snapshot
        assert ("lulupay_system_cpu_usage_percent", ()) in standby

        os.killpg(procs[leader].pid, signal.SIGKILL)  # no release: the lock must expire
        procs[leader].wait(10)
        wait_until(lambda: leader_index() == other, timeout=30, message="takeover")
        wait_until(lambda: scrape(f"http://127.0.0.1:{ports[other]}/metrics")[
            ("lulupay_collector_samples_total", ())] >= 2, timeout=30, message="new leader samples")
        assert scrape(f"http://127.0.0.1:{ports[other]}/metrics")[("lulupay_collector_leader", ())] == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)


def documented_families() -> list[str]:
    """Family names of the table in docs/metrics.md."""
    import re
    text = (ROOT / "docs" / "metrics.md").read_text()
    return sorted(set(re.findall(r"^\| `(lulupay_[a-z_]+)`", text, flags=re.M)))


def test_metrics_page_shows_every_documented_family_and_passes_promtool(live_server):
    import shutil

    families = documented_families()
    assert len(families) >= 25
    now = time.time()
    events = [
        {"type": "partner.upserted", "id": "m-p", "ts": now - 60, "partner_id": "metrics-co", "name": "Metrics Co",
         "tier": "pro", "monthly_build_quota": 50, "status": "active"},
        {"type": "build.started", "id": "m-s", "ts": now - 50, "partner_id": "metrics-co", "build_id": "mb",
         "build_type": "debug", "app_version": "1.0"},
        {"type": "asset.processed", "id": "m-a", "ts": now - 40, "partner_id": "metrics-co", "asset_type": "icon",
         "format": "png", "density": "hdpi", "original_bytes": 1000, "output_bytes": 400, "quality_score": 90.0,
         "duration_s": 0.2},
        {"type": "build.finished", "id": "m-f", "ts": now - 30, "partner_id": "metrics-co", "build_id": "mb",
         "build_type": "debug", "status": "success", "duration_s": 20.0},
    ]
    assert requests.post(live_server.url + "/api/v1/events", json={"events": events}, timeout=10).status_code == 202

    def missing():
        text = requests.get(live_server.url + "/metrics", timeout=10).text
        names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
        return [f for f in families if not any(n == f or n.startswith(f + "_") for n in names)]

    # the deployment families appear with the collector's first snapshot
    try:
        wait_until(lambda: not missing(), timeout=30, message="every documented family")
    except AssertionError:
        raise AssertionError(f"families missing from /metrics: {missing()}") from None
    if shutil.which("promtool"):
        text = requests.get(live_server.url + "/metrics", timeout=10).text
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
