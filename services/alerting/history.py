"""The history of alert state changes, kept in the store for the retention window (schema:
docs/storage.md, `alert:hist:<day>`): every pending / firing / resolved change of an alert, with
its labels, value and threshold — what the `alerts` export and (issue #14) the /alerts page read.

Each change is one sorted-set member (score = the change's ts) in its UTC day's key, with a unique
`change_id`, so two identical changes in the same second are both kept and a replayed record (the
same `change_id`) is stored once. Reads are scoped: an alert about a partner is visible to whoever
may see that partner; an alert about no partner (the deployment's own: CPU, HTTP errors …) only to
principals who see every partner — a partner manager never sees it (fail closed)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Callable

import orjson

from services.scope import Scope
from services.store import Store
from services.store.keys import day_of

__all__ = ["AlertHistory", "ALERT_STATES", "SEVERITIES", "ALERT_COLUMNS", "alert_row"]

ALERT_STATES = ("pending", "firing", "resolved")
SEVERITIES = ("info", "warning", "critical")
DAY_S = 86400
_READ_BATCH = 2000  # members read per round trip
# The `alerts` export's columns (docs/exports.md), in order.
ALERT_COLUMNS = ("ts", "alert_id", "rule", "state", "severity", "partner_id", "value", "threshold", "summary",
                 "started_at", "firing_at", "resolved_at", "acknowledged", "labels", "source", "change_id")


def alert_row(change: dict) -> tuple:
    """An `alerts` export row of one recorded change (labels as `name=value;…`, sorted)."""
    labels = ";".join(f"{k}={v}" for k, v in sorted((change.get("labels") or {}).items()))
    return (change["ts"], change["alert_id"], change["rule"], change["state"], change["severity"],
            change.get("partner_id"), change.get("value"), change.get("threshold"), change.get("summary") or "",
            change.get("started_at"), change.get("firing_at"), change.get("resolved_at"),
            bool(change.get("acknowledged")), labels, change.get("source") or "", change["change_id"])


class AlertHistory:
    """`record()` one alert state change; `changes()` / `rows()` of a scope and period, oldest first."""

    def __init__(self, store: Store, *, retention_s: int, clock: Callable[[], float]):
        self.store = store
        self.keys = store.keys
        self.retention_s = retention_s
        self.clock = clock

    def record(self, *, rule: str, state: str, severity: str, partner_id: str | None = None,
               summary: str = "", value: float | None = None, threshold: float | None = None,
               labels: dict[str, str] | None = None, alert_id: str | None = None, ts: float | None = None,
               started_at: float | None = None, firing_at: float | None = None, resolved_at: float | None = None,
               acknowledged: bool = False, source: str = "engine", change_id: str | None = None) -> dict:
        """Store one change (in one round trip) and return it as stored."""
        if state not in ALERT_STATES:
            raise ValueError(f"state: one of {', '.join(ALERT_STATES)}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity: one of {', '.join(SEVERITIES)}")
        ts = self.clock() if ts is None else ts
        all_labels = {"alertname": rule, "severity": severity, **({"partner_id": partner_id} if partner_id else {}),
                      **(labels or {})}
        change = {"change_id": change_id or uuid.uuid4().hex, "ts": ts,
                  "alert_id": alert_id or _alert_id(rule, partner_id), "rule": rule, "state": state,
                  "severity": severity, "partner_id": partner_id, "labels": all_labels, "summary": summary,
                  "value": value, "threshold": threshold, "started_at": ts if started_at is None else started_at,
                  "firing_at": firing_at if firing_at is not None else (ts if state == "firing" else None),
                  "resolved_at": resolved_at if resolved_at is not None else (ts if state == "resolved" else None),
                  "acknowledged": acknowledged, "source": source}
        key = self.keys.alert_history(day_of(ts))
        expire_at = int(ts // DAY_S * DAY_S + DAY_S + self.retention_s)

        def write(client):
            pipe = client.pipeline(transaction=True)
            pipe.zadd(key, {orjson.dumps(change, option=orjson.OPT_SORT_KEYS): ts})
            pipe.expireat(key, expire_at)
            pipe.execute()

        self.store.run(write)
        return change

    def changes(self, scope: Scope) -> Iterator[dict]:
        """Every change in the scope's [start, end) it may see, oldest first, read a day and a batch
        at a time (flat memory whatever the period)."""
        start, end = max(scope.start, self.clock() - self.retention_s - DAY_S), scope.end
        day = int(start // DAY_S) * DAY_S
        while day < end:
            key = self.keys.alert_history(day_of(day))
            offset = 0
            while True:
                batch = self.store.run(lambda c: c.zrangebyscore(key, start, f"({end}", start=offset, num=_READ_BATCH))
                for blob in batch:
                    change = orjson.loads(blob)
                    if _visible(scope, change.get("partner_id")):
                        yield change
                if len(batch) < _READ_BATCH:
                    break
                offset += len(batch)
            day += DAY_S

    def rows(self, scope: Scope) -> Iterator[tuple]:
        """The `alerts` export rows (ALERT_COLUMNS) of the scope."""
        return map(alert_row, self.changes(scope))


def _alert_id(rule: str, partner_id: str | None) -> str:
    """A stable id of one alert (a rule, and its partner for per-partner rules)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"lulupay-alert:{rule}:{partner_id or '*'}").hex[:16]


def _visible(scope: Scope, partner_id: str | None) -> bool:
    if scope.partners is None:
        return True
    return partner_id is not None and partner_id in scope.partners
