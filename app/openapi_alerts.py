"""The alerts API's part of the OpenAPI document (app/openapi.py merges it): its models and paths."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from services.alerting.actions import SILENCE_STATES, STATE_FILTERS
from services.vocabulary import ALERT_SEVERITIES, PARTNER_ID_PATTERN

__all__ = ["ALERT_MODELS", "alert_paths"]

_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}


class Alert(BaseModel):
    id: str = Field(description="the fingerprint of the alert's labels (16 hex digits)")
    rule: str
    severity: str = Field(description="the current severity (after escalation)")
    state: str = Field(description="pending, firing or resolved")
    partner_id: str | None = Field(description="null: about the deployment (seen only by admin and staff)")
    labels: dict[str, str] = Field(description="alertname, severity (current), partner_id and the rule's labels")
    value: float | None = Field(description="the last value that met the condition, in the metric's unit")
    threshold: float
    summary: str
    description: str
    started_at: str | None = Field(description="RFC 3339 UTC: when it became pending (or firing with for: 0s)")
    firing_at: str | None
    resolved_at: str | None
    acknowledged: bool
    ack_by: str | None
    ack_at: str | None
    ack_comment: str | None
    silenced: bool = Field(description="a silence in force suppresses its notifications")
    silenced_by: list[str] = Field(description="ids of the silences in force (that the caller may see) matching it")
    escalation_level: int = Field(description="escalation steps applied")


class Alerts(BaseModel):
    alerts: list[Alert]


class MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the request bodies: an unknown field is a 400 naming it

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    value: str = Field(max_length=1024, description="at most 1024 characters; a regex (is_regex) at most 256, "
                                                    "RE2's syntax (no back-references, look-arounds or inline "
                                                    "flags), matched whole in time linear in the label value")
    is_regex: bool = False
    is_equal: bool = True


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherIn] = Field(min_length=1, max_length=32)
    starts_at: datetime | float | None = Field(None, description=(
        "RFC 3339 or epoch seconds; default now; a start in the past is now (at most a day back), at most 90 days "
        "ahead"))
    ends_at: datetime | float = Field(description=(
        "RFC 3339 or epoch seconds; in the future, after starts_at, at most 90 days after it"))
    comment: str = Field("", max_length=1024, description="at most 1024 characters, no NUL")


class Silence(BaseModel):
    id: str
    matchers: list[MatcherIn]
    starts_at: str
    ends_at: str
    author: str = Field(description="the name of the user who created it")
    comment: str
    created_at: str | None
    state: str = Field(description="pending, active or expired, now")


class Silences(BaseModel):
    silences: list[Silence]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field("", max_length=1024, description="at most 1024 characters, no NUL")


class RuleValue(BaseModel):
    partner_id: str | None
    value: float | None
    condition: bool


class RuleEvaluation(BaseModel):
    evaluated_at: str | None
    values: list[RuleValue] = Field(description="at most 50, worst first; only the caller's partners (a partner "
                                                "manager gets no deployment-wide value)")
    values_total: int = Field(description="values of the evaluation (the caller's partners)")
    conditions_true: int = Field(description="of them, those meeting the condition")
    error: str | None


class AlertRule(BaseModel):
    name: str
    severity: str
    metric: str
    op: str
    threshold: float
    window_s: int | None
    for_s: int
    keep_firing_for_s: int
    per_partner: bool
    partner: str | None
    min_builds: int
    labels: dict[str, str]
    summary: str = Field(description="the summary template")
    escalate: list[dict[str, Any]]
    alerts: dict[str, int] = Field(description="pending and firing alerts of the rule that the caller sees")
    evaluation: RuleEvaluation | None = Field(description="null until the engine has evaluated the rule")


class AlertRules(BaseModel):
    enabled: bool = Field(description="false: no rules file is loaded (LULUPAY_ALERT_RULES=off)")
    rules: list[AlertRule]


ALERT_MODELS = {"Alert": Alert, "Alerts": Alerts, "SilenceIn": SilenceIn, "Silence": Silence, "Silences": Silences,
                "AckIn": AckIn, "AlertRules": AlertRules}


def alert_paths(json_ref: Callable[[str, str], dict], errors: dict, security: list) -> dict[str, Any]:
    """The paths of app/api/alerts.py; `json_ref(schema, description)` makes a JSON response."""
    partner = {"name": "partner", "in": "query", "schema": {"type": "array", "items": {
        "type": "string", "pattern": PARTNER_ID_PATTERN}}, "explode": True,
        "description": "repeat for several partners; none = every partner the caller may see"}
    csrf = {"name": "X-CSRFToken", "in": "header", "schema": {"type": "string"},
            "description": "with a session cookie: the session's CSRF token (the pages hold it); not needed "
                           "with a personal API token"}
    writes = {k: v for k, v in errors.items() if k != "403"}
    body = lambda ref: {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}  # noqa: E731
    return {
        "/api/v1/alerts": {"get": {
            "summary": "The alerts the caller may see, critical first then oldest first", "security": security,
            "parameters": [
                {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATE_FILTERS)},
                 "description": "active (pending + firing, the default), pending, firing, resolved (kept a day) "
                                "or all"},
                {"name": "severity", "in": "query", "schema": {"type": "array", "items": {
                    "type": "string", "enum": list(ALERT_SEVERITIES)}}, "explode": True,
                 "description": "repeat (or comma-separate) for several; none = every severity"},
                partner],
            "responses": {"200": json_ref("Alerts", "alerts"), **errors}}},
        "/api/v1/alerts/{alert_id}/ack": {"post": {
            "summary": "Acknowledge a pending or firing alert (stops its escalation; recorded in the history)",
            "security": security,
            "parameters": [{"name": "alert_id", "in": "path", "required": True, "schema": _ID}, csrf],
            "requestBody": {"required": False, **body("AckIn")},
            "responses": {"200": json_ref("Alert", "the alert, acknowledged"),
                          "404": json_ref("Error", "no such alert (or not one the caller may see)"),
                          "409": json_ref("Error", "the alert is not pending or firing (field: state)"),
                          "415": json_ref("Error", "a body that is not application/json"), **writes}}},
        "/api/v1/silences": {
            "get": {"summary": "The silences the caller may see (a partner manager: those with partner_id=\"<one "
                               "of theirs>\")", "security": security,
                    "parameters": [{"name": "state", "in": "query", "schema": {
                        "type": "string", "enum": [*SILENCE_STATES, "all"]}, "description": "default all"}, partner],
                    "responses": {"200": json_ref("Silences", "silences: active, then pending, then expired"),
                                  **errors}},
            "post": {"summary": "Create a silence (author: the caller)", "security": security, "parameters": [csrf],
                     "requestBody": {"required": True, **body("SilenceIn")},
                     "responses": {"201": json_ref("Silence", "the silence, with its id"),
                                   "403": json_ref("Error", "a partner manager's silence without an equality "
                                                            "matcher partner_id=\"<one of theirs>\" (field: matchers)"),
                                   "409": json_ref("Error", "1000 silences in force already (field: matchers)"),
                                   "415": json_ref("Error", "a body that is not application/json"), **writes}}},
        "/api/v1/silences/{silence_id}": {"delete": {
            "summary": "Expire a silence now (kept, expired)", "security": security,
            "parameters": [{"name": "silence_id", "in": "path", "required": True, "schema": _ID}, csrf],
            "responses": {"200": json_ref("Silence", "the silence, expired"),
                          "404": json_ref("Error", "no such silence (or not one the caller may see)"), **writes}}},
        "/api/v1/alert-rules": {"get": {
            "summary": "The rules in force with their last evaluation", "security": security,
            "parameters": [partner],
            "responses": {"200": json_ref("AlertRules", "rules"), **errors}}},
    }
