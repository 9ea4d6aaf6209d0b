"""The Capacity figures from a real Valkey: resource points and projections from the collector's
buckets, SLA compliance from the probes and the request rollups, throughput from the build
rollups within the reader's scope, and the panels' empty and error states."""
from __future__ import annotations

import math
import time

import flask
import pytest

from callbacks.capacity import NO_PROBES, NO_SAMPLES, CapacityPanels, sla_rows
from layouts.ids import CAPACITY
from services.queries.system import HttpStats, write_probe_counts, write_system_sample
from services.scope import OPEN_ACCESS, Principal, scope_for, system_scope

pytestmark = pytest.mark.integration

DAY, HOUR = 86400, 3600
NOW = math.floor(time.time() / HOUR) * HOUR + 1800.0  # fixed for the test: the services' clock
A, B = "alpha-co", "bravo-corp"
_FLAT = {"memory_percent": 50.0, "memory_used_bytes": 4e9, "disk_used_bytes": 2e11, "load_1m": 1.0}


@pytest.fixture
def services(settings, redis_client):
    from services.container import build_services
    return build_services(settings.model_copy(update={"key_prefix": "capacity-test"}), clock=lambda: NOW)


def _write_host_history(store, days: int = 3) -> list[tuple[float, dict]]:
    """Samples every 5 min: CPU rising 10 points a day to 70 % now, memory flat, disk at 92 %,
    network 1 MB + 2 MB per 300 s."""
    samples = []
    for i in range(days * 288):
        ts = NOW - days * DAY + i * 300
        sample = {**_FLAT, "cpu_percent": 40.0 + 10.0 * (ts - (NOW - days * DAY)) / DAY, "disk_percent": 92.0,
                  "net_sent_delta": 1_000_000, "net_recv_delta": 2_000_000, "net_seconds_delta": 300.0}
        write_system_sample(store, sample, ts)
        samples.append((ts, sample))
    return samples


def test_resources_are_the_window_means_and_project_their_trend(services):
    samples = _write_host_history(services.store)
    scope = system_scope(NOW - 3 * DAY, NOW)
    data = services.dashboards.capacity_service.resources(scope)
    # 3 days reach past the minutes' 2 days: hour windows
    assert data["samples"] == len(samples) and data["step_s"] == 3600
    cpu = dict((ts, v) for ts, v in data["resources"]["cpu"]["points"])
    for window in (NOW - 3 * DAY - 1800, NOW - DAY - 1800, NOW - 5400):
        inside = [s["cpu_percent"] for ts, s in samples if window <= ts < window + 3600]
        assert len(inside) == (6 if window < NOW - 3 * DAY else 12)
        assert cpu[window] == pytest.approx(sum(inside) / len(inside))
    network = [v for _, v in data["resources"]["network"]["points"] if v is not None]
    assert network and all(v == pytest.approx(10_000.0) for v in network)  # 3 MB per 300 s

    projections = {name: r["projection"] for name, r in data["resources"].items()}
    assert projections["cpu"]["status"] == "crossing"
    # 70 % now, 10 points a day: 85 % in 1.5 days
    assert projections["cpu"]["at"] == pytest.approx(NOW + 1.5 * DAY, abs=2 * HOUR)
    assert projections["cpu"]["slope_per_day"] == pytest.approx(10.0, rel=0.01)
    assert projections["memory"]["status"] == "not_within" and projections["memory"]["at"] is None
    assert projections["disk"] == {**projections["disk"], "status": "above", "at": NOW}
    assert projections["network"]["status"] == "not_within"
    forecast = data["resources"]["cpu"]["forecast"]
    assert forecast[-1][0] == pytest.approx(projections["cpu"]["at"]) and forecast[-1][1] == pytest.approx(85.0)


def test_a_short_period_projects_from_at_least_the_last_seven_days(services):
    _write_host_history(services.store)
    capacity = services.dashboards.capacity_service
    hour = capacity.resources(system_scope(NOW - 3600, NOW))
    assert hour["samples"] == 12 and hour["fit_from"] == NOW - 7 * DAY
    three_days = capacity.resources(system_scope(NOW - 3 * DAY, NOW))
    for name in ("cpu", "memory", "disk", "network"):
        assert hour["resources"][name]["projection"] == three_days["resources"][name]["projection"], name


def test_too_little_history_has_no_trend(services):
    for i in range(30):  # two and a half hours: three hourly means
        write_system_sample(services.store, {**_FLAT, "cpu_percent": 99.0, "disk_percent": 10.0}, NOW - 9000 + i * 300)
    data = services.dashboards.capacity_service.resources(system_scope(NOW - DAY, NOW))
    assert data["samples"] == 30
    assert {r["projection"]["status"] for r in data["resources"].values()} == {"too_short"}
    assert all(r["forecast"] == [] for r in data["resources"].values())


