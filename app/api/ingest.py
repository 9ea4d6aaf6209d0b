"""`POST /api/v1/events`: ingest one event or a batch (validated whole; bearer ingest tokens)."""
from __future__ import annotations

import hmac
import logging
import time

import orjson
from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.errors import ApiError, install_handlers, json_response, services
from services import metrics
from services.ingest.events import nul_errors
from services.ingest.service import BatchInvalid

__all__ = ["ingest"]

log = logging.getLogger(__name__)

ingest = install_handlers(Blueprint("ingest", __name__))


def _check_token() -> None:
    tokens = services().settings.ingest_token_list
    if not tokens:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)", "Authorization")
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise ApiError(401, "invalid ingest token", "Authorization")


@ingest.post("/api/v1/events")
def post_events():
    """Ingest one event or {"events": [...]}; the batch is validated whole."""
    settings = services().settings
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
        result = services().ingest.ingest_batch(events)
    except BatchInvalid as exc:
        bad = len({d["index"] for d in exc.details})
        metrics.INGEST_EVENTS.labels("rejected").inc(len(events))
        raise ApiError(422, f"{bad} of {len(events)} events are invalid; nothing of this batch was stored",
                       details=exc.details) from None
    seconds = time.perf_counter() - started
    metrics.INGEST_DURATION.observe(seconds)
    metrics.INGEST_EVENTS.labels("accepted").inc(result.accepted)
    metrics.INGEST_EVENTS.labels("duplicate").inc(result.duplicates)
    log.debug("ingested %d events in %.1f ms", result.accepted, seconds * 1e3)
    return json_response({"accepted": result.accepted, "duplicates": result.duplicates}, 202)
