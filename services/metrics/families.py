"""Prometheus metrics of the app: the families (table: docs/metrics.md), how events feed them, and
the `/metrics` exposition.

Two kinds of families:

* **Process families** (counters, histograms, in-flight gauges) are defined below on the default
  registry. Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set before this module is imported
  (`gunicorn.conf.py`) and the exposition sums every worker's files (`MultiProcessCollector`).
* **Deployment families** (system samples, active builds, partner gauges) come from the collector's
  snapshot in the store (`SnapshotCollector`): the elected collector writes it every interval, so
  every instance exposes the same values — aggregate them with `max`, never `sum`.

Label values are bounded: partner ids through `PartnerLabels` (the first N partners seen by the
deployment, the rest `other`), routes by URL template or Dash callback name, enums otherwise.
"""
from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from services.vocabulary import (ASSET_FORMATS, ASSET_TYPES, BUILD_TYPES, FINISH_STATUSES, PARTNER_STATUSES,
                                 STAGE_STATUSES, STAGES, TIERS)

__all__ = [
    "MULTIPROCESS", "BUILDS", "BUILDS_STARTED", "BUILD_DURATION", "BUILD_SECONDS", "BUILD_FAILURES",
    "STAGE_DURATION", "ASSETS", "ASSET_COMPRESSION", "ASSET_QUALITY", "ASSET_DURATION", "ASSET_BYTES",
    "PARTNER_UPDATES", "HTTP_REQUESTS", "HTTP_DURATION", "HTTP_IN_FLIGHT", "INGEST_EVENTS", "INGEST_DURATION",
    "QUERY_DURATION", "WS_CONNECTIONS", "WS_MESSAGES", "WS_DROPPED", "WS_DELIVERY", "COLLECTOR_LEADER",
    "COLLECTOR_SAMPLES", "COLLECTOR_ERRORS", "ALERT_CHANGES", "ALERT_EVALUATIONS", "ALERT_NOTIFICATIONS",
    "BUILD_DURATION_BUCKETS", "HTTP_BUCKETS",
]

disable_created_metrics()  # no `_created` series: half the exposition, and multiprocess mode has none

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Buckets around the targets: build-time target 600 s (LULUPAY_BUILD_TIME_TARGET_S), dashboard
# callbacks 100 ms, ingest of a 1,000-event batch ~40 ms.
BUILD_DURATION_BUCKETS = (60, 120, 180, 240, 300, 420, 600, 900, 1200, 1800, 3600)
STAGE_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
QUALITY_BUCKETS = (50, 60, 70, 75, 80, 85, 90, 95, 98, 100)
ASSET_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
WS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)

# -- build (7) ------------------------------------------------------------------------------------
BUILDS = Counter("lulupay_builds", "Finished builds.", ["partner_id", "status", "build_type"])
BUILDS_STARTED = Counter("lulupay_builds_started", "Started builds.", ["partner_id", "build_type"])
BUILD_SECONDS = Counter("lulupay_build_seconds", "Sum of finished build durations (per-partner average = "
                        "rate of this / rate of lulupay_builds_total).", ["partner_id", "status", "build_type"])
BUILD_DURATION = Histogram("lulupay_build_duration_seconds", "Duration of finished builds.",
                           ["status", "build_type"], buckets=BUILD_DURATION_BUCKETS)
STAGE_DURATION = Histogram("lulupay_build_stage_duration_seconds", "Duration of build stages.",
                           ["stage", "status"], buckets=STAGE_BUCKETS)
BUILD_FAILURES = Counter("lulupay_build_failures", "Failed builds by the stage that failed ('unknown' when "
                         "the event names none).", ["failed_stage", "build_type"])
# lulupay_active_builds{partner_id} is a deployment family (SnapshotCollector).

# -- asset (5) ------------------------------------------------------------------------------------
ASSETS = Counter("lulupay_assets_processed", "Processed assets.", ["partner_id", "asset_type", "format", "density"])
ASSET_COMPRESSION = Histogram("lulupay_asset_compression_ratio", "Share of bytes saved per asset "
                              "(1 - output/original).", ["asset_type", "format"], buckets=RATIO_BUCKETS)
ASSET_QUALITY = Histogram("lulupay_asset_quality_score", "Quality score of processed assets (0-100).",
                          ["asset_type", "format"], buckets=QUALITY_BUCKETS)
ASSET_DURATION = Histogram("lulupay_asset_processing_duration_seconds", "Processing time per asset.",
                           ["asset_type"], buckets=ASSET_SECONDS_BUCKETS)
ASSET_BYTES = Counter("lulupay_asset_bytes", "Asset bytes before (original) and after (output) processing.",
                      ["asset_type", "kind"])

# -- partner (1 here + 3 deployment families) -----------------------------------------------------
PARTNER_UPDATES = Counter("lulupay_partner_updates", "partner.upserted events by the tier they set.", ["tier", "status"])

