"""HTTP metrics middleware on every Flask route (Dash's callback endpoint labelled by callback name),
the `/metrics` route, and the per-process background parts (collector, HTTP statistics flusher)."""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from services import metrics
from services.collector import Collector
from services.queries.system import HttpStats

__all__ = ["install", "Background", "route_label"]

log = logging.getLogger(__name__)

DASH_CALLBACK_PATH = "/_dash-update-component"
UNMATCHED = "unmatched"


def route_label(rule: str | None, callback: str | None = None) -> str:
    """The bounded route label: the URL rule's template, `dash:<callback>` for Dash callbacks,
    `unmatched` for 404s (never the raw path)."""
    if rule is None:
        return UNMATCHED
    if callback is not None:
        return f"dash:{callback}"
    return rule


def install(server: Flask, dash_app, services, http_stats: HttpStats | None) -> None:
    """Instrument every request of `server` and add `GET /metrics`."""
    callback_names: dict[str, str] = {}

    def callback_name() -> str:
        body = request.get_json(silent=True, cache=True)
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, str):
            return "unknown"
        name = callback_names.get(output)
        if name is None:
            entry = dash_app.callback_map.get(output)
            if entry is None:
                return "unknown"
            func = entry.get("callback")
            name = getattr(getattr(func, "__wrapped__", func), "__name__", "unknown")
            callback_names[output] = name
        return name

    @server.before_request
    def _start_timer():
        if request.path == "/ws":  # a socket's lifetime is not a request duration (WS metrics count it)
            return
        g._lp_started = time.perf_counter()
        metrics.HTTP_IN_FLIGHT.inc()

    @server.after_request
    def _record(response):
        started = g.pop("_lp_started", None)
        if started is None:
            return response
        seconds = time.perf_counter() - started
        rule = request.url_rule.rule if request.url_rule is not None else None
        callback = callback_name() if rule == DASH_CALLBACK_PATH else None
        route = route_label(rule, callback)
        metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(request.method, route).observe(seconds)
        if http_stats is not None and rule != "/metrics":
            http_stats.record(response.status_code, seconds)
        return response

    @server.teardown_request
    def _in_flight_done(_exc):
        if request.path != "/ws":
            metrics.HTTP_IN_FLIGHT.dec()

    snapshot = metrics.SnapshotCollector(services.store.client, services.store.keys.metrics_snapshot(),
                                         services.clock)

    def metrics_view():
        return Response(metrics.exposition([snapshot]), mimetype=metrics.CONTENT_TYPE_LATEST)

    server.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


class Background:
    """The per-process background parts: the collector (when enabled) and the HTTP statistics
    flusher. `start()` after the fork (gunicorn) or in `serve`; `stop()` at shutdown flushes."""

    def __init__(self, services, http_stats: HttpStats, labels: metrics.PartnerLabels, hub=None):
        settings = services.settings
        self.hub = hub
        self.http_stats = http_stats
        self.collector = (Collector(services, interval_s=settings.collector_interval_s,
                                    disk_path=_existing(settings.data_dir), labels=labels)
                          if settings.collector_enabled else None)

    def start(self) -> "Background":
        self.http_stats.start()
        if self.collector is not None:
            self.collector.start()
        return self

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        if self.collector is not None:
            self.collector.stop()
        self.http_stats.stop()


def _existing(path):
    """The nearest existing directory at or above `path` (the disk the data lives on)."""
    from pathlib import Path
    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p
