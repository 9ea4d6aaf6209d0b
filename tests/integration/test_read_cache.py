"""The read path's per-process caches (bucket sums, group sums) and read repair: a cached figure is
used only while the store confirms it, so late events, compactions and concurrent ingest never make
a number wrong."""
import random
import threading
import time
from services.scope import system_scope

import pytest

from services.queries.dashboard import DashboardData
from services.store.keys import ALL_SCOPE
from services.queries.reader import QueryService
from services.ingest.plan import COMPACT_AT
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]
DAY = 86400


def _history(services, seed=11, days=10, builds=400, batches=12):
    """Builds spread over `days` past whole UTC days, ingested in several batches so that rollup
    lists hold several deltas. Returns (events, start, end) with [start, end) day-aligned."""
    now = time.time()
    end = int(now // DAY) * DAY
    start = end - days * DAY
    events = random_events(random.Random(seed), builds, start, end, PARTNERS)
    random.Random(seed).shuffle(events)
    size = -(-len(events) // batches)
    for i in range(0, len(events), size):
        services.ingest.ingest_batch(events[i:i + size])
    return events, start, end


def _day_lists(services, redis_client, start, end, kind="b", scope=ALL_SCOPE):
    return [redis_client.llen(services.store.keys.rollup("d", kind, day, scope)) for day in range(start, end, DAY)]


@pytest.mark.parametrize("partners", [None, ["zenith-pay"]])
def test_late_event_in_a_cached_past_bucket_shows_in_the_next_query(services, partners):
    events, start, end = _history(services)
    queries = services.queries
    first = queries.summary(system_scope(start, end, partners))
    assert_summary_matches(first, reference_summary(events, start, end, partners and set(partners)))
    stages_before = DashboardData(queries).stage_durations(system_scope(start, end, partners))
    assert len(queries.cache) > 0

    late = random_events(random.Random(99), 7, start + 3 * DAY, start + 4 * DAY, ["zenith-pay"])
    services.ingest.ingest_batch(late)
    every = events + late
    assert_summary_matches(queries.summary(system_scope(start, end, partners)),
                           reference_summary(every, start, end, partners and set(partners)))
    stages_after = DashboardData(queries).stage_durations(system_scope(start, end, partners))
    assert sum(r["runs"] for r in stages_after) == sum(r["runs"] for r in stages_before) + 6 * 7
    daily = queries.series("builds", system_scope(start, end, partners), DAY)
    assert [v for _, v in daily["points"]] == [
        reference_summary(every, t, t + DAY, partners and set(partners))["builds_total"] for t in range(start, end, DAY)]


def test_read_repair_compacts_settled_lists_and_keeps_every_number(services, redis_client):
    events, start, end = _history(services)
    assert max(_day_lists(services, redis_client, start, end)) >= 2
    expected = reference_summary(events, start, end)
    assert_summary_matches(services.queries.summary(system_scope(start, end)), expected)
    assert set(_day_lists(services, redis_client, start, end)) == {1}
    # A process with nothing cached reads the compacted lists: same figures.
    fresh = QueryService(services.store, live_window_s=services.queries.live_window_s)
    assert_summary_matches(fresh.summary(system_scope(start, end)), expected)
    # The reader that compacted kept the merged delta's token: nothing re-read, nothing changed.
    assert services.queries.summary(system_scope(start, end)) == fresh.summary(system_scope(start, end))


def test_compaction_after_caching_keeps_the_cached_sum_exact(services, redis_client):
    events, start, end = _history(services, batches=3)
    queries = services.queries
    queries.SETTLED_S = 10 * DAY  # no read repair: lists keep several deltas
    assert_summary_matches(queries.summary(system_scope(start, end)), reference_summary(events, start, end))
    keys = [services.store.keys.rollup("d", kind, day, ALL_SCOPE)
            for day in range(start, end, DAY) for kind in ("b", "bh", "a")]
    assert services.store.compact(keys) > 0  # another process compacts (tokens change, sums do not)
    late = random_events(random.Random(5), 3, start + DAY, start + 2 * DAY, PARTNERS)
    services.ingest.ingest_batch(late)
    assert_summary_matches(queries.summary(system_scope(start, end)), reference_summary(events + late, start, end))


def test_ingest_compaction_of_a_cached_recent_bucket(services):
    """The current minute's lists grow and get compacted by ingest while a reader keeps them cached."""
    queries = services.queries
    now = time.time()
    minute = int(now // 60) * 60
    start, end = minute - 3600, minute + 60
    rng = random.Random(8)
    finished = 0
    for i in range(2 * COMPACT_AT + 1):
        batch = random_events(rng, 2, minute, now, PARTNERS)
        for e in batch:
            e["id"] = f"{i}-{e['id']}"
        services.ingest.ingest_batch(batch)
        finished += sum(1 for e in batch if e["type"] == "build.finished")
        assert queries.summary(system_scope(start, end))["builds_total"] == finished


def test_concurrent_ingest_never_loses_or_double_counts(services):
    """Readers see exactly the batches written so far (one atomic read per query), while ingest
    appends and compacts the same lists and the readers read-repair them."""
    now = time.time()
    end = int(now // DAY) * DAY
    start = end - 5 * DAY
    rng = random.Random(13)
    batches = []
    for i in range(40):
        batch = random_events(rng, 6, start, end, PARTNERS)
        for e in batch:
            e["id"] = f"{i}-{e['id']}"
        batches.append(batch)
    totals = [0]
    for batch in batches:
        totals.append(totals[-1] + sum(1 for e in batch if e["type"] == "build.finished"))
    allowed = set(totals)
    seen: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def read():
        readers = [services.queries, QueryService(services.store)]
        try:
            while not done.is_set():
                for q in readers:
                    seen.append(q.summary(system_scope(start, end))["builds_total"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for batch in batches:
            services.ingest.ingest_batch(batch)
    finally:
        done.set()
        reader.join(30)
    assert not errors
    assert seen and set(seen) <= allowed
    assert seen == sorted(seen)
    every = [e for b in batches for e in b]
    assert_summary_matches(services.queries.summary(system_scope(start, end)), reference_summary(every, start, end))
    assert_summary_matches(QueryService(services.store).summary(system_scope(start, end)), reference_summary(every, start, end))


def test_flushed_store_is_not_answered_from_the_cache(services, redis_client):
    events, start, end = _history(services, builds=50, batches=2)
    assert services.queries.summary(system_scope(start, end))["builds_total"] > 0
    redis_client.flushall()
    assert services.queries.summary(system_scope(start, end))["builds_total"] == 0


def _window_counts(events, start, end, step, partners=None):
    return [reference_summary(events, t, t + step, partners)["builds_total"] for t in range(start, end, step)]


@pytest.mark.parametrize("step", [300, 420, 3600, 10800])
@pytest.mark.parametrize("partners", [None, ["orbit-wallet"]])
def test_series_blocks_follow_late_events_in_past_hours_and_days(services, step, partners):
    """Series windows read minutes (or hours) through blocks checked by their hour (or day): a late
    event in a past hour or day shows in the next query, in its own window."""
    now = time.time()
    hours = 30 if step < 3600 else 24 * 5
    lo = int((now - hours * 3600) // 3600) * 3600
    rng = random.Random(step)
    events = random_events(rng, 300, lo, now - 60, PARTNERS)
    for i in range(0, len(events), 700):
        services.ingest.ingest_batch(events[i:i + 700])
    queries = services.queries
    start = lo + 3600
    end = int(now // 60) * 60

    def check(every):
        got = queries.series("builds", system_scope(start, end, partners), step)
        assert got["step_s"] == step
        assert [v for _, v in got["points"]] == _window_counts(every, got["from"], got["to"], step,
                                                               partners and set(partners))
    check(events)
    check(events)  # from the blocks
    unit = 3600 if step < 3600 else DAY  # a whole past hour (or day): inside a block
    late = random_events(random.Random(step + 1), 5, start + 2 * unit, start + 2 * unit + 3600, ["orbit-wallet"])
    late += random_events(random.Random(step + 2), 5, start + 3 * unit + 600, start + 3 * unit + 4000, ["orbit-wallet"])
    services.ingest.ingest_batch(late)
    check(events + late)
    check(events + late)


def test_buckets_under_an_unchanged_generation_are_answered_without_reading_their_lists(services, redis_client):
    """Every batch gives each bucket it writes a fresh generation (expiring with the bucket's lists):
    a second read of a past period checks one generation per bucket and reads no list — 40 partners
    × 90 days cost 90 checks, not 3,600 — and a late event makes its bucket (only) read again."""
    events, start, end = _history(services, batches=4)
    keys = services.store.keys
    day = start + 2 * DAY
    generation = redis_client.get(keys.rollup_generation("d", day))
    assert generation is not None
    assert abs(redis_client.ttl(keys.rollup_generation("d", day)) - redis_client.ttl(keys.rollup("d", "b", day, ALL_SCOPE))) <= 1
    queries = QueryService(services.store, live_window_s=services.queries.live_window_s)
    read = []
    original = services.store.read_lists

    def counting(keys_read, *args, **kwargs):
        read.append(len(keys_read))
        return original(keys_read, *args, **kwargs)

    services.store.read_lists = counting
    try:
        scope = system_scope(start, end, PARTNERS)
        first = {p: queries.summary(system_scope(start, end, [p])) for p in PARTNERS}
        assert sum(read) > 0
        read.clear()
        assert {p: queries.summary(system_scope(start, end, [p])) for p in PARTNERS} == first
        assert sum(read) == 0  # every list answered from the cache under its bucket's generation
        def daily():
            step, windows = queries.windows(scope, DAY, ("b",))
            return [(ts, totals.summary()) for ts, totals in windows]
        before = daily()
        read.clear()
        assert daily() == before and sum(read) == 0
        late = random_events(random.Random(3), 4, day + 600, day + 4000, ["zenith-pay"])
        services.ingest.ingest_batch(late)
        assert redis_client.get(keys.rollup_generation("d", day)) != generation
        read.clear()
        again = queries.summary(system_scope(start, end, ["zenith-pay"]))
        assert 0 < sum(read) <= 3 * 3  # that day's lists (3 kinds), and the hour and minute buckets under it
        assert_summary_matches(again, reference_summary(events + late, start, end, {"zenith-pay"}))
    finally:
        services.store.read_lists = original