# -- HTTP (3) -------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("lulupay_http_requests", "HTTP requests by route template (Dash callbacks by "
                        "callback name) and status code.", ["method", "route", "status"])
HTTP_DURATION = Histogram("lulupay_http_request_duration_seconds", "HTTP request duration.", ["method", "route"],
                          buckets=HTTP_BUCKETS)
HTTP_IN_FLIGHT = Gauge("lulupay_http_requests_in_flight", "HTTP requests being served.",
                       multiprocess_mode="livesum")

# -- performance: ingest, query, WebSocket --------------------------------------------------------
INGEST_EVENTS = Counter("lulupay_ingest_events", "Events received by ingest, by outcome.", ["result"])
INGEST_DURATION = Histogram("lulupay_ingest_batch_duration_seconds", "Time to validate and store one batch.",
                            buckets=INGEST_BUCKETS)
QUERY_DURATION = Histogram("lulupay_query_duration_seconds", "Time of dashboard and API queries.", ["query"],
                           buckets=HTTP_BUCKETS)
WS_CONNECTIONS = Gauge("lulupay_websocket_connections", "Open /ws connections.", multiprocess_mode="livesum")
WS_MESSAGES = Counter("lulupay_websocket_messages", "Messages sent to /ws clients.", ["stream"])
WS_DROPPED = Counter("lulupay_websocket_dropped_clients", "/ws clients closed by the server.", ["reason"])
WS_DELIVERY = Histogram("lulupay_websocket_delivery_seconds", "From publication to its send to a client (once per publication and client).",
                        buckets=WS_BUCKETS)

# -- collector ------------------------------------------------------------------------------------
COLLECTOR_LEADER = Gauge("lulupay_collector_leader", "1 in the process that holds the collector lock.",
                         multiprocess_mode="livesum")
COLLECTOR_SAMPLES = Counter("lulupay_collector_samples", "System samples written by this process's collector.")
COLLECTOR_ERRORS = Counter("lulupay_collector_errors", "Collector rounds that failed (store unreachable...).")

# -- alerting (the engine runs on the collector's leader; the alerts gauge is the snapshot's) ----------
ALERT_CHANGES = Counter("lulupay_alert_changes", "Alert changes recorded by this process's engine.",
                        ["change", "severity"])
ALERT_EVALUATIONS = Counter("lulupay_alert_rule_evaluations", "Rule evaluations by this process's engine.", ["result"])
ALERT_NOTIFICATIONS = Counter("lulupay_alert_notifications", "Notifications queued by this process's engine.",
                              ["receiver_kind", "status"])

QUERIES = ("summary", "series", "partners", "partner", "dashboard", "forecast", "anomalies", "failures", "bottlenecks")
INGEST_RESULTS = ("accepted", "duplicate", "rejected")
WS_STREAMS = ("builds", "metrics", "alerts", "partners", "error")
WS_DROP_REASONS = ("slow", "idle", "error", "bad_origin")


def _export_known_series() -> None:
    """Series whose label values are known in advance exist at 0 from the start."""
    for status in FINISH_STATUSES:
        for build_type in BUILD_TYPES:
            BUILD_DURATION.labels(status, build_type)
    for build_type in BUILD_TYPES:
        for stage in (*STAGES, "unknown"):
            BUILD_FAILURES.labels(stage, build_type)
    for stage in STAGES:
        for status in STAGE_STATUSES:
            STAGE_DURATION.labels(stage, status)
    for asset_type in ASSET_TYPES:
        ASSET_DURATION.labels(asset_type)
        for kind in ("original", "output"):
            ASSET_BYTES.labels(asset_type, kind)
        for fmt in ASSET_FORMATS:
            ASSET_COMPRESSION.labels(asset_type, fmt)
            ASSET_QUALITY.labels(asset_type, fmt)
    for tier in TIERS:
        for status in PARTNER_STATUSES:
            PARTNER_UPDATES.labels(tier, status)
    for result in INGEST_RESULTS:
        INGEST_EVENTS.labels(result)
    for change in ("pending", "firing", "resolved", "cleared", "escalated"):
        for severity in ("info", "warning", "critical"):
            ALERT_CHANGES.labels(change, severity)
    for result in ("ok", "error"):
        ALERT_EVALUATIONS.labels(result)
    for kind in ("webhook", "slack", "alertmanager"):
        for status in ("firing", "resolved"):
            ALERT_NOTIFICATIONS.labels(kind, status)
    for query in QUERIES:
        QUERY_DURATION.labels(query)
    for stream in WS_STREAMS:
        WS_MESSAGES.labels(stream)
    for reason in WS_DROP_REASONS:
        WS_DROPPED.labels(reason)
    HTTP_IN_FLIGHT.set(0)
    WS_CONNECTIONS.set(0)
    COLLECTOR_LEADER.set(0)


_export_known_series()