def test_sla_availability_error_budget_and_latency_per_window_and_period(services):
    store = services.store
    start = NOW - DAY
    outage = {start + 600 * 60 + 60 * i for i in range(10)}  # ten whole minutes down
    write_probe_counts(store, {int(start + 60 * i): (0, 12) if start + 60 * i in outage else (12, 0)
                               for i in range(1440)})
    clock = [0.0]
    stats = HttpStats(store, clock=lambda: clock[0])
    slow_window = start + 3 * 3600  # one 5-minute window of 2-second requests
    for i in range(0, 1440, 5):
        clock[0] = start + 60 * i + 1
        for _ in range(20):
            stats.record(200, 2.0 if clock[0] - 1 == slow_window else 0.010)
    assert stats.flush()

    sla = services.dashboards.capacity_service.sla(system_scope(start, NOW))
    assert (sla["probes_up"], sla["probes_down"]) == (1430 * 12, 10 * 12)
    assert sla["availability"] == pytest.approx(1430 / 1440)
    budget = sla["budget"]
    assert budget["allowed_s"] == pytest.approx(0.001 * DAY) and budget["spent_s"] == pytest.approx(600.0)
    assert budget["left_s"] == pytest.approx(86.4 - 600.0) and budget["met"] is False
    assert sla["requests"] == 288 * 20
    assert sla["p95_ms"] == pytest.approx(10.0, rel=0.011) and sla["latency_met"] is True
    by_ts = {b["ts"]: b for b in sla["buckets"]}
    assert sla["step_s"] == 300 and len(by_ts) == 288
    assert by_ts[slow_window]["p95_ms"] == pytest.approx(2000.0, rel=0.011)
    assert by_ts[slow_window]["latency_met"] is False
    assert (sla["latency_buckets_met"], sla["latency_buckets"]) == (287, 288)
    down = by_ts[start + 600 * 60]  # the window holding the outage's first five minutes
    assert (down["probes_up"], down["probes_down"], down["availability"], down["availability_met"]) == (0, 60, 0.0,
                                                                                                      False)
    assert sum(b["probes_up"] + b["probes_down"] for b in sla["buckets"]) == 1440 * 12
    assert len(sla_rows(sla)) == 288


def _build(pid: str, n: int, ts: float, stages: int, assets: int) -> list[dict]:
    build = f"{pid}-b{n}"
    events = [{"id": f"{build}-s", "type": "build.started", "ts": ts, "partner_id": pid, "build_id": build,
               "build_type": "release", "app_version": "1.0"}]
    for i, stage in enumerate(("asset_processing", "dependency_resolution", "compilation", "packaging", "signing",
                               "upload")[:stages]):
        events.append({"id": f"{build}-g{i}", "type": "build.stage", "ts": ts + 10 + i, "partner_id": pid,
                       "build_id": build, "stage": stage, "status": "success", "duration_s": 5.0})
    for i in range(assets):
        events.append({"id": f"{build}-a{i}", "type": "asset.processed", "ts": ts + 20 + i, "partner_id": pid,
                       "asset_type": "icon", "format": "png", "density": "hdpi", "original_bytes": 1000,
                       "output_bytes": 500, "quality_score": 90.0, "duration_s": 0.1})
    events.append({"id": f"{build}-f", "type": "build.finished", "ts": ts + 60, "partner_id": pid, "build_id": build,
                   "build_type": "release", "status": "success", "duration_s": 60.0})
    return events


def test_throughput_counts_accepted_events_and_finished_builds_within_the_scope(services):
    events = [{"id": f"p-{pid}", "type": "partner.upserted", "ts": NOW - 7200, "partner_id": pid, "name": pid,
               "tier": "pro", "monthly_build_quota": 100, "status": "active"} for pid in (A, B)]
    events += _build(A, 1, NOW - 5 * HOUR, 3, 2) + _build(A, 2, NOW - 2 * HOUR, 6, 0)
    events += _build(B, 1, NOW - 2 * HOUR, 6, 4)
    result = services.ingest.ingest_batch(events)
    assert result.accepted == len(events)
    services.ingest.ingest_batch(events[:5])  # a replay accepts nothing
    capacity = services.dashboards.capacity_service
    everyone = system_scope(NOW - DAY, NOW)
    manager = scope_for(Principal("pat", "partner_manager", frozenset({A})), start=NOW - DAY, end=NOW, now=NOW)
    # every event but the partner records: 2 + 2 + 9 + 2 for alpha-co, 1 + 1 + 6 + 4 for bravo-corp
    assert capacity.ingest(everyone)["events"] == 15 + 12
    mine = capacity.ingest(manager)
    assert mine["events"] == 15
    assert sum(r["build.stage"] for r in mine["rows"]) == 9 and sum(r["asset.processed"] for r in mine["rows"]) == 2
    assert all(r["events_per_s"] == pytest.approx(r["events"] / mine["step_s"]) for r in mine["rows"])
    builds = capacity.builds(manager)
    assert builds["step_s"] == 3600 and builds["builds"] == 2
    assert sorted(r["per_hour"] for r in builds["rows"] if r["builds"]) == [1.0, 1.0]
    assert capacity.builds(everyone)["builds"] == 3
    nobody = scope_for(Principal("nobody", "partner_manager"), start=NOW - DAY, end=NOW, now=NOW)
    assert capacity.ingest(nobody)["events"] == 0 and capacity.builds(nobody)["builds"] == 0


