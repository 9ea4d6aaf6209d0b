"""How every API answer that is not a success is written: `ApiError` (status, message, the field at
fault) and the handlers each API blueprint installs, so every 4xx/503 is decided in one place."""
from __future__ import annotations

import orjson
from flask import Blueprint, Flask, Response, current_app
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from services.queries.reader import TooMuchWork
from services.scope import ScopeError
from services.store import StoreNotDurable, StoreUnavailable

__all__ = ["ApiError", "json_response", "install_handlers", "install_app_handlers", "RETRY_AFTER_S", "services"]

RETRY_AFTER_S = 5


class ApiError(Exception):
    """A 4xx/5xx answer with a message naming the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, field, extra


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=status,
                    mimetype="application/json", headers=headers)


def _api_error(exc: ApiError):
    body = {"error": exc.message}
    if exc.field:
        body["field"] = exc.field
    body.update(exc.extra)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
    return json_response(body, exc.status, headers)


def _store_down(exc):
    if isinstance(exc, StoreNotDurable):  # written, durability unconfirmed: the retry is a replay
        return json_response({"error": f"{exc}; retry later"}, 503, {"Retry-After": "1"})
    return json_response({"error": "the store is unreachable; retry later"}, 503, {"Retry-After": str(RETRY_AFTER_S)})


def services():
    """The app's services (built once by the composition root, bound in create_app)."""
    return current_app.extensions["lulupay"]


def _too_large(_exc):
    limit = services().settings.max_body_bytes
    return json_response({"error": f"request body larger than {limit} bytes"}, 413)


def _http_error(exc: HTTPException):
    return json_response({"error": exc.description or exc.name}, exc.code or 500)


def install_handlers(blueprint: Blueprint) -> Blueprint:
    """The JSON error answers of one API blueprint."""
    blueprint.register_error_handler(ApiError, _api_error)
    blueprint.register_error_handler(StoreUnavailable, _store_down)
    blueprint.register_error_handler(RequestEntityTooLarge, _too_large)
    blueprint.register_error_handler(HTTPException, _http_error)
    return blueprint


def install_app_handlers(server: Flask) -> None:
    """Errors any request can raise (the API, Dash callbacks, the first view): the scope's refusals
    (400/401/403 naming the field) and a read over its cost bound (400 naming the parameter)."""
    server.register_error_handler(ScopeError, lambda exc: json_response({"error": exc.message, "field": exc.field},
                                                                         exc.status))
    server.register_error_handler(TooMuchWork, lambda exc: json_response({"error": str(exc), "field": exc.field},
                                                                          400))
