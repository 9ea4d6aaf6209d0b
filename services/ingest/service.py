"""Ingest service: validate a batch whole, drop duplicates, write it in one atomic store call."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.ingest.events import FieldError, validate_batch
from services.store.keys import Keys
from services.ingest.plan import WritePlan, plan_writes
from services.store import Store

__all__ = ["IngestService", "IngestResult", "BatchInvalid", "PreparedBatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """How many events were stored and how many were already there."""

    accepted: int
    duplicates: int


class BatchInvalid(Exception):
    """At least one event of the batch is bad; nothing was stored."""

    def __init__(self, details: list[FieldError]):
        super().__init__(f"{len({d['index'] for d in details})} invalid event(s)")
        self.details = details


class IngestService:
    """Validates and stores event batches."""

    MAX_ATTEMPTS = 5

    def __init__(self, store: Store, *, retention_s: int, live_window_s: int, future_tolerance_s: float,
                 clock: Callable[[], float] = time.time, on_ingested: Callable[[list[dict]], None] | None = None):
        self.store = store
        self.keys: Keys = store.keys
        self.retention_s = retention_s
        self.live_window_s = live_window_s
        self.future_tolerance_s = future_tolerance_s
        self.clock = clock
        self.on_ingested = on_ingested

    def ingest_batch(self, raw_events: list) -> IngestResult:
        """Validate and store one batch; raises BatchInvalid or StoreUnavailable."""
        return self.commit(self.prepare(raw_events))

    def prepare(self, raw_events: list) -> "PreparedBatch":
        """Validate a batch whole and plan its writes (no I/O; raises BatchInvalid).

        Split from `commit` so a bulk loader can prepare the next batch while one is written."""
        now = self.clock()
        # Raw partitions of day D expire at D + 1 day + retention: an event is still storable while
        # its day's partition lives.
        oldest_ts = (now - self.retention_s) // 86400 * 86400
        events, errors = validate_batch(raw_events, now=now, oldest_ts=oldest_ts,
                                        future_tolerance_s=self.future_tolerance_s)
        if errors:
            raise BatchInvalid(errors)
        fresh: list[dict] = []
        ids: set[str] = set()
        for event in events:  # the same id twice in one batch counts once
            if event["id"] not in ids:
                ids.add(event["id"])
                fresh.append(event)
        return PreparedBatch(now, fresh, len(events) - len(fresh), self._plan(fresh, now) if fresh else None)

    def _plan(self, events: list[dict], now: float) -> WritePlan:
        plan = plan_writes(events, keys=self.keys, now=now, retention_s=self.retention_s,
                           live_window_s=self.live_window_s)
        plan.script_args()  # serialise now, on the preparing thread
        return plan

    def commit(self, batch: "PreparedBatch") -> IngestResult:
        """Write a prepared batch in one atomic call; events already stored count as duplicates.

        The listeners (live channel, metrics) hear of each written batch once. The script marks a
        batch it writes as unannounced, and whoever deletes that mark after a durable apply
        announces the events: this request, or — when its answer was lost (a deadline, a 503 for
        durability) — the client's retry of the same batch, which finds every event stored."""
        fresh, plan, duplicates = batch.events, batch.plan, batch.duplicates
        announce: tuple[list[dict], str] | None = None  # the events to announce, their mark
        for _ in range(self.MAX_ATTEMPTS):
            if not fresh:
                break
            result = self.store.apply(plan)
            if result.already_stored is None:
                if result.compact:
                    self.store.compact(result.compact)
                announce = fresh, plan.announce_key()
                break
            order = plan.seen_order()
            skip = {order[i] for i in result.already_stored}
            duplicates += len(skip)
            if len(skip) == len(fresh):  # all stored: maybe by a write of this batch nobody announced
                announce = fresh, plan.announce_key()
            fresh = [e for i, e in enumerate(fresh) if i not in skip]
            plan = self._plan(fresh, batch.now) if fresh else None
        else:
            raise RuntimeError("ingest could not settle duplicates after several attempts")
        if announce is not None and self.on_ingested is not None and self.store.claim(announce[1]):
            try:
                self.on_ingested(announce[0])
            except Exception:  # a listener (metrics, realtime) must never lose an accepted batch
                log.exception("on_ingested listener failed")
        return IngestResult(accepted=len(fresh), duplicates=duplicates)


@dataclass(frozen=True)
class PreparedBatch:
    """A validated batch (in-batch repeats removed) with its write plan."""

    now: float
    events: list[dict]
    duplicates: int
    plan: WritePlan | None
