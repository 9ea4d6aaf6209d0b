"""HTTP metrics middleware on every Flask route (Dash's callback endpoint labelled by callback name)
and the `/metrics` route."""
from __future__ import annotations

import hmac
import logging
import time


from flask import Flask, Response, g, request

from services import metrics
from services.queries.system import HttpStats

__all__ = ["install", "label_callbacks", "route_label"]

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


def label_callbacks(server: Flask, dash_app) -> None:
    """Name Dash callback requests in the HTTP metrics by their callback (once Dash is built)."""
    server.extensions["lulupay_callback_name"] = _callback_namer(dash_app)


def _callback_namer(dash_app):
    callback_names: dict[str, str] = {}

    def callback_name() -> str:
        # set by app/guard.py once the request passed the gate and the check: a refused request's
        # body is never read here
        output = g.get("callback_output")
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

    return callback_name


# WSGI environ key of the warm-up request a serving process makes to itself (app/factory.py)
WARM_UP = "lulupay.warm_up"


def install(server: Flask, services, http_stats: HttpStats | None = None) -> None:
    """Instrument every request of `server` and add `GET /metrics` (open, or behind
    LULUPAY_METRICS_TOKEN as a bearer token)."""
    http_stats = http_stats if http_stats is not None else services.http_stats
    metrics_token = services.settings.metrics_token

    def callback_name() -> str:
        namer = server.extensions.get("lulupay_callback_name")
        return namer() if namer is not None else "unknown"

    @server.before_request
    def _start_timer():
        if request.path == "/ws":  # a socket's lifetime is not a request duration (WS metrics count it)
            return
        if request.environ.get(WARM_UP):  # the process's own first request (factory.warm_up): not traffic
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
        if request.path != "/ws" and not request.environ.get(WARM_UP):
            metrics.HTTP_IN_FLIGHT.dec()

    snapshot = services.snapshot_collector()

    def metrics_view():
        if metrics_token:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), metrics_token.encode()):
                return Response('{"error": "/metrics needs the bearer token of LULUPAY_METRICS_TOKEN", '
                                '"field": "Authorization"}', status=401, mimetype="application/json",
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.exposition([snapshot]), mimetype=metrics.CONTENT_TYPE_LATEST)

    server.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
