"""Pure parts of the metrics: route labels, the snapshot's families, the host panels."""
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.observability import route_label
from callbacks.operations import system_gauge
from services.metrics import snapshot_families

SNAPSHOT = {
    "ts": 1000.0,
    "system": {"cpu_percent": 12.5, "memory_used_bytes": 3, "memory_available_bytes": 5, "memory_total_bytes": 8,
               "memory_percent": 37.5, "disk_used_bytes": 1, "disk_free_bytes": 3, "disk_total_bytes": 4,
               "disk_percent": 25.0, "load_1m": 0.5, "load_5m": 0.25, "load_15m": 0.125,
               "net_sent_bytes": 100, "net_recv_bytes": 200},
    "active_builds": {"acme": 2, "other": 1},
    "partners": [["pro", "active", 3], ["free", "churned", 1]],
    "quota_used_ratio": {"acme": 0.5},
    "builds_this_month": {"acme": 10},
}


def test_route_label_is_a_template_or_callback_never_a_path():
    assert route_label("/api/v1/partners/<partner_id>") == "/api/v1/partners/<partner_id>"
    assert route_label("/_dash-update-component", "overview") == "dash:overview"
    assert route_label(None) == "unmatched"


def _exposed(snapshot, now):
    class Fixed:
        def describe(self):
            return []

        def collect(self):
            return snapshot_families(snapshot, now)

    registry = CollectorRegistry()
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_snapshot_families_expose_every_value_of_the_snapshot():
    values = _exposed(SNAPSHOT, now=1004.0)
    assert values[("lulupay_system_cpu_usage_percent", ())] == 12.5
    assert values[("lulupay_system_memory_usage_bytes", (("type", "available"),))] == 5
    assert values[("lulupay_system_disk_usage_bytes", (("type", "free"),))] == 3
    assert values[("lulupay_system_load_average", (("period", "15m"),))] == 0.125
    assert values[("lulupay_system_network_bytes_total", (("direction", "received"),))] == 200
    assert values[("lulupay_active_builds", (("partner_id", "other"),))] == 1
    assert values[("lulupay_partners", (("status", "churned"), ("tier", "free")))] == 1
    assert values[("lulupay_partner_quota_used_ratio", (("partner_id", "acme"),))] == 0.5
    assert values[("lulupay_partner_builds_this_month", (("partner_id", "acme"),))] == 10
    assert values[("lulupay_collector_snapshot_age_seconds", ())] == 4


def test_no_snapshot_exposes_no_invented_values():
    assert _exposed(None, now=0) == {}


def test_system_gauge_shows_period_average_and_latest_sample():
    summary = {"samples": 12, "memory_percent_avg": 40.0, "memory_percent_max": 55.0}
    gauge, detail = system_gauge(summary, SNAPSHOT["system"], "memory", "light")
    assert gauge.figure["data"][0]["value"] == 40.0
    assert detail.children == "now 38 % · peak 55 % · 3 B of 8 B · 12 samples"


def test_system_gauge_without_samples_says_so():
    empty = system_gauge({"samples": 0}, {}, "cpu", "dark")
    assert "No samples yet" in str(empty.children)


def test_observe_many_equals_observing_one_by_one():
    from prometheus_client import Histogram

    from services.metrics import observe_many

    bounds = (1, 5, 10)
    values = [0.0, 1, 1.0000001, 4.9, 5, 10, 10.5, 1e9, 3, 3, 7.25]  # on, beside and past the bounds

    def exposed(feed):
        registry = CollectorRegistry()
        histogram = Histogram("h_seconds", "h", ["k"], buckets=bounds, registry=registry)
        feed(histogram.labels("x"))
        return generate_latest(registry).decode()

    def one_by_one(child):
        for v in values:
            child.observe(v)

    text = exposed(lambda child: observe_many(child, values))
    assert text == exposed(one_by_one)
    assert 'h_seconds_bucket{k="x",le="5.0"} 7.0' in text  # 0, 1, 1.0000001, 4.9, 5, 3, 3


def _samples():
    from prometheus_client.registry import REGISTRY
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(REGISTRY).decode()) for s in f.samples}


def _expected_increments(events, label_of):
    """Per event, the samples each one moves (the definition in docs/metrics.md, written plainly)."""
    from collections import defaultdict

    from services import metrics
    out = defaultdict(float)

    def count(name, amount=1, **labels):
        out[name, tuple(sorted(labels.items()))] += amount

    def observe(family, value, **labels):
        name = family._name
        count(name + "_count", **labels)
        count(name + "_sum", value, **labels)
        for bound in family._upper_bounds:
            if value <= bound:
                count(name + "_bucket", le=str(float(bound)) if bound != float("inf") else "+Inf", **labels)

    for e in events:
        if e["type"] == "build.stage":
            observe(metrics.STAGE_DURATION, e["duration_s"], stage=e["stage"], status=e["status"])
        elif e["type"] == "asset.processed":
            kind = {"asset_type": e["asset_type"], "format": e["format"]}
            count("lulupay_assets_processed_total", partner_id=label_of(e["partner_id"]), density=e["density"], **kind)
            observe(metrics.ASSET_QUALITY, e["quality_score"], **kind)
            observe(metrics.ASSET_DURATION, e["duration_s"], asset_type=e["asset_type"])
            count("lulupay_asset_bytes_total", e["original_bytes"], asset_type=e["asset_type"], kind="original")
            count("lulupay_asset_bytes_total", e["output_bytes"], asset_type=e["asset_type"], kind="output")
            if e["original_bytes"]:
                observe(metrics.ASSET_COMPRESSION, 1 - e["output_bytes"] / e["original_bytes"], **kind)
        elif e["type"] == "build.finished":
            labels = {"partner_id": label_of(e["partner_id"]), "status": e["status"], "build_type": e["build_type"]}
            count("lulupay_builds_total", **labels)
            count("lulupay_build_seconds_total", e["duration_s"], **labels)
            observe(metrics.BUILD_DURATION, e["duration_s"], status=e["status"], build_type=e["build_type"])
            if e["status"] == "failed":
                count("lulupay_build_failures_total", failed_stage=e.get("failed_stage") or "unknown",
                      build_type=e["build_type"])
        elif e["type"] == "build.started":
            count("lulupay_builds_started_total", partner_id=label_of(e["partner_id"]), build_type=e["build_type"])
        elif e["type"] == "partner.upserted":
            count("lulupay_partner_updates_total", tier=e["tier"], status=e["status"])
    return out


def test_record_events_moves_each_sample_as_the_events_one_by_one_would():
    import math

    from services.demo.generator import generate_history
    from services.metrics import record_events

    events = next(iter(generate_history(days=1, builds_per_day=400, now=1_700_000_000, seed=3, batch_size=6000)))
    assert {e["type"] for e in events} >= {"build.started", "build.stage", "build.finished", "asset.processed"}
    label_of = lambda pid: pid if pid < "p" else "other"  # noqa: E731 — some partners share `other`
    before = _samples()
    record_events(events, label_of)
    after = _samples()
    expected = _expected_increments(events, label_of)
    moved = {key: after[key] - before.get(key, 0) for key in after
             if key[0].startswith("lulupay_") and after[key] != before.get(key, 0)}
    assert set(moved) == set(expected)
    for key, amount in expected.items():
        assert math.isclose(moved[key], amount, rel_tol=1e-9), key
