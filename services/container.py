"""The bound set of services one app (or CLI command) uses."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.ingest.service import IngestService
from services.store.keys import Keys
from services.metrics import PartnerLabels, record_events
from services.realtime import build_messages, publish_many
from services.queries.reader import QueryService
from services.store import Store, connect

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    """Store, ingest and queries, bound to one settings object and one Redis client."""

    settings: object
    store: Store
    ingest: IngestService
    queries: QueryService
    clock: Callable[[], float] = time.time
    # Called with every accepted batch (metrics and the realtime hub subscribe here).
    listeners: list[Callable[[list[dict]], None]] = field(default_factory=list)
    # Partner id → bounded metric label (services/metrics.PartnerLabels).
    partner_labels: object = None

    def visible_partners(self) -> set[str] | None:
        """Partners the current caller may see; None = all. (Roles arrive with the auth issue:
        until then every caller is an admin, and every query already takes this set.)"""
        return None


def build_services(settings, *, redis_url: str | None = None, clock: Callable[[], float] = time.time) -> Services:
    """Bind the services to `settings` (and the Redis at `redis_url`, default settings.redis_url)."""
    url = redis_url or settings.redis_url
    if not url:
        raise ValueError("no Redis URL: set REDIS_URL or start the embedded store first")
    store = Store(connect(url), Keys(settings.key_prefix))
    listeners: list[Callable[[list[dict]], None]] = []

    def notify(events: list[dict]) -> None:
        for listener in listeners:
            listener(events)

    labels = PartnerLabels(store.client, store.keys.metrics_partner_labels(),
                           getattr(settings, "metrics_partner_cap", 100))
    listeners.append(lambda events: record_events(events, labels))
    listeners.append(lambda events: publish_many(store, build_messages(events, clock(), settings.live_window_s)))
    return Services(
        settings=settings, store=store, clock=clock, listeners=listeners, partner_labels=labels,
        ingest=IngestService(store, retention_s=settings.retention_s, live_window_s=settings.live_window_s,
                             future_tolerance_s=settings.future_tolerance_s, clock=clock, on_ingested=notify),
        queries=QueryService(store, live_window_s=settings.live_window_s, clock=clock),
    )
