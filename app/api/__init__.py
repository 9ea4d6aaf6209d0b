"""The HTTP API, one blueprint module per area: `ingest` (events in), `read` (summary, series,
partners), `health`; `errors` writes every non-success answer. Exports and alerts get theirs here."""
from app.api.errors import ApiError, install_app_handlers, json_response
from app.api.health import health
from app.api.ingest import ingest
from app.api.read import read, request_scope

BLUEPRINTS = (ingest, read, health)

__all__ = ["BLUEPRINTS", "ApiError", "json_response", "request_scope", "install_app_handlers"]
