"""One HTTP attempt at delivering an alert notification (services/alerting/delivery.py queues and
retries them): where each receiver kind is POSTed, the headers, and what the answer means.

* `webhook` and `slack`: POST the body to the receiver's URL as it is configured.
* `alertmanager`: POST the body (a JSON list of alerts) to `<url>/api/v2/alerts`, as Prometheus does.

Outcomes: 2xx = `delivered`; 408, 429, 5xx, connection errors and timeouts = `retry` (with the
receiver's `Retry-After`, seconds or an HTTP date, when it sends one); any other answer (other 4xx,
and 1xx/3xx — redirects are not followed: configure the final URL) and a URL requests cannot use =
`rejected`, since a broken receiver configuration does not heal by retrying. Error texts never hold
the URL's path or query (a Slack webhook's path is its secret)."""
from __future__ import annotations

import email.utils
import logging
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import requests

__all__ = ["KINDS", "USER_AGENT", "SendResult", "target_url", "request_headers", "send", "outcome_of",
           "parse_retry_after"]

log = logging.getLogger(__name__)

KINDS = ("webhook", "slack", "alertmanager")
USER_AGENT = "lulupay-analytics"
RETRY_STATUSES = frozenset({408, 429})
_BODY_SNIPPET_BYTES = 200  # of a non-2xx answer, kept in the attempt's error text
_ERROR_CHARS = 500
_CONFIG_ERRORS = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                  requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader,
                  requests.exceptions.URLRequired)


@dataclass(frozen=True)
class SendResult:
    """What one POST got: the HTTP status (None when no answer), an error text, the receiver's
    Retry-After in seconds, how long it took, and whether the failure is a configuration error."""

    http_status: int | None
    error: str | None
    retry_after_s: float | None
    duration_ms: float
    config_error: bool = False


def target_url(kind: str, url: str) -> str:
    """The URL a notification of `kind` is POSTed to."""
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    return url.rstrip("/") + "/api/v2/alerts" if kind == "alertmanager" else url


def request_headers(idempotency_key: str) -> dict[str, str]:
    """The headers of every attempt (the same key on every retry of a notification)."""
    return {"Content-Type": "application/json", "Idempotency-Key": idempotency_key, "User-Agent": USER_AGENT}


def send(session: requests.Session, *, kind: str, url: str, body: bytes, idempotency_key: str,
         timeout_s: float, timer: Callable[[], float], now_s: float) -> SendResult:
    """POST `body` once; never raises for what the receiver or the network does."""
    target = target_url(kind, url)
    started = timer()
    try:
        response = session.post(target, data=body, headers=request_headers(idempotency_key),
                                timeout=(timeout_s, timeout_s), allow_redirects=False, stream=True)
        try:
            status = response.status_code
            error = None
            if not 200 <= status < 300:
                snippet = response.raw.read(_BODY_SNIPPET_BYTES, decode_content=True) or b""
                error = _redact(f"HTTP {status} {response.reason or ''}: "
                                f"{snippet.decode('utf-8', 'replace')}".strip().rstrip(":"), url, target)
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now_s)
        finally:
            response.close()
    except _CONFIG_ERRORS as exc:
        return SendResult(None, _redact(f"{type(exc).__name__}: {exc}", url, target), None,
                          _ms(timer() - started), config_error=True)
    except requests.RequestException as exc:
        return SendResult(None, _redact(f"{type(exc).__name__}: {exc}", url, target), None, _ms(timer() - started))
    except Exception as exc:  # a bug or an odd failure: recorded and retried until the notification expires
        log.exception("alert notification POST to a %s receiver failed unexpectedly", kind)
        return SendResult(None, _redact(f"{type(exc).__name__}: {exc}", url, target), None, _ms(timer() - started))
    return SendResult(status, error, retry_after, _ms(timer() - started))


def outcome_of(result: SendResult) -> str:
    """`delivered`, `retry` or `rejected` (see the module's docstring)."""
    status = result.http_status
    if status is None:
        return "rejected" if result.config_error else "retry"
    if 200 <= status < 300:
        return "delivered"
    if status in RETRY_STATUSES or status >= 500:
        return "retry"
    return "rejected"


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta seconds or an HTTP date; None if absent or bad)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _redact(text: str, *urls: str) -> str:
    """`text` without the URLs' paths, queries and passwords (the host stays), cut to a readable length."""
    secrets: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.query:
            secrets.append(f"{parts.path}?{parts.query}")
            secrets.append(parts.query)
        if len(parts.path) > 1:
            secrets.append(parts.path)
        if parts.password:
            secrets.append(parts.password)
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text[:_ERROR_CHARS]
