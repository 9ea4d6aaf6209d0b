"""The read API: summary, series, partners — parse, one scoped service call, JSON. Every read takes
the request's scope (`request_scope`): the signed-in principal, the `partner` arguments and the
range, bounded before any work."""
from __future__ import annotations

import re

from flask import Blueprint, request

from app.api.errors import ApiError, install_handlers, json_response, services
from app.auth import current_principal
from services import metrics
from services.export import iso_utc
from services.ingest.events import parse_ts
from services.queries.reader import SERIES_METRICS
from services.scope import MAX_RANGE_S, Scope, scope_for
from services.vocabulary import is_partner_id

__all__ = ["read", "request_scope"]

read = install_handlers(Blueprint("read", __name__))

_STEP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_STEP_S = MAX_RANGE_S


def _time_arg(name: str, default: float) -> float:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}", name) from None


def _requested_partners() -> list[str]:
    """The `partner` arguments (repeated, or comma-separated), checked by the scope."""
    values = request.args.getlist("partner")
    if len(values) > 1000:
        raise ApiError(400, "partner: too many arguments", "partner")
    return [p for value in values for p in value.split(",") if p]


def request_scope(*, with_range: bool = True) -> Scope:
    """The scope of this request: the signed-in principal, the `partner` arguments (a partner it
    may not see → 403), and `from`/`to` (default: the last 24 h), bounded before any work."""
    now = services().clock()
    start = end = 0.0
    if with_range:
        end = _time_arg("to", now)
        start = _time_arg("from", end - 86400)
    return scope_for(current_principal(), requested=_requested_partners(), start=start, end=end,
                     now=now if with_range else None)


def _step_arg() -> int | None:
    value = request.args.get("step")
    if not value:
        return None
    match = re.fullmatch(r"(\d+)([smhdw]?)", value.strip())
    if not match:
        raise ApiError(400, "step: seconds or a duration such as 300, 5m, 1h, 1d", "step")
    if len(match.group(1)) > 12:
        raise ApiError(400, f"step: at most {MAX_STEP_S // 86400} days", "step")
    step = int(match.group(1)) * _STEP_UNITS[match.group(2) or "s"]
    if step > MAX_STEP_S:
        raise ApiError(400, f"step: at most {MAX_STEP_S // 86400} days", "step")
    if step < 60 or step % 60:
        raise ApiError(400, "step: must be a whole number of minutes (at least 60 s)", "step")
    return step


@read.get("/api/v1/summary")
def get_summary():
    """Totals and rates for a period (definitions: README.md)."""
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("summary").time():
        return json_response(services().queries.summary(scope))


@read.get("/api/v1/series/<metric>")
def get_series(metric: str):
    """One metric over time."""
    if metric not in SERIES_METRICS:
        raise ApiError(404, f"unknown metric {metric!r}; one of {', '.join(SERIES_METRICS)}", "metric")
    step = _step_arg()
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("series").time():
        return json_response(services().queries.series(metric, scope, step))


@read.get("/api/v1/partners")
def get_partners():
    """Partners with their current record and quota use this month."""
    scope = request_scope(with_range=False)
    with metrics.QUERY_DURATION.labels("partners").time():
        return json_response({"partners": services().queries.partners(scope)})


@read.get("/api/v1/partners/<partner_id>")
def get_partner(partner_id: str):
    """One partner with the history of its tier and status changes."""
    if not is_partner_id(partner_id):
        raise ApiError(400, "partner_id is not a valid partner id", "partner_id")
    principal = current_principal()
    if not principal.may_see(partner_id):  # another partner's record does not exist for this caller
        raise ApiError(404, "no such partner", "partner_id")
    scope = scope_for(principal, requested=[partner_id])
    with metrics.QUERY_DURATION.labels("partner").time():
        detail = services().partners.detail(scope, partner_id)
    if detail is None:
        raise ApiError(404, "no such partner", "partner_id")
    for field in ("quota_projected_exhaustion_at", "last_build_at"):  # ISO-8601 UTC (DESIGN: the API's dates)
        detail[field] = iso_utc(detail[field])
    return json_response(detail)


@read.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_api(rest: str):
    """Anything under /api/ that is no route: 404 JSON (not the pages' HTML)."""
    raise ApiError(404, f"no such API route: /api/{rest[:200]}", "path")
