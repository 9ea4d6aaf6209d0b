"""The `/metrics` exposition: the process families (every worker's, in multiprocess mode) plus the
deployment families read from the collector's snapshot in the store at scrape time."""
from __future__ import annotations

import os
from collections.abc import Iterable

import orjson
import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY

from services.metrics.families import MULTIPROCESS

__all__ = ["SnapshotCollector", "snapshot_families", "ProcessFamilies", "exposition", "CONTENT_TYPE_LATEST"]


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
    alerts = GaugeMetricFamily("lulupay_alerts", "Alerts of the app's alert engine by state and severity.",
                               labels=["state", "severity"])
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
        for state, severity, count in snap.get("alerts") or []:
            alerts.add_metric([state, severity], count)
        age.add_metric([], max(0.0, now - snap["ts"]))
    return [cpu, memory, disk, load, network, active, partners, quota, month, alerts, age]


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
        from services.metrics.multiproc_text import MultiprocessText
        _multiproc_text = MultiprocessText(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return _multiproc_text.render() + generate_latest(registry)
