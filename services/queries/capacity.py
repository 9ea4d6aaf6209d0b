"""The Capacity page's data (definitions: docs/capacity.md):

* host resources — CPU, memory and disk percent and network bytes/s per window from the collector's
  `sys` buckets, with the trend of their hourly means and the projected time to each threshold
  (services/analytics/capacity.py). Deployment-wide: not partner data;
* SLA compliance — availability from the `/readyz` probes against its objective with the error
  budget left, and p95 request latency from the `http` buckets against its objective, per window
  and over the period. Deployment-wide;
* ingest and build throughput — events accepted per window and finished builds per hour from the
  build rollups, through the query service: scoped like every partner read.
"""
from __future__ import annotations

from collections import defaultdict

from services import sketch
from services.analytics.capacity import HORIZON_S, error_budget, project_crossing
from services.queries.reader import AUTO_STEPS, QueryService
from services.queries.system import (NET_SECONDS, http_histogram, http_requests, probe_availability, read_buckets,
                                     series_windows, system_summary)
from services.scope import Scope, earliest_start
from services.store import Store
from services.store import fields as rf
from services.timerange import cover_range
from services.vocabulary import STAGES

__all__ = ["CapacityService", "RESOURCES", "resource_value", "EVENT_TYPES_COUNTED", "FIT_MIN_S"]

# (name, what the value is, unit)
RESOURCES = (("cpu", "CPU", "%"), ("memory", "Memory", "%"), ("disk", "Disk", "%"), ("network", "Network", "B/s"))
_MEASURE = {"cpu": "cpu_percent", "memory": "memory_percent", "disk": "disk_percent"}
# A trend needs days: the fit takes at least the last 7 days of hourly means before the period's end.
FIT_MIN_S = 7 * 86400
# What "events accepted" counts: every event type the rollups count (partner.upserted is not rolled up).
EVENT_TYPES_COUNTED = ("build.started", "build.finished", "build.stage", "asset.processed")


def resource_value(name: str, fields: dict[str, float]) -> float | None:
    """A window's mean percent (cpu, memory, disk) or network bytes per second (sent + received
    over the seconds the collector's deltas cover); None without samples."""
    if name == "network":
        seconds = fields.get(NET_SECONDS, 0.0)
        total = fields.get("net_sent_delta", 0.0) + fields.get("net_recv_delta", 0.0)
        return total / seconds if seconds > 0 else None
    n = fields.get("n", 0.0)
    return fields.get(f"{_MEASURE[name]}:sum", 0.0) / n if n else None


