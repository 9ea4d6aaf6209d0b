"""`/healthz` (the process is alive) and `/readyz` (the store answers): open, revealing nothing."""
from __future__ import annotations

from flask import Blueprint

from app.api.errors import RETRY_AFTER_S, install_handlers, json_response, services

__all__ = ["health"]

health = install_handlers(Blueprint("health", __name__))


@health.get("/healthz")
def healthz():
    """The process is alive."""
    return json_response({"status": "ok"})


@health.get("/readyz")
def readyz():
    """The store answers."""
    if services().store.ping():
        return json_response({"status": "ready", "store": "ok"})
    return json_response({"status": "unavailable", "store": "unreachable"}, 503, {"Retry-After": str(RETRY_AFTER_S)})
