"""Python client the build system uses to push events to the analytics app."""
from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import requests

from services.backoff import Backoff

__all__ = ["LuluPayClient", "SendResult", "ClientError", "MAX_BATCH_EVENTS"]

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 5000          # the server's per-request limit
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class SendResult:
    """What the server made of everything sent: new events, replays, requests."""

    accepted: int
    duplicates: int
    batches: int


class ClientError(Exception):
    """The server refused a batch (4xx), or retries ran out; status 0 means no HTTP answer at all."""

    def __init__(self, status: int, body: dict | str):
        self.status = status
        self.body = body
        message = body.get("error", body) if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}" if status else str(message))


class LuluPayClient:
    """Sends events in batches with idempotency keys, retrying transient failures with backoff."""

    def __init__(self, base_url: str, *, token: str | None = None, batch_size: int = 1000,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = MAX_BACKOFF_S,
                 timeout_s: float = 10.0, session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}")
        if max_retries < 0 or backoff_s < 0 or max_backoff_s < backoff_s or timeout_s <= 0:
            raise ValueError("max_retries and backoff_s must be >= 0, max_backoff_s >= backoff_s, timeout_s > 0")
        self.url = base_url.rstrip("/") + "/api/v1/events"
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self._own_session = session is None
        self.session = session or requests.Session()
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.backoff = Backoff(base_s=backoff_s, cap_s=max_backoff_s, jitter=True)

    def send(self, events: Iterable[dict]) -> SendResult:
        """Send events in batches; events without an "id" get one in place, so a re-send is idempotent."""
        accepted = duplicates = batches = 0
        for batch in _chunks(events, self.batch_size):
            for event in batch:
                if "id" not in event:
                    event["id"] = uuid.uuid4().hex
            answer = self._post(batch)
            accepted += int(answer.get("accepted", 0))
            duplicates += int(answer.get("duplicates", 0))
            batches += 1
        return SendResult(accepted=accepted, duplicates=duplicates, batches=batches)

    def _post(self, batch: list[dict]) -> dict:
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = self.session.post(self.url, json={"events": batch}, headers=self.headers,
                                         timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise ClientError(0, f"no answer from {self.url} after {attempt + 1} attempts: {exc}") from exc
                log.warning("ingest request failed (%s); retrying", exc)
                self.sleep(self._backoff(attempt))
                continue
            if resp.status_code < 300:
                body = _body(resp) if resp.content else {}
                return body if isinstance(body, dict) else {}
            if resp.status_code not in RETRY_STATUSES or last:
                raise ClientError(resp.status_code, _body(resp))
            wait_s = _retry_after_s(resp)
            log.warning("ingest answered %s; retrying", resp.status_code)
            self.sleep(wait_s if wait_s is not None else self._backoff(attempt))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of backoff_s * 2**attempt (capped)."""
        return self.backoff.delay(attempt)

    def close(self) -> None:
        """Release the HTTP connections (only those of a session this client created)."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> "LuluPayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chunks(events: Iterable[dict], size: int) -> Iterator[list[dict]]:
    it = iter(events)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _body(resp: requests.Response) -> dict | str:
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _retry_after_s(resp: requests.Response) -> float | None:
    """Seconds from a Retry-After header (the seconds form; dates are ignored), capped."""
    value = resp.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), 300.0) if value is not None else None
    except ValueError:
        return None
