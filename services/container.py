"""The composition root: every service of one app (or CLI command) is built here, once, from the
settings and a Redis URL — nothing else constructs a service."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from services.auth.users import UserStore
from services.collector import Collector
from services.ingest.service import IngestService
from services.analytics.forecast import forecast
from services.offload import Offload, build_facts
from services.probe import Prober
from services.metrics import PartnerLabels, SnapshotCollector, record_events
from services.queries.anomalies import AnomalyService
from services.queries.assets import AssetService
from services.queries.boards import Dashboards
from services.queries.capacity import CapacityService
from services.queries.buildlog import BuildLog
from services.queries.forecasts import Forecaster, ForecastService
from services.alerting.delivery import DeliveryQueue, DeliveryWorker
from services.alerting.engine import AlertEngine
from services.alerting.history import AlertHistory
from services.alerting.rules import RulesFile, load_rules
from services.alerting.store import AlertStore
from services.queries.intelligence import Intelligence
from services.queries.partners import PartnerService
from services.queries.promql import Prometheus
from services.queries.reader import QueryService
from services.queries.system import HttpStats
from services.realtime import Hub, build_messages, publish_many
from services.store import Store, connect
from services.store.keys import Keys

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["Services", "Background", "build_services"]

log = logging.getLogger(__name__)

ALERT_DELIVERY_POLL_S = 2.0  # how often each process looks for due notifications
FIT_TIMEOUT_S = 120.0  # a forecast fit is 1–2 s on the demo; one that takes this long is abandoned


@dataclass
class Services:
    """Every service, bound to one settings object and one Redis client."""

    settings: "Settings"
    store: Store
    ingest: IngestService
    queries: QueryService
    dashboards: Dashboards
    users: UserStore
    partner_labels: PartnerLabels
    intelligence: Intelligence
    anomalies: AnomalyService
    forecasts: ForecastService
    partners: PartnerService
    assets: AssetService
    alerts: AlertHistory
    alert_store: AlertStore
    alert_rules: RulesFile | None = None  # None: LULUPAY_ALERT_RULES=off
    redis_url: str = ""
    clock: Callable[[], float] = time.time
    # Called with every accepted batch (metrics and the realtime channel subscribe here).
    listeners: list[Callable[[list[dict]], None]] = field(default_factory=list)
    _hub: Hub | None = field(default=None, repr=False)
    _http_stats: HttpStats | None = field(default=None, repr=False)

    @property
    def hub(self) -> Hub:
        """This process's realtime hub (its threads start with the first /ws client)."""
        if self._hub is None:
            self._hub = Hub(self.store, queue_size=self.settings.ws_queue_size, idle_s=self.settings.ws_idle_s)
        return self._hub

    @property
    def http_stats(self) -> HttpStats:
        """This process's buffer of HTTP request statistics (flushed by `Background`)."""
        if self._http_stats is None:
            self._http_stats = HttpStats(self.store, interval_s=self.settings.collector_interval_s, clock=self.clock)
        return self._http_stats

    def delivery(self) -> DeliveryQueue:
        """A notification delivery queue on this store (one per thread: it holds an HTTP session)."""
        settings = self.settings
        return DeliveryQueue(self.store, clock=self.clock, http_timeout_s=settings.alert_delivery_timeout_s,
                             max_age_s=settings.alert_delivery_max_age_s,
                             lease_s=max(30.0, 3 * settings.alert_delivery_timeout_s),
                             retention_s=settings.retention_s)

    def snapshot_collector(self) -> SnapshotCollector:
        """The deployment's metric families, read from the collector's snapshot at scrape time."""
        return SnapshotCollector(self.store.client, self.store.keys.metrics_snapshot(), self.clock)

    def collector(self, *, interval_s: float | None = None, disk_path: Path | None = None) -> Collector:
        """A collector candidate of this deployment (one leader at a time, elected in the store)."""
        prober = Prober(self.settings.probe_target, timeout_s=self.settings.probe_timeout_s, clock=self.clock)
        engine = AlertEngine(self, self.alert_rules) if self.alert_rules is not None else None
        return Collector(self, interval_s=interval_s or self.settings.collector_interval_s,
                         disk_path=disk_path or _existing(self.settings.data_dir), labels=self.partner_labels,
                         prober=prober, engine=engine, alert_interval_s=self.settings.alert_interval_s)


