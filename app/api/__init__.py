"""The HTTP API, one blueprint module per area: `ingest` (events in), `read` (summary, series,
partners), `intelligence` (forecasts, anomalies, failures, bottlenecks), `export` (full exports),
`alerts` (alerts, acknowledgements, silences, rules), `health`; `errors` writes every non-success
answer."""
from app.api.alerts import alerts
from app.api.errors import ApiError, install_app_handlers, json_response
from app.api.export import export
from app.api.health import health
from app.api.ingest import ingest
from app.api.intelligence import intelligence
from app.api.read import read, request_scope

# `read` last: its catch-all answers 404 for any /api/ path no other blueprint serves.
BLUEPRINTS = (ingest, intelligence, export, alerts, health, read)

__all__ = ["BLUEPRINTS", "ApiError", "json_response", "request_scope", "install_app_handlers"]