class CapacityService:
    """Capacity figures for a scope; the thresholds and objectives come from the settings."""

    def __init__(self, store: Store, queries: QueryService, *, thresholds: dict[str, float],
                 slo_availability: float, slo_latency_p95_ms: float):
        self.store = store
        self.queries = queries
        self.clock = queries.clock
        self.thresholds = dict(thresholds)
        self.slo_availability = slo_availability
        self.slo_latency_p95_ms = slo_latency_p95_ms

    def resources(self, scope: Scope) -> dict:
        """Per resource: the period's points, the trend of its hourly means (over the period, and at
        least the `FIT_MIN_S` before its end), the projection and the projected daily peak line."""
        now = self.clock()
        start, end = scope.start, scope.end
        step, windows = series_windows(self.store, "sys", start, end, now)
        fit_start = max(min(start, end - FIT_MIN_S), earliest_start(now))
        hour_step, hours = series_windows(self.store, "sys", fit_start, end, now, 3600)
        # an hourly mean stands for the middle of what its hour covers so far
        middles = [t + (min(t + hour_step, now) - t) / 2 for t, _ in hours]
        horizon = min(max(end - start, 86400.0), HORIZON_S)
        out = {}
        for name, _, _ in RESOURCES:
            threshold = self.thresholds[name]
            projection = project_crossing(middles, [resource_value(name, f) for _, f in hours], threshold, now)
            forecast = []
            if projection.level is not None:
                until = now + horizon
                if projection.status == "crossing" and projection.at <= until:
                    until = projection.at
                forecast = [[projection.last_ts, projection.peak_at(projection.last_ts)],
                            [until, projection.peak_at(until)]]
            out[name] = {"threshold": threshold, "points": [[t, resource_value(name, f)] for t, f in windows],
                         "projection": projection.as_dict(), "forecast": forecast}
        return {"step_s": step, "hour_step_s": hour_step, "now": now, "fit_from": fit_start,
                "samples": int(sum(f.get("n", 0) for _, f in windows)), "resources": out}

    def sla(self, scope: Scope) -> dict:
        """Availability and p95 latency against their objectives, per window and over the period."""
        now = self.clock()
        start, end = scope.start, scope.end
        cover = cover_range(start, end, now)
        summary = system_summary(self.store, start, end, now)
        hist: dict[int, int] = defaultdict(int)
        requests = 0
        for fields in read_buckets(self.store, "http", cover.buckets):
            requests += http_requests(fields)
            for index, count in http_histogram(fields).items():
                hist[index] += count
        (p95_s,) = sketch.quantiles(hist, (0.95,))
        period_s = max(0.0, min(cover.end, now) - cover.start)
        step, sys_windows = series_windows(self.store, "sys", start, end, now)
        _, http_windows = series_windows(self.store, "http", start, end, now, step)
        buckets = []
        for (ts, sys_fields), (_, http_fields) in zip(sys_windows, http_windows):
            up, down, availability = probe_availability(sys_fields)
            (p95,) = sketch.quantiles(http_histogram(http_fields), (0.95,))
            p95_ms = None if p95 is None else p95 * 1000
            buckets.append({"ts": ts, "probes_up": up, "probes_down": down, "availability": availability,
                            "availability_met": None if availability is None else availability >= self.slo_availability,
                            "requests": http_requests(http_fields), "p95_ms": p95_ms,
                            "latency_met": None if p95_ms is None else p95_ms <= self.slo_latency_p95_ms})
        p95_ms = None if p95_s is None else p95_s * 1000
        measured = [b for b in buckets if b["latency_met"] is not None]
        return {
            "step_s": step, "from": cover.start, "to": cover.end, "period_s": period_s,
            "objective_availability": self.slo_availability, "objective_p95_ms": self.slo_latency_p95_ms,
            "probes_up": summary["probes_up"], "probes_down": summary["probes_down"],
            "availability": summary["availability"],
            "budget": error_budget(summary["availability"], self.slo_availability, period_s),
            "requests": requests, "p95_ms": p95_ms,
            "latency_met": None if p95_ms is None else p95_ms <= self.slo_latency_p95_ms,
            "latency_buckets_met": sum(1 for b in measured if b["latency_met"]), "latency_buckets": len(measured),
            "buckets": buckets,
        }

    def ingest(self, scope: Scope) -> dict:
        """Events accepted per window, by type, for the scope's partners (from the build rollups)."""
        step, windows = self.queries.windows(scope, None, ("b", "s", "a"))
        rows = []
        for ts, totals in windows:
            counts = {"build.started": int(totals.count("b", rf.STARTED)),
                      "build.finished": int(totals.count("b", rf.FINISHED)),
                      "build.stage": int(sum(totals.count("s", rf.stage_count(stage)) for stage in STAGES)),
                      "asset.processed": int(totals.count("a", rf.asset("n", "")))}
            total = sum(counts.values())
            rows.append({"ts": ts, **counts, "events": total, "events_per_s": total / step})
        return {"step_s": step, "rows": rows, "events": sum(r["events"] for r in rows)}

    def builds(self, scope: Scope) -> dict:
        """Finished builds per hour (windows of at least an hour) for the scope's partners."""
        span = max(scope.end - scope.start, 60)
        auto = next((s for s in AUTO_STEPS if span / s <= 300), AUTO_STEPS[-1])
        step, windows = self.queries.windows(scope, max(3600, auto), ("b",))
        rows = []
        for ts, totals in windows:
            finished = int(totals.count("b", rf.FINISHED))
            rows.append({"ts": ts, "builds": finished, "per_hour": finished * 3600 / step})
        return {"step_s": step, "rows": rows, "builds": sum(r["builds"] for r in rows)}
