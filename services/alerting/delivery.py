"""The alert notification delivery queue (schema: docs/storage.md, "Alert delivery"): notifications
are queued in the store, POSTed to their receiver (services/alerting/senders.py), retried with an
exponential back-off while it fails, and every attempt is recorded per UTC day for the /alerts page.

Guarantees: at least once, always with the same `Idempotency-Key` (the notification's id), and
never again after a 2xx was recorded. A delivery is claimed with a lease (its queue score becomes
the lease's end), so a process killed mid-POST loses nothing: the claim runs out and another
process sends it again, with the same key. Enqueueing is idempotent by id, also after the
notification was finished (its id stays in the done set for `max_age_s`, and a notification older
than `max_age_s` is not queued at all), so an engine that restarts and enqueues again never sends
twice. Every store change is one Lua script call (services/store/scripts/delivery_*.lua)."""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Collection
from importlib import resources
from typing import Callable

import orjson
import requests

from services.alerting import senders
from services.alerting.notification import NOTIFICATION_STATUSES, Notification
from services.backoff import Backoff
from services.store import Store, StoreUnavailable
from services.store.keys import day_of

__all__ = ["Notification", "DeliveryQueue", "DeliveryWorker", "NOTIFICATION_STATUSES", "OUTCOMES"]

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "rejected", "expired")  # of one attempt
DAY_S = 86400
_READ_BATCH = 500


def _script(name: str) -> str:
    return resources.files("services.store").joinpath("scripts", name).read_text()


