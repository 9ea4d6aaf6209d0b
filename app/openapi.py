"""OpenAPI document generated from the pydantic models that validate the requests."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from app.openapi_alerts import ALERT_MODELS, alert_paths
from services.ingest.events import Event
from services.queries.anomalies import ANOMALY_METRICS, ANOMALY_STEPS
from services.queries.forecasts import FORECAST_METRICS, FORECAST_STEPS
from services.queries.reader import SERIES_METRICS
from services.vocabulary import PARTNER_ID_PATTERN

__all__ = ["openapi_document"]


class Accepted(BaseModel):
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose id was already stored (nothing changed)")


class ErrorDetail(BaseModel):
    index: int
    field: str
    message: str


class Error(BaseModel):
    error: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


class Summary(BaseModel):
    from_: int = Field(alias="from", description="effective start (aligned to the finest resolution kept)")
    to: int
    partners: list[str] | None
    builds_total: int
    builds_succeeded: int
    builds_failed: int
    builds_cancelled: int
    builds_started: int
    success_rate: float | None = Field(description="succeeded / (succeeded + failed); null when none completed")
    duration_avg_s: float | None
    duration_p50_s: float | None
    duration_p95_s: float | None
    duration_p99_s: float | None
    active_builds: int
    active_partners: int
    assets_processed: int
    asset_compression_ratio_avg: float | None = Field(description="1 - Σ output_bytes / Σ original_bytes")
    asset_quality_avg: float | None
    asset_bytes_saved: int


class Series(BaseModel):
    metric: str
    step_s: int
    resolution: str
    from_: int = Field(alias="from")
    to: int
    points: list[tuple[int, float | None]]


class Partner(BaseModel):
    partner_id: str
    name: str
    tier: str
    monthly_build_quota: int
    status: str
    updated_ts: float
    builds_this_month: int
    quota_used_ratio: float | None


class Partners(BaseModel):
    partners: list[Partner]


# What services/ingest/events.parse_ts takes (the model's field is Any, parsed by a validator).
_EVENT_TS = {"anyOf": [{"type": "string", "format": "date-time"},
                       {"type": "number", "minimum": 0, "exclusiveMaximum": 32503680000}],
             "description": "RFC 3339 (naive: UTC) or epoch seconds; not older than the retention window "
                            "(LULUPAY_RETENTION_DAYS)"}


def _schema(model) -> dict:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    return adapter.json_schema(ref_template="#/components/schemas/{model}", by_alias=True)


def _json(ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    components: dict[str, Any] = {}
    for name, model in {"Event": Event, "Accepted": Accepted, "Error": Error, "Summary": Summary,
                        "Series": Series, "Partners": Partners, **ALERT_MODELS}.items():
        schema = _schema(model)
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    for variant in ("AssetProcessed", "BuildFinished", "BuildStage", "BuildStarted", "PartnerUpserted"):
        components[variant]["properties"]["ts"] = _EVENT_TS  # the model takes Any and parses it itself
    components["EventBatch"] = {"type": "object", "required": ["events"], "properties": {
        "events": {"type": "array", "maxItems": 5000, "items": {"$ref": "#/components/schemas/Event"}}}}
    time_params = [
        {"name": "from", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or epoch seconds (default: to - 24 h)"},
        {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or epoch seconds, exclusive (default: now)"},
        {"name": "partner", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "explode": True,
         "description": "repeat for several partners; none = every partner the caller may see"},
    ]
    errors = {"400": _json("Error", "bad query argument, or over a limit (the field is named)"),
              "401": _json("Error", "not signed in: a session cookie from /login or a personal API token"),
              "403": _json("Error", "a partner asked for is not among the caller's partners (field: partner)"),
              "414": _json("Error", "URL longer than LULUPAY_MAX_URL_BYTES"),
              "503": _json("Error", "store unreachable; retry after Retry-After seconds")}
    read = [{"token": []}, {"session": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "LuluPay Analytics API", "version": "1"},
        "paths": {
            "/api/v1/events": {"post": {
                "summary": "Ingest one event or a batch (validated whole, idempotent on id)",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/Event"}, {"$ref": "#/components/schemas/EventBatch"}]}}}},
                "responses": {"202": _json("Accepted", "stored"), "400": _json("Error", "malformed JSON"),
                              "401": _json("Error", "missing or wrong bearer token"),
                              "413": _json("Error", "body over 5 MiB or more than 5,000 events"),
                              "415": _json("Error", "the body is not application/json"),
                              "422": _json("Error", "invalid events; nothing of the batch stored"),
                              "503": errors["503"]}}},
            "/api/v1/summary": {"get": {"summary": "Totals and rates for a period", "parameters": time_params,
                                        "security": read,
                                        "responses": {"200": _json("Summary", "figures"), **errors}}},
            "/api/v1/series/{metric}": {"get": {
                "summary": "One metric over time", "security": read, "parameters": [
                    {"name": "metric", "in": "path", "required": True, "schema": {"type": "string", "enum": list(SERIES_METRICS)}},
                    *time_params,
                    {"name": "step", "in": "query", "schema": {"type": "string"}, "description": "seconds or 5m/1h/1d; default: automatic"}],
                "responses": {"200": _json("Series", "points"), **errors}}},
            "/api/v1/partners": {"get": {"summary": "Partners", "parameters": time_params[2:], "security": read,
                                         "responses": {"200": _json("Partners", "partners"), **errors}}},
            "/api/v1/partners/{partner_id}": {"get": {
                "summary": "One partner with its tier and status history (404 for a partner the caller may not see)",
                "security": read, "parameters": [
                    {"name": "partner_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": PARTNER_ID_PATTERN}}],
                "responses": {"200": {"description": "the partner's record and history"},
                              "404": _json("Error", "no such partner (or not the caller's)"), **errors}}},
            "/api/v1/forecast/{metric}": {"get": {
                "summary": "A metric's forecast with 80/95 % prediction intervals and the rolling-origin backtest "
                           "that chose its model (computed off the request path; 202 while computing)",
                "security": read, "parameters": [
                    {"name": "metric", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": list(FORECAST_METRICS)}},
                    {"name": "step", "in": "query", "schema": {"type": "string", "enum": list(FORECAST_STEPS)}},
                    {"name": "horizon", "in": "query", "schema": {"type": "string", "pattern": r"^\d{1,6}[dh]?$"},
                     "description": "e.g. 14d or 72h (daily: up to 30 d; hourly: up to 72 h)"},
                    time_params[2]],
                "responses": {"200": {"description": "history, points, backtest, note"},
                              "202": _json("Error", "being computed; retry after Retry-After seconds"),
                              "404": _json("Error", "unknown metric"), **errors}}},
            "/api/v1/anomalies": {"get": {
                "summary": "Buckets outside their robust seasonal band, with their top contributors", "security": read,
                "parameters": [*time_params,
                               {"name": "metric", "in": "query", "schema": {"type": "string", "enum": list(ANOMALY_METRICS)}},
                               {"name": "step", "in": "query", "schema": {"type": "string", "enum": list(ANOMALY_STEPS)}}],
                "responses": {"200": {"description": "anomalies"}, **errors}}},
            "/api/v1/failures": {"get": {
                "summary": "Failed builds grouped by normalised error signature", "security": read,
                "parameters": time_params, "responses": {"200": {"description": "signatures"}, **errors}}},
            "/api/v1/bottlenecks": {"get": {
                "summary": "Stages' share of build time and of the slowest 5 % of builds", "security": read,
                "parameters": time_params, "responses": {"200": {"description": "stages and the driving stage"}, **errors}}},
            "/api/v1/export/{dataset}.{format}": {"get": {
                "summary": "A whole dataset of the period, streamed (columns: docs/exports.md)", "security": read,
                "parameters": [
                    {"name": "dataset", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["builds", "stages", "assets", "failures", "partners", "system",
                                                           "alerts"]}},
                    {"name": "format", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["csv", "json", "ndjson"]}},
                    *time_params],
                "responses": {"200": {"description": "the rows", "content": {
                    "text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array"}},
                    "application/x-ndjson": {"schema": {"type": "string"}}}}, **errors}}},
            **alert_paths(_json, errors, read),
            "/healthz": {"get": {"summary": "Process alive", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Store reachable", "responses": {"200": {"description": "ready"}, "503": {"description": "store unreachable"}}}},
        },
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an ingest token (LULUPAY_INGEST_TOKENS)"},
            "token": {"type": "http", "scheme": "bearer",
                      "description": "a personal API token (`lulupay-analytics users token NAME`)"},
            "session": {"type": "apiKey", "in": "cookie", "name": "lulupay_session",
                        "description": "the session cookie of a sign-in at /login"}}},
    }
