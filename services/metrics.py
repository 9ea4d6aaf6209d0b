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

import logging
import os
import threading
from bisect import bisect_left
from collections import Counter as Counter_, defaultdict
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter

import orjson
import redis
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY

from services.events import BUILD_TYPES, STAGES, TIERS

__all__ = [
    "CONTENT_TYPE_LATEST", "MULTIPROCESS", "OTHER", "ProcessFamilies", "PartnerLabels", "SnapshotCollector", "exposition",
    "record_events", "observe_many", "BUILDS", "BUILDS_STARTED", "BUILD_DURATION", "BUILD_SECONDS", "BUILD_FAILURES",
    "STAGE_DURATION", "ASSETS", "ASSET_COMPRESSION", "ASSET_QUALITY", "ASSET_DURATION", "ASSET_BYTES",
    "PARTNER_UPDATES", "HTTP_REQUESTS", "HTTP_DURATION", "HTTP_IN_FLIGHT", "INGEST_EVENTS", "INGEST_DURATION",
    "QUERY_DURATION", "WS_CONNECTIONS", "WS_MESSAGES", "WS_DROPPED", "WS_DELIVERY", "COLLECTOR_LEADER",
    "COLLECTOR_SAMPLES", "COLLECTOR_ERRORS", "BUILD_DURATION_BUCKETS", "HTTP_BUCKETS",
]

log = logging.getLogger(__name__)
disable_created_metrics()  # no `_created` series: half the exposition, and multiprocess mode has none

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
OTHER = "other"
FINISH_STATUSES = ("success", "failed", "cancelled")
STAGE_STATUSES = ("success", "failed", "skipped")
ASSET_TYPES = ("icon", "splash", "logo", "banner", "screenshot")
ASSET_FORMATS = ("png", "webp", "jpg", "svg")

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

QUERIES = ("summary", "series", "partners", "dashboard")
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
        for status in ("active", "suspended", "churned"):
            PARTNER_UPDATES.labels(tier, status)
    for result in INGEST_RESULTS:
        INGEST_EVENTS.labels(result)
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

_CLAIM_LABEL = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then redis.call('SADD', KEYS[1], ARGV[1]) return 1 end
return 0
"""


class PartnerLabels:
    """Partner id → label value: the first `cap` partners the deployment sees keep their id, the
    rest share `other`. The labelled set lives in the store, so every worker and instance agrees;
    each process remembers its answers."""

    def __init__(self, client: redis.Redis, key: str, cap: int):
        self.key = key
        self.cap = cap
        self._claim = client.register_script(_CLAIM_LABEL)
        self._client = client
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, partner_id: str) -> str:
        label = self._known.get(partner_id)
        if label is not None:
            return label
        try:
            label = partner_id if int(self._claim(keys=[self.key], args=[partner_id, self.cap])) else OTHER
        except redis.RedisError as exc:
            log.debug("partner label not claimed (%s); counted as other this time", exc)
            return OTHER
        with self._lock:
            self._known[partner_id] = label
        return label

    def labelled(self) -> set[str]:
        """Every partner id that has its own label."""
        return {m.decode() for m in self._client.smembers(self.key)}


def record_events(events: Iterable[dict], label_of) -> None:
    """Count accepted (new, not duplicate) events into the build, asset and partner families.

    A batch is grouped first — one increment per label set and histogram bucket, not one per
    event, the grouping done by C-level `Counter`/`itemgetter` —: a metric update costs ~1–2 µs (a
    lock and an mmap write per value in multiprocess mode), which per event would dominate bulk
    loads (the 4-million-event demo seed)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_type[event["type"]].append(event)
    if stages := by_type.get("build.stage"):
        _observe_grouped(STAGE_DURATION, _column(stages, "stage", "status"), _column(stages, "duration_s"))
    if assets := by_type.get("asset.processed"):
        kinds = _column(assets, "asset_type", "format")
        types = _column(assets, "asset_type")
        _count(ASSETS, _column(assets, "partner_id", "asset_type", "format", "density"), label_of)
        _observe_grouped(ASSET_QUALITY, kinds, _column(assets, "quality_score"))
        _observe_grouped(ASSET_DURATION, [(t,) for t in types], _column(assets, "duration_s"))
        original, output = _column(assets, "original_bytes"), _column(assets, "output_bytes")
        for kind, amounts in (("original", original), ("output", output)):
            for asset_type, total in _sums(types, amounts).items():
                _child(ASSET_BYTES, (asset_type, kind)).inc(total)
        saved = [(k, 1 - out / orig) for k, orig, out in zip(kinds, original, output) if orig]
        _observe_grouped(ASSET_COMPRESSION, [k for k, _ in saved], [r for _, r in saved])
    if finished := by_type.get("build.finished"):
        keys = _column(finished, "partner_id", "status", "build_type")
        durations = _column(finished, "duration_s")
        _count(BUILDS, keys, label_of)
        for (partner, status, build_type), total in _sums(keys, durations).items():
            _child(BUILD_SECONDS, (label_of(partner), status, build_type)).inc(total)
        _observe_grouped(BUILD_DURATION, [k[1:] for k in keys], durations)
        failures = Counter_((e.get("failed_stage") or "unknown", e["build_type"]) for e in finished
                           if e["status"] == "failed")
        for labels, n in failures.items():
            _child(BUILD_FAILURES, labels).inc(n)
    if started := by_type.get("build.started"):
        _count(BUILDS_STARTED, _column(started, "partner_id", "build_type"), label_of)
    if upserts := by_type.get("partner.upserted"):
        _count(PARTNER_UPDATES, _column(upserts, "tier", "status"))