def _panels(services, filters=None) -> tuple[dict, list]:
    from app.factory import create_app
    app = create_app(services.settings, services)
    with app.server.test_request_context("/capacity"):
        flask.g.principal = OPEN_ACCESS
        return CapacityPanels(services).panels(filters or {"range": "24h", "partners": []}, "light")


def _text(component) -> str:
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


def test_an_empty_store_says_so_in_every_panel(services):
    content, rows = _panels(services)
    assert rows == []
    for body in (CAPACITY.CPU, CAPACITY.MEMORY, CAPACITY.DISK, CAPACITY.NETWORK):
        assert NO_SAMPLES in _text(content[body])
    assert NO_PROBES in _text(content[CAPACITY.AVAILABILITY])
    assert "No HTTP requests" in _text(content[CAPACITY.LATENCY])
    assert "No events accepted" in _text(content[CAPACITY.INGEST])
    assert "No builds finished" in _text(content[CAPACITY.BUILDS])
    summary = _text(content[CAPACITY.SUMMARY])
    assert NO_SAMPLES in summary and "no probes in this period" in summary
    assert "panel-error" not in repr(content)


def test_an_unreachable_store_is_an_error_state(services):
    from services.store import Store, connect
    from tests.conftest import free_port
    services.store = Store(connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5), services.store.keys)
    dashboards = services.dashboards
    dashboards.store = dashboards.capacity_service.store = dashboards.queries.store = services.store
    dashboards.cache.client = services.store.client
    content, rows = _panels(services)
    assert rows == []
    for body in (CAPACITY.CPU, CAPACITY.NETWORK, CAPACITY.AVAILABILITY, CAPACITY.LATENCY, CAPACITY.INGEST,
                 CAPACITY.BUILDS, CAPACITY.SLA_NOTE):
        assert "panel-error" in repr(content[body]), body
    assert "store is unreachable" in _text(content[CAPACITY.SUMMARY])


def test_the_demo_host_history_is_consistent_across_resolutions_and_written_once(services):
    from services.demo.host_history import SAMPLES_PER_MINUTE, seed_host_history
    from services.queries.system import read_buckets, system_summary

    from services.store.keys import RESOLUTIONS

    store = services.store
    end = math.floor(NOW / 60) * 60
    kept = sum(len({r.bucket(t) for t in range(int(end - 40 * DAY), int(end), 60)
                    if r.bucket(t) + r.step_s + r.keep_s > NOW}) for r in RESOLUTIONS)
    assert 2 * 1440 + 35 * 24 + 40 <= kept <= 2 * 1440 + 35 * 24 + 43
    assert seed_host_history(store, days=40, now=NOW) == kept  # every minute, hour and day still kept
    assert seed_host_history(store, days=40, now=NOW) == 0  # once per store
    day = math.floor((NOW - 2 * DAY) / DAY) * DAY + DAY  # a whole UTC day inside the minutes' 2 days
    minutes = read_buckets(store, "sys", [("m", t) for t in range(int(day), int(day) + DAY, 60)])
    hours = read_buckets(store, "sys", [("h", t) for t in range(int(day), int(day) + DAY, 3600)])
    (whole,) = read_buckets(store, "sys", [("d", int(day))])
    for field in ("n", "probe_up", "probe_down", "net_sent_delta", "cpu_percent:sum"):
        total = sum(m.get(field, 0) for m in minutes)
        assert sum(h.get(field, 0) for h in hours) == pytest.approx(total) == pytest.approx(whole.get(field, 0)), field
    assert whole["n"] == 1440 * SAMPLES_PER_MINUTE
    assert whole["cpu_percent:max"] == pytest.approx(max(m["cpu_percent:max"] for m in minutes))
    summary = system_summary(store, NOW - 30 * DAY, NOW, NOW)
    assert 0.999 < summary["availability"] < 1  # a 15-minute outage ten days back
    assert summary["probes_down"] == 15 * SAMPLES_PER_MINUTE + 5
    disk = services.dashboards.capacity_service.resources(system_scope(NOW - 7 * DAY, NOW))["resources"]["disk"]
    assert disk["projection"]["status"] in ("crossing", "not_within") and disk["projection"]["slope_per_day"] > 0
    assert store.client.ttl(store.keys.system("m", end - 60)) > 0
