"""The alerts API: alerts (list, acknowledge), silences (list, create, expire) and the rules in force
with their last evaluation — parse, one scoped call of services/alerting/actions.py or overview.py,
JSON with RFC 3339 times. Writes from a session carry the CSRF token (`X-CSRFToken`, checked by the
gate); personal tokens need none."""
from __future__ import annotations

import re

import orjson
from flask import Blueprint, request

from app.api.errors import ApiError, install_handlers, json_response, services
from app.api.read import request_scope
from app.auth import current_principal
from services.alerting.actions import (SILENCE_STATES, STATE_FILTERS, ActionError, acknowledge_alert, alert_rows,
                                       create_silence, expire_silence, visible_silences)
from services.alerting.overview import rule_rows
from services.export import iso_utc
from services.vocabulary import ALERT_SEVERITIES

__all__ = ["alerts", "api_alert", "api_silence"]

alerts = install_handlers(Blueprint("alerts", __name__))
alerts.register_error_handler(ActionError, lambda exc: json_response({"error": exc.message, "field": exc.field},
                                                                      exc.status))

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ALERT_TIMES = ("started_at", "firing_at", "resolved_at", "ack_at")
_SILENCE_TIMES = ("starts_at", "ends_at", "created_at")


def api_alert(row: dict) -> dict:
    """An alert row with its times in RFC 3339 UTC."""
    return {**row, **{k: iso_utc(row.get(k)) for k in _ALERT_TIMES}}


def api_silence(row: dict) -> dict:
    """A silence row with its times in RFC 3339 UTC."""
    return {**row, **{k: iso_utc(row.get(k)) for k in _SILENCE_TIMES}}


def _choice(name: str, allowed, default: str) -> str:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise ApiError(400, f"{name}: one of {', '.join(allowed)}", name)
    return value


def _severities() -> list[str]:
    values = [v for arg in request.args.getlist("severity") for v in arg.split(",") if v]
    if any(v not in ALERT_SEVERITIES for v in values):
        raise ApiError(400, f"severity: one or more of {', '.join(ALERT_SEVERITIES)}", "severity")
    return sorted(set(values))


def _json_body(*, required: bool) -> dict:
    """The request's JSON object (an empty body is `{}` unless `required`)."""
    json = request.mimetype == "application/json"
    if not json and (request.content_length or request.form or request.files):  # a form the CSRF check read
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)", "Content-Type")
    body = request.get_data(cache=True)
    if not body.strip():
        if required:
            raise ApiError(400, "body: a JSON object is required", "body")
        return {}
    if not json:
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)", "Content-Type")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body: malformed JSON: {exc}", "body") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body: must be a JSON object", "body")
    return doc


def _path_id(value: str, field: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ApiError(404, f"no such {what}", field)
    return value


@alerts.get("/api/v1/alerts")
def list_alerts():
    """The alerts the caller may see: `state` (default active = pending + firing), `severity`, `partner`."""
    state = _choice("state", STATE_FILTERS, "active")
    severities = _severities()
    scope = request_scope(with_range=False)
    rows = alert_rows(services().alert_store, scope, state=state, severities=severities, now=services().clock())
    return json_response({"alerts": [api_alert(r) for r in rows]})


@alerts.post("/api/v1/alerts/<alert_id>/ack")
def ack_alert(alert_id: str):
    """Acknowledge a pending or firing alert (404: unknown or not the caller's; 409: not pending/firing)."""
    alert_id = _path_id(alert_id, "alert_id", "alert")
    doc = _json_body(required=False)
    unknown = sorted(str(k)[:64] for k in doc if k != "comment")
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown field (known: comment)", unknown[0])
    comment = doc.get("comment")
    row = acknowledge_alert(services(), current_principal(), alert_id, "" if comment is None else comment,
                            services().clock())
    return json_response(api_alert(row))


@alerts.get("/api/v1/silences")
def list_silences():
    """The silences the caller may see: `state` (active, pending, expired; default all), `partner`."""
    state = _choice("state", (*SILENCE_STATES, "all"), "all")
    scope = request_scope(with_range=False)
    requested = scope.partner_list() if request.args.getlist("partner") else None
    rows = visible_silences(services().alert_store, scope.principal, services().clock(),
                            states=SILENCE_STATES if state == "all" else (state,), partners=requested)
    return json_response({"silences": [api_silence(r) for r in rows]})


@alerts.post("/api/v1/silences")
def post_silence():
    """Create a silence: `{matchers, starts_at, ends_at, comment}` → 201 with the silence (its `id`)."""
    doc = _json_body(required=True)
    row = create_silence(services().alert_store, current_principal(), doc, services().clock())
    return json_response(api_silence(row), 201)


@alerts.delete("/api/v1/silences/<silence_id>")
def delete_silence(silence_id: str):
    """Expire a silence now (it is kept, expired); 404 for an unknown one or one not the caller's."""
    silence_id = _path_id(silence_id, "silence_id", "silence")
    row = expire_silence(services().alert_store, current_principal(), silence_id, services().clock())
    return json_response(api_silence(row))


@alerts.get("/api/v1/alert-rules")
def list_rules():
    """The rules in force with their last evaluation (values of the caller's partners only)."""
    scope = request_scope(with_range=False)
    view = rule_rows(services().alert_rules, services().alert_store, scope)
    for rule in view["rules"]:
        if rule["evaluation"]:
            rule["evaluation"] = {**rule["evaluation"], "evaluated_at": iso_utc(rule["evaluation"]["evaluated_at"])}
    return json_response(view)
