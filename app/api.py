"""HTTP API (Flask blueprint): ingest, read API, health. Thin: parse → one service call → JSON."""
from __future__ import annotations

import hmac
import re
import time
from typing import Literal

import orjson
from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from services import metrics
from app.auth import current_principal
from services.ingest.events import nul_errors, parse_ts
from services.ingest.service import BatchInvalid
from services.queries.reader import SERIES_METRICS, TooMuchWork
from services.scope import MAX_RANGE_S, Scope, ScopeError, scope_for
from services.store import StoreUnavailable
from services.vocabulary import is_partner_id

__all__ = ["api", "ApiError", "json_response", "request_scope"]

api = Blueprint("api", __name__)

RETRY_AFTER_S = 5
_STEP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_STEP_S = MAX_RANGE_S


class ApiError(Exception):
    """A 4xx/5xx answer with a message naming the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, field, extra


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=status,
                    mimetype="application/json", headers=headers)


def _services():
    return current_app.extensions["lulupay"]


@api.errorhandler(ApiError)
def _api_error(exc: ApiError):
    body = {"error": exc.message}
    if exc.field:
        body["field"] = exc.field
    body.update(exc.extra)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return json_response(body, exc.status, headers)


@api.app_errorhandler(ScopeError)
def _scope_error(exc: ScopeError):
    return json_response({"error": exc.message, "field": exc.field}, exc.status)


@api.app_errorhandler(TooMuchWork)
def _too_much_work(exc: TooMuchWork):
    return json_response({"error": str(exc), "field": exc.field}, 400)


@api.errorhandler(StoreUnavailable)
def _store_down(exc):
    return json_response({"error": "the store is unreachable; retry later"}, 503, {"Retry-After": str(RETRY_AFTER_S)})


@api.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    limit = _services().settings.max_body_bytes
    return json_response({"error": f"request body larger than {limit} bytes"}, 413)


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return json_response({"error": exc.description or exc.name}, exc.code or 500)


# -- ingest ------------------------------------------------------------------------------------
def _check_token() -> None:
    tokens = _services().settings.ingest_token_list
    if not tokens:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)", "Authorization")
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise ApiError(401, "invalid ingest token", "Authorization")


@api.post("/api/v1/events")
def post_events():
    """Ingest one event or {"events": [...]}; the batch is validated whole."""
    settings = _services().settings
    _check_token()
    if request.mimetype != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)", "Content-Type")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        raise RequestEntityTooLarge()
    body = request.get_data(cache=False)
    if len(body) > settings.max_body_bytes:
        raise RequestEntityTooLarge()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}", "body") from None
    if isinstance(doc, dict) and "events" in doc:
        events = doc["events"]
        if not isinstance(events, list):
            raise ApiError(422, "events must be a list of event objects", "events")
    elif isinstance(doc, dict):
        events = [doc]
    else:
        raise ApiError(422, "body must be an event object or {\"events\": [...]}", "body")
    if len(events) > settings.max_batch_events:
        raise ApiError(413, f"batch of {len(events)} events; at most {settings.max_batch_events} per request", "events")
    if b"\\u0000" in body and (nul := nul_errors(events)):  # JSON can carry a NUL only escaped
        metrics.INGEST_EVENTS.labels("rejected").inc(len(events))
        raise ApiError(422, f"{len({d['index'] for d in nul})} of {len(events)} events are invalid; nothing of this "
                            "batch was stored", details=nul)
    started = time.perf_counter()
    try:
        result = _services().ingest.ingest_batch(events)
    except BatchInvalid as exc:
        bad = len({d["index"] for d in exc.details})
        metrics.INGEST_EVENTS.labels("rejected").inc(len(events))
        raise ApiError(422, f"{bad} of {len(events)} events are invalid; nothing of this batch was stored",
                       details=exc.details) from None
    seconds = time.perf_counter() - started
    metrics.INGEST_DURATION.observe(seconds)
    metrics.INGEST_EVENTS.labels("accepted").inc(result.accepted)
    metrics.INGEST_EVENTS.labels("duplicate").inc(result.duplicates)
    current_app.logger.debug("ingested %d events in %.1f ms", result.accepted, seconds * 1e3)
    return json_response({"accepted": result.accepted, "duplicates": result.duplicates}, 202)


# -- read API ----------------------------------------------------------------------------------
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


def request_scope(*, with_range: bool = True, explicit: Literal["deny", "drop"] = "deny") -> Scope:
    """The scope of this request: the signed-in principal, the `partner` arguments (a partner it
    may not see → 403), and `from`/`to` (default: the last 24 h), bounded before any work."""
    now = _services().clock()
    start = end = 0.0
    if with_range:
        end = _time_arg("to", now)
        start = _time_arg("from", end - 86400)
    return scope_for(current_principal(), requested=_requested_partners(), start=start, end=end,
                     now=now if with_range else None, explicit=explicit)


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


@api.get("/api/v1/summary")
def get_summary():
    """Totals and rates for a period (definitions: DESIGN.md)."""
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("summary").time():
        return json_response(_services().queries.summary(scope))


@api.get("/api/v1/series/<metric>")
def get_series(metric: str):
    """One metric over time."""
    if metric not in SERIES_METRICS:
        raise ApiError(404, f"unknown metric {metric!r}; one of {', '.join(SERIES_METRICS)}", "metric")
    step = _step_arg()
    scope = request_scope()
    with metrics.QUERY_DURATION.labels("series").time():
        return json_response(_services().queries.series(metric, scope, step))


@api.get("/api/v1/partners")
def get_partners():
    """Partners with their current record and quota use this month."""
    scope = request_scope(with_range=False)
    with metrics.QUERY_DURATION.labels("partners").time():
        return json_response({"partners": _services().queries.partners(scope)})


@api.get("/api/v1/partners/<partner_id>")
def get_partner(partner_id: str):
    """One partner with the history of its tier and status changes."""
    if not is_partner_id(partner_id):
        raise ApiError(400, "partner_id is not a valid partner id", "partner_id")
    principal = current_principal()
    if not principal.may_see(partner_id):  # another partner's record does not exist for this caller
        raise ApiError(404, "no such partner", "partner_id")
    scope = scope_for(principal, requested=[partner_id])
    records = _services().queries.partners(scope)
    if not records:
        raise ApiError(404, "no such partner", "partner_id")
    return json_response({**records[0], "history": _services().queries.partner_history(scope, partner_id)})


@api.route("/api/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown_api(rest: str):
    """Anything under /api/ that is no route: 404 JSON (not the pages' HTML)."""
    raise ApiError(404, f"no such API route: /api/{rest[:200]}", "path")


@api.get("/healthz")
def healthz():
    """The process is alive."""
    return json_response({"status": "ok"})


@api.get("/readyz")
def readyz():
    """The store answers."""
    if _services().store.ping():
        return json_response({"status": "ready", "store": "ok"})
    return json_response({"status": "unavailable", "store": "unreachable"}, 503, {"Retry-After": str(RETRY_AFTER_S)})
