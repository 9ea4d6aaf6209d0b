"""Ingest against a real Valkey: idempotency, late events, whole-batch validation, exact rollups."""
import random
import time
from services.scope import system_scope

import pytest

from services.ingest.service import BatchInvalid
from tests.conftest import stored_keys
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = [f"partner-{i}" for i in range(8)]


def minute_floor(ts):
    return int(ts // 60) * 60


def test_duplicate_event_is_not_counted_twice(services):
    now = time.time()
    events = random_events(random.Random(1), 20, now - 3000, now - 60, PARTNERS)
    first = services.ingest.ingest_batch(events)
    before = services.queries.summary(system_scope(now - 3600, now))
    again = services.ingest.ingest_batch(events)
    assert (first.accepted, first.duplicates) == (len(events), 0)
    assert (again.accepted, again.duplicates) == (0, len(events))
    assert services.queries.summary(system_scope(now - 3600, now)) == before


def test_same_id_twice_in_one_batch_counts_once(services):
    now = time.time()
    events = random_events(random.Random(2), 3, now - 600, now - 60, PARTNERS)
    result = services.ingest.ingest_batch(events + events[:4])
    assert (result.accepted, result.duplicates) == (len(events), 4)


def test_batch_mixing_new_and_stored_events_stores_only_the_new(services):
    now = time.time()
    events = random_events(random.Random(3), 10, now - 600, now - 60, PARTNERS)
    services.ingest.ingest_batch(events[::2])
    result = services.ingest.ingest_batch(events)
    assert result.accepted == len(events[1::2]) and result.duplicates == len(events[::2])
    assert_summary_matches(services.queries.summary(system_scope(now - 3600, now)), reference_summary(events, now - 3600, now))


def test_one_bad_event_stores_nothing(services, redis_client):
    now = time.time()
    events = random_events(random.Random(4), 5, now - 600, now - 60, PARTNERS)
    events[7] = dict(events[7], duration_s=-3)
    with pytest.raises(BatchInvalid) as info:
        services.ingest.ingest_batch(events)
    assert [(d["index"], d["field"]) for d in info.value.details] == [(7, "duration_s")]
    assert stored_keys(redis_client) == []


def test_late_event_lands_in_its_own_period(services):
    now = time.time()
    day = 86400
    old_start = (now - 10 * day) // day * day  # a whole UTC day, ten days back
    late = random_events(random.Random(5), 30, old_start, old_start + day, PARTNERS)
    recent = random_events(random.Random(6), 30, now - 3000, now - 60, PARTNERS)
    services.ingest.ingest_batch(recent)
    services.ingest.ingest_batch(list(reversed(late)))  # late and out of order
    assert_summary_matches(services.queries.summary(system_scope(old_start, old_start + day)),
                           reference_summary(late, old_start, old_start + day))
    assert services.queries.summary(system_scope(now - 3600, now))["builds_total"] == 30


def test_rollups_are_exact_for_aligned_ranges_and_partner_sets(services):
    rng = random.Random(7)
    now = time.time()
    events = random_events(rng, 1500, now - 40 * 86400, now, PARTNERS)
    rng.shuffle(events)
    for i in range(0, len(events), 997):
        services.ingest.ingest_batch(events[i:i + 997])
    services.ingest.ingest_batch(events[:500])  # replayed: changes nothing
    hour, day = 3600, 86400
    ranges = [
        (minute_floor(now - 3600), minute_floor(now) + 60),                 # last hour, minutes
        (minute_floor(now - 86400 - 1234), minute_floor(now - 600)),         # minutes + hours
        ((now - 20 * day) // hour * hour, (now - 2 * day) // hour * hour),   # hours + days
        ((now - 39 * day) // day * day, minute_floor(now) + 60),             # everything
    ]
    for start, end in ranges:
        for partners in (None, ["partner-1"], ["partner-2", "partner-5", "partner-7"], ["nobody"]):
            actual = services.queries.summary(system_scope(start, end, partners))
            assert (actual["from"], actual["to"]) == (start, end)
            assert_summary_matches(actual, reference_summary(events, start, end, partners and set(partners)))


def test_series_points_add_up_to_the_summary(services):
    now = time.time()
    events = random_events(random.Random(8), 400, now - 3 * 86400, now, PARTNERS)
    services.ingest.ingest_batch(events)
    start, end = (now - 2 * 86400) // 3600 * 3600, now // 3600 * 3600
    series = services.queries.series("builds", system_scope(start, end), 3600)
    assert series["step_s"] == 3600 and len(series["points"]) == (end - start) / 3600
    assert sum(v for _, v in series["points"]) == reference_summary(events, start, end)["builds_total"]
    failed = services.queries.series("builds_failed", system_scope(start, end, ["partner-3"]))
    assert sum(v for _, v in failed["points"]) == reference_summary(events, start, end, {"partner-3"})["builds_failed"]


def test_active_builds_follow_live_state(services):
    now = time.time()
    started = [{"id": f"s{i}", "type": "build.started", "ts": now - 100, "partner_id": PARTNERS[i % 2],
                "build_id": f"live-{i}", "build_type": "debug", "app_version": "1"} for i in range(5)]
    stage = {"id": "g0", "type": "build.stage", "ts": now - 90, "partner_id": PARTNERS[0], "build_id": "live-0",
             "stage": "asset_processing", "status": "success", "duration_s": 3}
    done = {"id": "f1", "type": "build.finished", "ts": now - 50, "partner_id": PARTNERS[1], "build_id": "live-1",
            "build_type": "debug", "status": "success", "duration_s": 50}
    services.ingest.ingest_batch(started + [stage, done])
    assert services.queries.active_builds(system_scope()) == 4
    assert services.queries.active_builds(system_scope(partners=[PARTNERS[0]])) == 3
    # A late build.started of a finished build does not revive it.
    services.ingest.ingest_batch([dict(started[1], id="s1-replay-other-id")])
    assert services.queries.active_builds(system_scope()) == 4
    running = {b["build_id"]: b for b in services.queries.running_builds(system_scope())}
    assert running["live-0"]["stages"] == {"asset_processing": "success"}
    assert running["live-0"]["stages_done"] == 1


def test_partner_records_keep_latest_and_history(services):
    now = time.time()

    def upsert(i, ts, tier, status="active"):
        return {"id": f"p{i}", "type": "partner.upserted", "ts": ts, "partner_id": "acme", "name": "Acme Pay",
                "tier": tier, "monthly_build_quota": {"free": 100, "basic": 1000, "pro": 5000}[tier], "status": status}

    services.ingest.ingest_batch([upsert(1, now - 3000, "free"), upsert(3, now - 1000, "basic")])
    services.ingest.ingest_batch([upsert(2, now - 2000, "pro")])  # late: history only
    record = services.queries.partners(system_scope())[0]
    assert (record["tier"], record["monthly_build_quota"]) == ("basic", 1000)
    changes = [h["change"] for h in services.queries.partner_history(system_scope(), "acme")]
    assert changes == ["created", "upgrade", "downgrade"]


def test_rollup_lists_are_compacted_and_stay_exact(services, redis_client):
    from services.ingest.plan import COMPACT_AT

    now = time.time()
    events = random_events(random.Random(9), 60, now - 50, now - 40, PARTNERS[:1])
    for i in range(0, len(events), 5):  # many small batches into the same buckets
        services.ingest.ingest_batch(events[i:i + 5])
    rollup_keys = list(redis_client.scan_iter(match="{lp}:ru:*"))
    assert rollup_keys and max(redis_client.llen(k) for k in rollup_keys) < COMPACT_AT
    start, end = minute_floor(now - 3600), minute_floor(now) + 60
    assert_summary_matches(services.queries.summary(system_scope(start, end)), reference_summary(events, start, end))
    assert_summary_matches(services.queries.summary(system_scope(start, end, PARTNERS[:1])),
                           reference_summary(events, start, end, set(PARTNERS[:1])))


def test_raw_events_are_kept_per_type_and_utc_day(services, redis_client):
    from datetime import datetime, timezone

    import orjson

    from services.store.keys import day_of

    now = time.time()
    events = random_events(random.Random(10), 30, now - 3 * 86400, now - 60, PARTNERS)
    services.ingest.ingest_batch(events)
    services.ingest.ingest_batch(events)  # a replay stores nothing twice
    stored = []
    for member in redis_client.zrange(services.store.keys.raw_days(), 0, -1):
        kind, day = member.decode().split("|")
        for chunk in redis_client.lrange(services.store.keys.raw(kind, day), 0, -1):
            for event in orjson.loads(chunk):
                assert event["type"] == kind and day_of(event["ts"]) == day
                stored.append(event["id"])
        day_end = datetime.strptime(day, "%Y%m%d").replace(tzinfo=timezone.utc).timestamp() + 86400
        expected_ttl = day_end + services.settings.retention_s - time.time()
        assert abs(redis_client.ttl(services.store.keys.raw(kind, day)) - expected_ttl) < 5
    assert sorted(stored) == sorted(e["id"] for e in events)


def test_a_batch_written_but_unconfirmed_is_announced_once_by_its_replay(tmp_path):
    """The listeners (live channel, metrics) hear of every written batch exactly once: a batch the
    store took but whose durability it could not confirm (no append-only file) was answered 503 and
    announced by nobody; the client's retry — a replay — announces it, a second retry does not, and
    a batch answered 202 is never announced again by a re-send."""
    from app.settings import Settings
    from services.container import build_services
    from services.store.embedded import EmbeddedValkey
    from services.store.store import StoreNotDurable
    from tests.conftest import free_port

    store = EmbeddedValkey(tmp_path / "valkey", port=free_port(), persist=False).start()
    try:
        strict, relaxed = (build_services(Settings(_env_file=None, redis_url=store.url, alert_rules="off",
                                                   data_dir=tmp_path / name, ingest_durability=durability))
                           for name, durability in (("a", "aof"), ("b", "memory")))
        heard = {"strict": [], "relaxed": []}
        strict.ingest.on_ingested = heard["strict"].append
        relaxed.ingest.on_ingested = heard["relaxed"].append
        now = time.time()
        refused, later = (random_events(random.Random(seed), 4, now - 600, now - 60, ["acme-bank"]) for seed in (1, 2))
        with pytest.raises(StoreNotDurable):
            strict.ingest.ingest_batch(refused)
        assert heard["strict"] == []
        assert relaxed.ingest.ingest_batch(refused).duplicates == len(refused)
        assert [[e["id"] for e in batch] for batch in heard["relaxed"]] == [[e["id"] for e in refused]]
        relaxed.ingest.ingest_batch(refused)
        assert len(heard["relaxed"]) == 1, "a second replay announces nothing"
        assert relaxed.ingest.ingest_batch(later).accepted == len(later)
        relaxed.ingest.ingest_batch(later)
        assert [len(batch) for batch in heard["relaxed"]] == [len(refused), len(later)]
        assert not list(relaxed.store.client.scan_iter(match=relaxed.store.keys.ingest_unannounced("*")))
    finally:
        store.stop()