class Background:
    """A web process's background parts: the collector candidate (when enabled) and the HTTP
    statistics flusher. `start()` after the fork (gunicorn) or in `serve`; `stop()` at shutdown
    closes the /ws clients and flushes what is buffered."""

    def __init__(self, services: Services):
        self.hub = services.hub
        self.http_stats = services.http_stats
        self.collector = services.collector() if services.settings.collector_enabled else None
        settings = services.settings
        # notifications are delivered by every process (claims with leases: never twice at once)
        rules = services.alert_rules
        self.delivery = DeliveryWorker(services.delivery(), interval_s=ALERT_DELIVERY_POLL_S) \
            if rules is not None and rules.receivers else None
        self.offload = self.forecaster = None
        if settings.forecaster_enabled:
            warm, fit = _in_process_work(services)
            if settings.background_process and services.clock is time.time:  # a child runs on real time
                self.offload = Offload(nice=settings.background_process_nice)
                warm, fit = _offloaded_work(services, self.offload)
            self.forecaster = Forecaster(services.forecasts, refresh_s=settings.forecast_refresh_s, warm=warm, fit=fit)

    def start(self) -> "Background":
        self.http_stats.start()
        if self.delivery is not None:
            self.delivery.start()
        if self.collector is not None:
            self.collector.start()
        if self.forecaster is not None:
            self.forecaster.start()
        return self

    def stop(self) -> None:
        self.hub.stop()
        if self.forecaster is not None:
            self.forecaster.stop()
        if self.offload is not None:
            self.offload.close()
        if self.collector is not None:
            self.collector.stop()
        if self.delivery is not None:
            self.delivery.stop()
        self.http_stats.stop()


def _in_process_work(services: Services):
    """(warm, fit) of the forecaster run on its own thread."""
    days = services.settings.retention_days
    return (lambda stop: services.intelligence.log.warm(days, stop)), forecast


def _offloaded_work(services: Services, offload: Offload):
    """(warm, fit) of the forecaster run in the background's child process (services.offload)."""
    settings = services.settings

    def warm(stop) -> int:
        return offload.call(build_facts, services.redis_url, settings.key_prefix, settings.retention_s,
                            settings.retention_days, settings.store_timeout_s)

    def fit(history, **kwargs):
        return offload.call(forecast, history, timeout_s=FIT_TIMEOUT_S, **kwargs)

    return warm, fit


def build_services(settings: "Settings", *, redis_url: str | None = None,
                   clock: Callable[[], float] = time.time) -> Services:
    """Bind every service to `settings` (and the Redis at `redis_url`, default settings.store_url)."""
    url = redis_url or settings.store_url
    if not url:
        raise ValueError("no Redis URL: set REDIS_URL or start the embedded store first")
    store = Store(connect(url, timeout_s=settings.store_timeout_s), Keys(settings.key_prefix),
                  durability=settings.ingest_durability, replicas=settings.ingest_replicas,
                  wait_s=settings.store_timeout_s * 0.75)
    listeners: list[Callable[[list[dict]], None]] = []

    def notify(events: list[dict]) -> None:
        for listener in listeners:
            listener(events)

    labels = PartnerLabels(store.client, store.keys.metrics_partner_labels(), settings.metrics_partner_cap)
    listeners.append(lambda events: record_events(events, labels))
    listeners.append(lambda events: publish_many(store, build_messages(events, clock(), settings.live_window_s)))
    queries = QueryService(store, live_window_s=settings.live_window_s, clock=clock)
    prometheus = Prometheus(settings.prometheus_url) if settings.prometheus_url else None
    intelligence = Intelligence(queries, BuildLog(store, clock=clock, retention_s=settings.retention_s,
                                                       cached_days=settings.build_log_days))
    anomalies = AnomalyService(queries)
    forecasts = ForecastService(store, queries, clock=clock)
    partners = PartnerService(queries)
    assets = AssetService(queries)
    return Services(
        settings=settings, store=store, clock=clock, listeners=listeners, partner_labels=labels,
        ingest=IngestService(store, retention_s=settings.retention_s, live_window_s=settings.live_window_s,
                             future_tolerance_s=settings.future_tolerance_s, clock=clock, on_ingested=notify),
        queries=queries,
        dashboards=Dashboards(store, queries, tier_prices=settings.tier_prices, prometheus=prometheus,
                              intelligence=intelligence, anomalies=anomalies, forecasts=forecasts,
                              partner_service=partners, asset_service=assets,
                              capacity_service=_capacity(settings, store, queries)),
        users=UserStore(store, clock=clock),
        intelligence=intelligence, anomalies=anomalies, forecasts=forecasts, partners=partners, assets=assets,
        alerts=AlertHistory(store, retention_s=settings.retention_s, clock=clock),
        alert_store=AlertStore(store, retention_s=settings.retention_s),
        alert_rules=load_rules(settings.alert_rules_path) if settings.alert_rules_path else None, redis_url=url,
    )


def _capacity(settings: "Settings", store: Store, queries: QueryService) -> CapacityService:
    """The Capacity page's service with the configured thresholds and objectives."""
    thresholds = {"cpu": settings.capacity_cpu_percent, "memory": settings.capacity_memory_percent,
                  "disk": settings.capacity_disk_percent, "network": settings.capacity_network_bytes_s}
    return CapacityService(store, queries, thresholds=thresholds, slo_availability=settings.slo_availability,
                           slo_latency_p95_ms=settings.slo_latency_p95_ms)


def _existing(path) -> Path:
    """The nearest existing directory at or above `path` (the disk the data lives on)."""
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
