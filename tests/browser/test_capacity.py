"""The Capacity page in a real browser: every panel drawn from a store holding demo builds and two
days of host samples, probes and request statistics, the words and the table equal to the capacity
service's figures and the CSV equal to the table; honest empty states on an empty store."""
from __future__ import annotations

import csv
import math
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from app.factory import create_app
from app.settings import Settings
from callbacks.capacity import NO_PROBES, NO_SAMPLES, sla_rows
from layouts.capacity_figures import format_availability, projection_text
from layouts.ids import CAPACITY, CAPACITY_PANEL_IDS
from services.container import build_services
from services.demo.generator import generate_history
from services.queries.capacity import RESOURCES
from services.queries.system import HttpStats, write_probe_counts, write_system_sample
from services.scope import system_scope
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

PREFIX = "capacity-browser"


def _yesterday() -> tuple[str, float, float]:
    day = (datetime.now(timezone.utc) - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    return day.isoformat(), start, start + 86400


@pytest.fixture(scope="module")
def world(valkey_url):
    """Services under their own prefix: demo builds, host samples every 5 min, probes and requests
    for the last two days (CPU rising, disk above its threshold, a ten-minute outage yesterday)."""
    client = redis.Redis.from_url(valkey_url)
    for key in client.scan_iter(match="{" + PREFIX + "}*", count=1000):
        client.delete(key)
    settings = Settings(_env_file=None, redis_url=valkey_url, key_prefix=PREFIX, collector_enabled=False,
                        forecaster_enabled=False)
    services = build_services(settings)
    now = time.time()
    for batch in generate_history(days=2, partners=12, builds_per_day=300, now=now):
        services.ingest.ingest_batch(batch)
    store, start = services.store, math.floor(now / 300) * 300 - 2 * 86400
    stats_clock = [0.0]
    stats = HttpStats(store, clock=lambda: stats_clock[0])
    _, outage_start, _ = _yesterday()
    outage_start += 9 * 3600
    probes = {}
    for i in range(2 * 288):
        ts = start + i * 300
        sample = {"cpu_percent": 30.0 + 8.0 * i / 288, "memory_percent": 55.0, "disk_percent": 93.0,
                  "memory_used_bytes": 8e9, "disk_used_bytes": 9e10, "load_1m": 1.0, "net_sent_delta": 30_000_000,
                  "net_recv_delta": 60_000_000, "net_seconds_delta": 300.0}
        write_system_sample(store, sample, ts)
        for minute in range(5):
            down = outage_start <= ts + minute * 60 < outage_start + 600
            probes[int(ts + minute * 60)] = (0, 12) if down else (12, 0)
        stats_clock[0] = ts + 10
        for j in range(10):
            stats.record(200, 0.02 + 0.01 * j)
    write_probe_counts(store, probes)
    assert stats.flush()
    return services


def test_capacity_page_draws_every_panel_with_the_services_figures(dash_duo, world):
    day, start, end = _yesterday()
    dash_duo.start_server(create_app(world.settings, build_services(world.settings)))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/capacity?range=custom&from={day}&to={day}&refresh=off")
    for panel in CAPACITY_PANEL_IDS:
        dash_duo.wait_for_element(f'[data-panel="{panel}"]', timeout=15)
    for panel in ("cpu-trend", "memory-trend", "disk-trend", "network-trend", "ingest-throughput",
                  "build-throughput", "availability-sla", "latency-sla"):
        dash_duo.wait_for_element(f'[data-panel="{panel}"] .js-plotly-plot', timeout=20)

    capacity = world.dashboards.capacity_service
    scope = system_scope(start, end)
    resources = capacity.resources(scope)["resources"]
    for name, label, unit in RESOURCES:
        words = projection_text(resources[name]["projection"], unit)
        assert dash_duo.find_element(f'[data-projection="{name}"]').text == words[:1].upper() + words[1:]
        assert dash_duo.find_element(f'[data-finding="{name}"]').text == f"{label}: {words}."
    assert resources["disk"]["projection"]["status"] == "above"
    assert resources["cpu"]["projection"]["status"] in ("crossing", "not_within")
    sla = capacity.sla(scope)
    assert sla["probes_down"] == 120 and 0 < sla["availability"] < 1
    shown = dash_duo.find_element('[data-finding="availability"]').text
    assert f"Availability {format_availability(sla['availability'])}" in shown and "(missed)" in shown
    assert dash_duo.find_element('[data-sla="latency"]').text.startswith(f"p95 {sla['p95_ms']:,.1f} ms")
    ingest, builds = capacity.ingest(scope), capacity.builds(scope)
    assert dash_duo.find_element('[data-finding="throughput"]').text.startswith(
        f"{ingest['events']:,} events accepted and {builds['builds']:,} builds finished")
    assert ingest["events"] > builds["builds"] > 0

    expected = sla_rows(sla)
    button = dash_duo.find_element(f"#{CAPACITY.SLA_CSV}")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", button)
    target = Path(dash_duo.download_path) / "service-levels.csv"
    wait_until(lambda: target.exists() and target.stat().st_size > 0, message="the CSV download")
    with target.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(expected) == 288
    by_interval = {r["Interval (UTC)"]: r for r in rows}
    for row in expected:
        got = by_interval[row["ts_text"]]
        assert int(got["Probes up"]) == row["probes_up"] and int(got["Probes down"]) == row["probes_down"]
        assert float(got["Availability"]) == pytest.approx(row["availability"])
        assert float(got["p95 (ms)"]) == pytest.approx(row["p95_ms"])
    assert sum(int(r["Probes down"]) for r in rows) == 120
    href = dash_duo.find_element(f"#{CAPACITY.EXPORT}").get_attribute("href")
    assert "/api/v1/export/system.csv?from=" in href
    assert dash_duo.get_logs() == [], "browser console errors"


def test_capacity_page_on_an_empty_store_says_so(dash_duo, valkey_url, tmp_path):
    empty_url = valkey_url.rstrip("/") + "/4"
    redis.Redis.from_url(empty_url).flushdb()
    settings = Settings(_env_file=None, redis_url=empty_url, data_dir=tmp_path / "data", collector_enabled=False,
                        forecaster_enabled=False)
    dash_duo.start_server(create_app(settings, build_services(settings)))
    dash_duo.wait_for_page(dash_duo.server_url + "/capacity?range=24h&refresh=off")
    for body in (CAPACITY.CPU, CAPACITY.MEMORY, CAPACITY.DISK, CAPACITY.NETWORK):
        dash_duo.wait_for_contains_text(f"#{body}", NO_SAMPLES, timeout=20)
    dash_duo.wait_for_contains_text(f"#{CAPACITY.AVAILABILITY}", NO_PROBES, timeout=10)
    dash_duo.wait_for_contains_text(f"#{CAPACITY.INGEST}", "No events accepted in this period", timeout=10)
    dash_duo.wait_for_contains_text(f"#{CAPACITY.BUILDS}", "No builds finished in this period", timeout=10)
    dash_duo.wait_for_contains_text(f"#{CAPACITY.SUMMARY}", NO_SAMPLES, timeout=10)
    assert not dash_duo.find_elements(".panel-error")
    assert not dash_duo.find_elements('[data-panel="cpu-trend"] .js-plotly-plot')
    assert dash_duo.get_logs() == [], "browser console errors"