class DeliveryQueue:
    """`enqueue()` notifications; `deliver_due()` sends what is due; `pending()`, `attempts()` and
    `stats()` show the queue and what was tried. Safe to run in several processes at once."""

    def __init__(self, store: Store, *, clock: Callable[[], float], http_timeout_s: float = 5.0,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 300.0, max_age_s: float = 86400.0,
                 lease_s: float = 30.0, retention_s: float = 90 * DAY_S, session: requests.Session | None = None,
                 timer: Callable[[], float] = time.perf_counter):
        for name, value in (("http_timeout_s", http_timeout_s), ("backoff_base_s", backoff_base_s),
                            ("backoff_max_s", backoff_max_s), ("max_age_s", max_age_s), ("lease_s", lease_s),
                            ("retention_s", retention_s)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: a positive number of seconds")
        if backoff_max_s < backoff_base_s:
            raise ValueError("backoff_max_s: at least backoff_base_s")
        if lease_s <= 2 * http_timeout_s:
            raise ValueError("lease_s: more than twice http_timeout_s (connect + read), or a slow POST loses it")
        self.store = store
        self.keys = store.keys
        self.clock = clock
        self.timer = timer
        self.http_timeout_s = float(http_timeout_s)
        self.max_age_s = float(max_age_s)
        self.lease_s = float(lease_s)
        self.retention_s = float(retention_s)
        self.backoff = Backoff(base_s=float(backoff_base_s), cap_s=float(backoff_max_s))
        self.session = session or requests.Session()
        self._enqueue = store.script(_script("delivery_enqueue.lua"))
        self._claim = store.script(_script("delivery_claim.lua"))
        self._finish = store.script(_script("delivery_finish.lua"))

    def enqueue(self, notification: Notification) -> bool:
        """Queue `notification`, due now; False (nothing written) when its id is queued or finished,
        or it is older than `max_age_s`."""
        now = self.clock()
        if now - notification.created_at >= self.max_age_s:
            log.info("alert notification %s not queued: older than max_age_s", notification.id)
            return False
        blob = notification.to_json()
        keys = [self.keys.alert_delivery_queue(), self.keys.alert_delivery_items(), self.keys.alert_delivery_done()]
        return bool(int(self.store.run(lambda c: self._enqueue(keys=keys, args=[notification.id, blob, now]))))

    def deliver_due(self, limit: int = 50) -> list[dict]:
        """Claim and send up to `limit` due notifications, one claim at a time (so each lease starts
        right before its POST); the attempts made, each with `applied` (what the store did with it)."""
        done = []
        for _ in range(limit):
            claimed = self._claim_one()
            if claimed is None:
                break
            done.append(self._deliver(*claimed))
        return done

    def pending(self, partners: Collection[str] | None = None, limit: int = 1000) -> list[dict]:
        """Queued notifications, soonest due first: id, receiver, kind, group key, status, created_at,
        partner_ids, due_at, attempts (claims so far), leased (a claim is in flight), last result. No
        URL or body (a URL may hold a secret). `partners` as in `attempts`."""
        keys = self.keys
        queued = self.store.run(lambda c: c.zrange(keys.alert_delivery_queue(), 0, limit - 1, withscores=True))
        if not queued:
            return []
        ids = [member.decode() for member, _ in queued]
        fields = [f"{p}:{i}" for i in ids for p in ("a", "l", "r")]

        def read(client):
            pipe = client.pipeline(transaction=True)
            pipe.hmget(keys.alert_delivery_items(), ids)
            pipe.hmget(keys.alert_delivery_state(), fields)
            return pipe.execute()

        items, state = self.store.run(read)
        now = self.clock()
        out = []
        for n, ((_, due_at), item) in enumerate(zip(queued, items)):
            try:
                notification = Notification.from_json(item) if item is not None else None
            except ValueError:
                notification = None  # unreadable: its next claim rejects it
            if notification is None or not _visible(partners, notification.partner_ids):
                continue
            claims, lease, last = state[3 * n:3 * n + 3]
            out.append({"id": notification.id, "receiver": notification.receiver, "kind": notification.kind,
                        "group_key": notification.group_key, "status": notification.status,
                        "created_at": notification.created_at, "partner_ids": list(notification.partner_ids),
                        "due_at": due_at, "attempts": int(claims or 0), "leased": bool(lease) and due_at > now,
                        "last": orjson.loads(last) if last else None})
        return out

    def attempts(self, since: float, until: float, limit: int = 200,
                 partners: Collection[str] | None = None) -> list[dict]:
        """Recorded attempts with since <= ts < until, newest first, at most `limit`. `partners`: None =
        all; else only notifications about one of them (one about no partner is then left out)."""
        now = self.clock()
        start = max(since, now - self.retention_s - DAY_S)
        out: list[dict] = []
        day = int((min(until, now + DAY_S) - 1e-6) // DAY_S) * DAY_S
        while day + DAY_S > start and len(out) < limit:
            key = self.keys.alert_delivery_attempts(day_of(day))
            offset = 0
            while len(out) < limit:
                batch = self.store.run(lambda c: c.zrevrangebyscore(key, f"({until}", start, start=offset,
                                                                    num=_READ_BATCH))
                for blob in batch:
                    attempt = orjson.loads(blob)
                    if _visible(partners, attempt.get("partner_ids") or ()):
                        out.append(attempt)
                        if len(out) == limit:
                            break
                if len(batch) < _READ_BATCH:
                    break
                offset += len(batch)
            day -= DAY_S
        return out

    def stats(self) -> dict:
        """Counts: queued, due (now), leased (a claim in flight), done (finished ids still kept) and the
        totals so far: delivered, rejected, expired (notifications), retried (failed attempts)."""
        keys = self.keys
        now = self.clock()
        totals = ("delivered", "rejected", "expired", "retried")

        def read(client):
            # only replies that are counts or lists of names: redis-py returns a cluster transaction's
            # replies unparsed (an HGETALL as a flat list, scores as bytes)
            pipe = client.pipeline(transaction=True)
            pipe.zcard(keys.alert_delivery_queue())
            pipe.zcount(keys.alert_delivery_queue(), "-inf", now)
            pipe.zrangebyscore(keys.alert_delivery_queue(), f"({now}", "+inf")
            pipe.hkeys(keys.alert_delivery_state())
            pipe.zcard(keys.alert_delivery_done())
            pipe.hmget(keys.alert_delivery_totals(), totals)
            return pipe.execute()

        queued, due, not_due, state, done, counts = self.store.run(read)
        leased = {k[2:] for k in state if k.startswith(b"l:")}
        return {"queued": int(queued), "due": int(due), "leased": sum(1 for member in not_due if member in leased),
                "done": int(done), **{name: int(count or 0) for name, count in zip(totals, counts)}}

    def _claim_one(self) -> tuple[str, int, str, bytes] | None:
        now = self.clock()
        token = uuid.uuid4().hex
        keys = [self.keys.alert_delivery_queue(), self.keys.alert_delivery_items(), self.keys.alert_delivery_state()]
        out = self.store.run(lambda c: self._claim(keys=keys, args=[now, now + self.lease_s, token, 1]))
        if not out:
            return None
        return out[0].decode(), int(out[1]), token, out[2]

    def _deliver(self, notification_id: str, attempt: int, token: str, item: bytes) -> dict:
        started = self.clock()
        try:
            notification = Notification.from_json(item)
        except ValueError as exc:
            return self._record(notification_id, None, attempt, token, started, "rejected",
                                senders.SendResult(None, f"unreadable notification: {exc}", None, 0.0), None)
        if started - notification.created_at >= self.max_age_s:
            return self._record(notification_id, notification, attempt, token, started, "expired",
                                senders.SendResult(None, "expired: older than max_age_s, not sent", None, 0.0), None)
        result = senders.send(self.session, kind=notification.kind, url=notification.url,
                              body=orjson.dumps(notification.body), idempotency_key=notification.id,
                              timeout_s=self.http_timeout_s, timer=self.timer, now_s=started)
        outcome = senders.outcome_of(result)
        next_at = None
        if outcome == "retry":
            delay_s = self.backoff.delay(attempt - 1)
            if result.retry_after_s is not None:
                delay_s = max(delay_s, min(result.retry_after_s, self.backoff.cap_s))
            next_at = self.clock() + delay_s
            if next_at - notification.created_at >= self.max_age_s:
                outcome, next_at = "expired", None
        return self._record(notification_id, notification, attempt, token, started, outcome, result, next_at)

    def _record(self, notification_id: str, notification: Notification | None, attempt: int, token: str,
                ts: float, outcome: str, result: senders.SendResult, next_at: float | None) -> dict:
        record = {"attempt_id": uuid.uuid4().hex, "ts": ts, "notification_id": notification_id,
                  "receiver": notification.receiver if notification else None,
                  "kind": notification.kind if notification else None,
                  "group_key": notification.group_key if notification else None,
                  "status": notification.status if notification else None,
                  "partner_ids": list(notification.partner_ids) if notification else [],
                  "attempt": attempt, "http_status": result.http_status, "error": result.error,
                  "duration_ms": result.duration_ms, "outcome": outcome, "next_at": next_at}
        now = self.clock()
        keys = [self.keys.alert_delivery_queue(), self.keys.alert_delivery_items(), self.keys.alert_delivery_state(),
                self.keys.alert_delivery_done(), self.keys.alert_delivery_attempts(day_of(ts)),
                self.keys.alert_delivery_totals()]
        last = orjson.dumps({"ts": ts, "attempt": attempt, "http_status": result.http_status,
                             "error": result.error, "outcome": outcome})
        args = [notification_id, token, outcome, next_at if next_at is not None else 0,
                orjson.dumps(record, option=orjson.OPT_SORT_KEYS), ts,
                int(ts // DAY_S * DAY_S + DAY_S + self.retention_s), now, now - self.max_age_s, last]
        applied = self.store.run(lambda c: self._finish(keys=keys, args=args))
        record["applied"] = applied.decode() if isinstance(applied, bytes) else str(applied)
        if outcome in ("rejected", "expired"):
            log.warning("alert notification %s to %s %s: %s", notification_id, record["receiver"], outcome,
                        result.error or result.http_status)
        return record


class DeliveryWorker:
    """A thread calling `queue.deliver_due()` every `interval_s` until stopped."""

    def __init__(self, queue: DeliveryQueue, interval_s: float = 1.0, stop_event: threading.Event | None = None):
        if not interval_s > 0:
            raise ValueError("interval_s: a positive number of seconds")
        self.queue = queue
        self.interval_s = interval_s
        self.stop_event = stop_event or threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> "DeliveryWorker":
        """Start the thread; returns the worker (the handle `stop()` is called on)."""
        self.thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the thread to stop and wait for it; True when it has ended."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            return not self.thread.is_alive()
        return True

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.queue.deliver_due()
            except StoreUnavailable as exc:
                log.warning("alert delivery: store unavailable (%s); retrying", exc)
            except Exception:
                log.exception("alert delivery round failed")
            self.stop_event.wait(self.interval_s)


def _visible(partners: Collection[str] | None, partner_ids: Collection[str]) -> bool:
    return partners is None or any(p in partners for p in partner_ids)
