"""An alert notification: what the delivery queue (services/alerting/delivery.py) sends to one
receiver, with its idempotency key (`id`) and its JSON form as stored in the queue."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from services.alerting.senders import KINDS

__all__ = ["Notification", "NOTIFICATION_STATUSES"]

NOTIFICATION_STATUSES = ("firing", "resolved")
_ID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII: it travels as an HTTP header


@dataclass(frozen=True)
class Notification:
    """One notification to one receiver; `id` is its idempotency key (stable across re-enqueues)."""

    id: str
    receiver: str
    kind: str
    url: str
    body: dict | list
    group_key: str
    status: str
    created_at: float
    partner_ids: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ValueError("id: 1 to 200 printable ASCII characters, no spaces")
        if not isinstance(self.receiver, str) or not 0 < len(self.receiver) <= 200:
            raise ValueError("receiver: a name of 1 to 200 characters")
        if self.kind not in KINDS:
            raise ValueError(f"kind: one of {', '.join(KINDS)}")
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url: an http:// or https:// URL")
        if not isinstance(self.body, (dict, list)):
            raise ValueError("body: a JSON object or array")
        if not isinstance(self.group_key, str):
            raise ValueError("group_key: a string")
        if self.status not in NOTIFICATION_STATUSES:
            raise ValueError(f"status: one of {', '.join(NOTIFICATION_STATUSES)}")
        if isinstance(self.created_at, bool) or not isinstance(self.created_at, (int, float)) \
                or not math.isfinite(self.created_at):
            raise ValueError("created_at: epoch seconds")
        partner_ids = tuple(self.partner_ids or ())
        if not all(isinstance(p, str) for p in partner_ids):
            raise ValueError("partner_ids: partner id strings")
        object.__setattr__(self, "partner_ids", partner_ids)
        object.__setattr__(self, "created_at", float(self.created_at))

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON of every field (ValueError naming `body` when it is not JSON-able)."""
        try:
            return orjson.dumps({"id": self.id, "receiver": self.receiver, "kind": self.kind, "url": self.url,
                                 "body": self.body, "group_key": self.group_key, "status": self.status,
                                 "created_at": self.created_at, "partner_ids": list(self.partner_ids)})
        except TypeError as exc:
            raise ValueError(f"body: not JSON-serialisable ({exc})") from exc

    @classmethod
    def from_json(cls, data: bytes | str) -> "Notification":
        """The notification `to_json` wrote (ValueError when it is not one)."""
        try:
            fields = orjson.loads(data)
            return cls(id=fields["id"], receiver=fields["receiver"], kind=fields["kind"], url=fields["url"],
                       body=fields["body"], group_key=fields["group_key"], status=fields["status"],
                       created_at=fields["created_at"], partner_ids=tuple(fields.get("partner_ids") or ()))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a notification: {exc!r}") from exc