_CHILDREN: dict[tuple, object] = {}  # (family, label values) -> child: labels() costs ~3 µs a call


def _child(family, labels: tuple):
    """`family.labels(*labels)`, remembered (children are never removed; label values are bounded)."""
    child = _CHILDREN.get((family, labels))
    if child is None:
        child = _CHILDREN[family, labels] = family.labels(*labels)
    return child


def _column(events: list[dict], *fields: str) -> list:
    """One field of every event (a value each), or several (a tuple each)."""
    return list(map(itemgetter(*fields), events))


def _sums(keys: list, values: list) -> dict:
    out: dict = defaultdict(float)
    for key, value in zip(keys, values):
        out[key] += value
    return out


def _count(family: Counter, keys: list[tuple], label_of=None) -> None:
    """+1 per key; with `label_of`, the first label is a partner id mapped to its label value."""
    for labels, n in Counter_(keys).items():
        if label_of is not None:
            labels = (label_of(labels[0]), *labels[1:])
        _child(family, labels).inc(n)


def _observe_grouped(family: Histogram, keys: list[tuple], values: list[float]) -> None:
    """`family.labels(*key).observe(value)` for each pair, one increment per label set and bucket."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for key, value in zip(keys, values):
        groups[key].append(value)
    for key, group in groups.items():
        observe_many(_child(family, key), group)


def observe_many(child: Histogram, values: list[float]) -> None:
    """`child.observe(v)` for every v, with one increment per bucket that gets any.

    Uses the client's histogram layout (`_upper_bounds`, per-bucket `_buckets` counts that the
    exposition makes cumulative, `_sum`); tests/unit/test_metrics.py checks the result equals
    observing one by one, so a client release that changes the layout fails there."""
    per_bucket = Counter_(map(bisect_left, repeat(child._upper_bounds), values))
    child._sum.inc(sum(values))
    for index, count in per_bucket.items():
        child._buckets[index].inc(count)


class SnapshotCollector:
    """The deployment families, read from the collector's snapshot in the store at scrape time
    (one GET), plus `lulupay_store_up`. A missing or expired snapshot exports no samples for them
    (the collector is down: alert on `lulupay_collector_snapshot_age_seconds` / absent series)."""

    def __init__(self, client: redis.Redis, key: str, clock):
        self.client = client
        self.key = key
        self.clock = clock

    def describe(self):
        return []  # not checked for duplicates at registration

    def collect(self):
        try:
            blob = self.client.get(self.key)
            up = 1
        except redis.RedisError:
            blob, up = None, 0
        store_up = GaugeMetricFamily("lulupay_store_up", "1 when the store answered this scrape.")
        store_up.add_metric([], up)
        yield store_up
        yield from snapshot_families(orjson.loads(blob) if blob else None, self.clock())


def snapshot_families(snap: dict | None, now: float):
    """Metric families of a collector snapshot (plain function: the exposition of a dict)."""
    cpu = GaugeMetricFamily("lulupay_system_cpu_usage_percent", "CPU use of the collector's host, percent.")
    memory = GaugeMetricFamily("lulupay_system_memory_usage_bytes", "Memory of the collector's host.", labels=["type"])
    disk = GaugeMetricFamily("lulupay_system_disk_usage_bytes", "Disk holding the data directory.", labels=["type"])
    load = GaugeMetricFamily("lulupay_system_load_average", "Load average of the collector's host.", labels=["period"])
    network = CounterMetricFamily("lulupay_system_network", "Network bytes of the collector's host since boot.",
                                  labels=["direction"], unit="bytes")
    active = GaugeMetricFamily("lulupay_active_builds", "Builds started and not finished.", labels=["partner_id"])
    partners = GaugeMetricFamily("lulupay_partners", "Partners by current tier and status.", labels=["tier", "status"])
    quota = GaugeMetricFamily("lulupay_partner_quota_used_ratio", "Builds this UTC month / monthly quota.",
                              labels=["partner_id"])
    month = GaugeMetricFamily("lulupay_partner_builds_this_month", "Finished builds this UTC month.",
                              labels=["partner_id"])
    age = GaugeMetricFamily("lulupay_collector_snapshot_age_seconds", "Age of the collector snapshot exposed here.")
    if snap:
        system = snap.get("system") or {}
        if system:
            cpu.add_metric([], system["cpu_percent"])
            for kind in ("used", "available", "total"):
                memory.add_metric([kind], system[f"memory_{kind}_bytes"])
            for kind in ("used", "free", "total"):
                disk.add_metric([kind], system[f"disk_{kind}_bytes"])
            for period in ("1m", "5m", "15m"):
                load.add_metric([period], system[f"load_{period}"])
            network.add_metric(["sent"], system["net_sent_bytes"])
            network.add_metric(["received"], system["net_recv_bytes"])
        for partner, count in sorted((snap.get("active_builds") or {}).items()):
            active.add_metric([partner], count)
        for tier, status, count in snap.get("partners") or []:
            partners.add_metric([tier, status], count)
        for partner, ratio in sorted((snap.get("quota_used_ratio") or {}).items()):
            quota.add_metric([partner], ratio)
        for partner, count in sorted((snap.get("builds_this_month") or {}).items()):
            month.add_metric([partner], count)
        age.add_metric([], max(0.0, now - snap["ts"]))
    return [cpu, memory, disk, load, network, active, partners, quota, month, age]


class ProcessFamilies:
    """The process's own families (single-process mode)."""

    def describe(self):
        return []

    def collect(self):
        return REGISTRY.collect()


_multiproc_text = None


def exposition(extra: Iterable = ()) -> bytes:
    """The text exposition: every worker's process families (multiprocess mode, summed over the
    workers by `MultiprocessText`) or this process's, plus `extra` collectors (the snapshot)."""
    global _multiproc_text
    registry = CollectorRegistry()
    for collector in extra:
        registry.register(collector)
    if not MULTIPROCESS:
        registry.register(ProcessFamilies())
        return generate_latest(registry)
    if _multiproc_text is None:
        from services.multiproc_text import MultiprocessText
        _multiproc_text = MultiprocessText(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return _multiproc_text.render() + generate_latest(registry)
