"""The build intelligence API: forecasts, anomalies, failure signatures, bottlenecks — parse, one
scoped service call, JSON (definitions: docs/intelligence.md)."""
from __future__ import annotations

from flask import Blueprint, request

from app.api.errors import ApiError, install_handlers, json_response, services
from app.api.read import request_scope
from services import metrics
from services.queries.anomalies import ANOMALY_METRICS, ANOMALY_STEPS
from services.queries.forecasts import FORECAST_METRICS, FORECAST_STEPS, parse_horizon

__all__ = ["intelligence"]

intelligence = install_handlers(Blueprint("intelligence", __name__))


def _choice(name: str, allowed, default: str) -> str:
    value = request.args.get(name) or default
    if value not in allowed:
        raise ApiError(400, f"{name}: one of {', '.join(allowed)}", name)
    return value


@intelligence.get("/api/v1/forecast/<metric>")
def get_forecast(metric: str):
    """A metric's forecast with 80/95 % intervals and the backtest that chose the model."""
    if metric not in FORECAST_METRICS:
        raise ApiError(404, f"unknown metric {metric!r}; one of {', '.join(FORECAST_METRICS)}", "metric")
    step = _choice("step", FORECAST_STEPS, "1d")
    try:
        horizon = parse_horizon(request.args.get("horizon"), FORECAST_STEPS[step])
    except ValueError as exc:
        raise ApiError(400, str(exc), "horizon") from None
    scope = request_scope(with_range=False)
    with metrics.QUERY_DURATION.labels("forecast").time():
        result = services().forecasts.get(metric, step, horizon, scope, wait_s=services().settings.forecast_wait_s)
    if result is None:
        return json_response({"metric": metric, "status": "computing",
                              "note": "the forecast is being computed; retry shortly"}, 202, {"Retry-After": "2"})
    return json_response(result)


@intelligence.get("/api/v1/anomalies")
def get_anomalies():
    """Buckets of the period outside their expected seasonal band, with their top contributors."""
    metric = _choice("metric", ANOMALY_METRICS, "success_rate")
    step = _choice("step", ANOMALY_STEPS, "1h")
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("anomalies").time():
        return json_response(services().dashboards.anomalies(scope, metric, step))


@intelligence.get("/api/v1/failures")
def get_failures():
    """Failed builds of the period grouped by normalised error signature."""
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("failures").time():
        return json_response(services().dashboards.failures(scope))


@intelligence.get("/api/v1/bottlenecks")
def get_bottlenecks():
    """Each stage's share of build time and of the slowest 5 % of builds, and the stage driving them."""
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("bottlenecks").time():
        return json_response(services().intelligence.bottlenecks(scope))
