"""Seeding the store with demo history through the ingest service, resumable after an interrupt."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from services.demo.generator import generate_history
from services.ingest.service import IngestService, PreparedBatch
from services.store import Store

__all__ = ["SeedReport", "save_in_progress", "seed_store", "store_is_seeded", "take_in_progress"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedReport:
    """What a seed run wrote."""

    accepted: int
    duplicates: int
    seconds: float


def store_is_seeded(store: Store) -> bool:
    """True when a demo seed completed, or the store already holds partners of its own."""
    def check(client):
        if client.exists(store.keys.meta("seed_complete")):
            return True
        # Partners but no unfinished demo seed: the store holds real data of its own.
        return client.hlen(store.keys.partners()) > 0 and not client.exists(store.keys.meta("seed_now"))
    return store.run(check)


def seed_store(store: Store, ingest: IngestService, *, days: int = 90, partners: int = 40,
               builds_per_day: int = 5000, now: float | None = None, seed: int = 42, batch_size: int = 5000,
               stop: threading.Event | None = None,
               progress: Callable[[int, int], None] | None = None) -> SeedReport:
    """Write `days` of demo history. An interrupted seed resumes with the same timeline (the ids are
    deterministic, so what was already written counts as duplicates and nothing doubles)."""
    started = time.perf_counter()
    now_key = store.keys.meta("seed_now")
    saved = store.run(lambda c: c.get(now_key))
    if saved is not None:
        now = float(saved)
    else:
        now = float(now if now is not None else ingest.clock())
        store.run(lambda c: c.set(now_key, repr(now)))
    accepted = duplicates = 0
    future: list[dict] = []
    history = generate_history(days=days, partners=partners, builds_per_day=builds_per_day, now=now, seed=seed,
                               batch_size=batch_size, future=future)
    # Prepare (validate + plan, CPU) batch n+1 in a thread while batch n is written (mostly waiting
    # on the store): the two overlap on two cores.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-prepare") as pool:
        pending = pool.submit(_prepare_next, history, ingest)
        while True:
            prepared = pending.result()
            if prepared is None:
                break
            if stop is not None and stop.is_set():
                log.info("seed interrupted after %d events; it resumes on the next run", accepted)
                return SeedReport(accepted, duplicates, time.perf_counter() - started)
            pending = pool.submit(_prepare_next, history, ingest)
            result = ingest.commit(prepared)
            accepted += result.accepted
            duplicates += result.duplicates
            if progress is not None:
                progress(accepted, duplicates)
    save_in_progress(store, future)
    store.run(lambda c: c.set(store.keys.meta("seed_complete"), repr(now)))
    return SeedReport(accepted, duplicates, time.perf_counter() - started)


def save_in_progress(store: Store, events: list[dict]) -> None:
    """Keep the rest of the demo builds still running (their events after now) for the simulator of
    the next start (`take_in_progress`), added to what is kept already."""
    if events:
        store.run(lambda c: c.rpush(store.keys.meta("demo_in_progress"), *[orjson.dumps(e) for e in events]))


def take_in_progress(store: Store) -> list[dict]:
    """The kept events of demo builds in progress (removed from the store: they are sent once)."""
    key = store.keys.meta("demo_in_progress")

    def take(client):
        pipe = client.pipeline(transaction=True)  # said, not defaulted: a cluster client's default is none
        pipe.lrange(key, 0, -1)
        pipe.delete(key)  # not chained: a cluster pipeline's delete() does not return the pipeline
        return pipe.execute()[0]

    return [orjson.loads(row) for row in store.run(take)]


def _prepare_next(history, ingest: IngestService) -> PreparedBatch | None:
    """The next non-empty batch of history, validated and planned; None at the end."""
    for batch in history:
        # A seed resumed much later drops what has left the retention window meanwhile.
        oldest_ts = (ingest.clock() - ingest.retention_s) // 86400 * 86400
        batch = [e for e in batch if e["ts"] >= oldest_ts]
        if batch:
            return ingest.prepare(batch)
    return None
