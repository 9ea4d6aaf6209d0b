"""What the dashboard pages ask for, one method per panel group: scoped reads through the shared
query cache (results in Redis for a few seconds per query and filter set, single flight per
process), so the callbacks hold no store, cache or source-selection machinery."""
from __future__ import annotations

import math

import orjson

from services.queries import system
from services.queries.anomalies import AnomalyService
from services.queries.assets import AssetService
from services.queries.capacity import CapacityService
from services.queries.forecasts import ForecastService
from services.queries.intelligence import Intelligence
from services.queries.dashboard import DashboardData, executive, monthly_trend
from services.queries.partners import PartnerService
from services.queries.promql import Prometheus
from services.queries.reader import QueryService
from services.scope import Scope
from services.store import Store
from services.store.cache import QueryCache

__all__ = ["Dashboards"]


class Dashboards:
    """Panel data for a scope. Raises StoreUnavailable (and PrometheusUnavailable for the HTTP
    panels when Prometheus is the source): the callbacks turn those into error states."""

    def __init__(self, store: Store, queries: QueryService, *, tier_prices: dict[str, float],
                 prometheus: Prometheus | None = None, cache: QueryCache | None = None,
                 intelligence: Intelligence | None = None, anomalies: AnomalyService | None = None,
                 forecasts: ForecastService | None = None, partner_service: PartnerService | None = None,
                 asset_service: AssetService | None = None, capacity_service: CapacityService | None = None):
        self.store = store
        self.queries = queries
        self.data = DashboardData(queries)
        self.cache = cache or QueryCache(store.client, store.keys.cache_prefix())
        self.tier_prices = tier_prices
        self.prometheus = prometheus
        self.intelligence = intelligence
        self.anomaly_service = anomalies
        self.forecasts = forecasts
        self.partner_service = partner_service
        self.asset_service = asset_service
        self.capacity_service = capacity_service

    def _cached(self, name: str, scope: Scope, compute, key: tuple | None = None):
        return self.cache.get_or_compute(name, scope.cache_key() if key is None else key, compute)

    # -- Operations ------------------------------------------------------------------------------
    def summary(self, scope: Scope) -> dict:
        return self._cached("summary", scope, lambda: self.queries.summary(scope))

    def build_rate(self, scope: Scope) -> dict:
        return self._cached("build_rate", scope, lambda: self.data.build_rate(scope))

    def duration_heatmap(self, scope: Scope) -> dict:
        return self._cached("heatmap", scope, lambda: self.data.duration_heatmap(scope))

    def stage_durations(self, scope: Scope) -> list[dict]:
        return self._cached("stages", scope, lambda: self.data.stage_durations(scope))

    def asset_table(self, scope: Scope) -> list[dict]:
        return self._cached("assets", scope, lambda: self.data.asset_table(scope))

    def system(self, scope: Scope) -> tuple[dict, dict]:
        """(period summary of the collector's host samples, latest sample): host figures, the same
        for every partner set, so cached per range only."""
        now = self.queries.clock()
        summary = self._cached("system", scope, lambda: system.system_summary(self.store, scope.start, scope.end, now),
                               key=scope.cache_key()[:2])
        snapshot = self.store.run(lambda c: c.get(self.store.keys.metrics_snapshot()))
        latest = (orjson.loads(snapshot).get("system") or {}) if snapshot else {}
        return summary, latest

    def http(self, scope: Scope) -> dict:
        """HTTP latency, rate and errors per window: from Prometheus when configured (every
        instance), else the app's own request rollups. Not per partner."""
        now = self.queries.clock()
        key = scope.cache_key()[:2]
        if self.prometheus is not None:
            step = system.series_step(scope.start, scope.end, now)
            return self._cached("http_prom", scope, lambda: self.prometheus.http_series(scope.start, scope.end, step),
                                key=key)
        return self._cached("http", scope, lambda: system.http_series(self.store, scope.start, scope.end, now), key=key)

    # -- Executive -------------------------------------------------------------------------------
    def executive(self, scope: Scope) -> dict:
        return self._cached("executive", scope, lambda: executive(self.queries, scope, self.tier_prices))

    def monthly_trend(self, scope: Scope) -> list[dict]:
        """The last 12 calendar months up to now (the scope's range is not used)."""
        now = self.queries.clock()
        scope = scope.within(now, now)
        return self._cached("monthly", scope, lambda: monthly_trend(self.queries, scope),
                            key=(math.floor(now / 60), scope.partner_list()))

    # -- Build intelligence ----------------------------------------------------------------------
    def failures(self, scope: Scope) -> dict:
        return self._cached("failures", scope, lambda: self.intelligence.failures(scope))

    def bottlenecks(self, scope: Scope) -> dict:
        return self._cached("bottlenecks", scope, lambda: self.intelligence.bottlenecks(scope, ready_only=True))

    def duration_percentiles(self, scope: Scope) -> dict:
        return self._cached("percentiles", scope, lambda: self.intelligence.duration_percentiles(scope))

    def anomalies(self, scope: Scope, metric: str, step: str) -> dict:
        """One metric's anomalies (read with the others: the page shows all three)."""
        return self.all_anomalies(scope, step)[metric]

    def all_anomalies(self, scope: Scope, step: str) -> dict[str, dict]:
        return self._cached(f"anomalies:{step}", scope, lambda: self.anomaly_service.all_metrics(scope, step))

    def forecast(self, scope: Scope, metric: str, step: str, horizon: int) -> dict | None:
        """The cached forecast, or None while it is being computed (never fits a model here)."""
        return self.forecasts.get(metric, step, horizon, scope)

    def builds(self, scope: Scope, **query) -> dict:
        return self.intelligence.builds(scope, ready_only=True, **query)

    def recent_builds(self, scope: Scope, *, filters: dict | None = None, limit: int = 50) -> dict:
        return self._cached("recent_builds", scope, lambda: self.intelligence.recent_builds(
            scope, filters=filters, limit=limit, ready_only=True), key=(*scope.cache_key(), filters, limit))

    def series(self, scope: Scope, metric: str, step_s: int | None = None) -> dict:
        return self._cached(f"series:{metric}:{step_s}", scope, lambda: self.queries.series(metric, scope, step_s))

    # -- Partners ------------------------------------------------------------------------------
    def partner_table(self, scope: Scope) -> list[dict]:
        return self._cached("partner_table", scope, lambda: self.partner_service.table(scope))

    def partner_subscriptions(self, scope: Scope) -> dict:
        return self._cached("partner_subscriptions", scope, lambda: self.partner_service.subscriptions(scope))

    def partner_usage(self, scope: Scope) -> list:
        return self._cached("partner_usage", scope, lambda: self.partner_service.usage_profile(scope))

    def partner_profile(self, fleet: Scope, partner_id: str) -> dict | None:
        """One partner against the fleet (`fleet`: every partner the viewer may see)."""
        return self._cached("partner_profile", fleet, lambda: self.partner_service.profile(
            fleet, partner_id, self.partner_table(fleet)), key=(*fleet.cache_key(), partner_id))

    # -- Assets --------------------------------------------------------------------------------
    def asset_breakdown(self, scope: Scope) -> dict:
        """The period's asset figures (AssetService.breakdown)."""
        return self._cached("asset_breakdown", scope, lambda: self.asset_service.breakdown(scope))

    def asset_trends(self, scope: Scope) -> dict:
        """The asset figures per window, auto step (AssetService.trends)."""
        return self._cached("asset_trends", scope, lambda: self.asset_service.trends(scope))

    # -- Capacity (host and SLA figures are deployment-wide: cached per range only) ---------------
    def availability(self, scope: Scope) -> dict:
        """The period's probes and availability (the system summary the host panels share)."""
        now = self.queries.clock()
        return self._cached("system", scope, lambda: system.system_summary(self.store, scope.start, scope.end, now),
                            key=scope.cache_key()[:2])

    def capacity_resources(self, scope: Scope) -> dict:
        return self._cached("capacity_resources", scope, lambda: self.capacity_service.resources(scope),
                            key=scope.cache_key()[:2])

    def capacity_sla(self, scope: Scope) -> dict:
        return self._cached("capacity_sla", scope, lambda: self.capacity_service.sla(scope), key=scope.cache_key()[:2])

    def ingest_throughput(self, scope: Scope) -> dict:
        return self._cached("ingest_throughput", scope, lambda: self.capacity_service.ingest(scope))

    def build_throughput(self, scope: Scope) -> dict:
        return self._cached("build_throughput", scope, lambda: self.capacity_service.builds(scope))

    # -- shell and Live --------------------------------------------------------------------------
    def partner_names(self, scope: Scope) -> dict[str, str]:
        return self.queries.partner_names(scope)

    def running_builds(self, scope: Scope) -> list[dict]:
        return self.queries.running_builds(scope)

    def store_ok(self) -> bool:
        return self.store.ping()

