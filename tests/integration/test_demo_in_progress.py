"""The demo never leaves a build running for ever: the builds in progress when the seed's history
ends (and those of a simulator that stops) finish when their time comes, on this or the next start."""
from __future__ import annotations

import time
from collections import defaultdict

from services.demo.generator import Simulator, generate_history
from services.demo.seeding import save_in_progress, seed_store, take_in_progress
from services.scope import system_scope


def _by_build(events):
    out = defaultdict(set)
    for e in events:
        if e["type"].startswith("build."):
            out[e["build_id"]].add(e["type"])
    return out


def test_history_hands_the_builds_in_progress_over_as_future_events():
    now = 1_779_926_400.0 + 15 * 3600  # 15:00 UTC: a busy hour, builds in progress
    future: list[dict] = []
    past = [e for batch in generate_history(days=1, builds_per_day=2000, now=now, future=future) for e in batch]
    assert future and all(e["ts"] >= now for e in future) and all(e["ts"] < now for e in past)
    assert [e["ts"] for e in future] == sorted(e["ts"] for e in future)
    before, after = _by_build(past), _by_build(future)
    unfinished = {b for b, types in before.items() if "build.finished" not in types}
    assert unfinished and unfinished == set(after)  # every build left running finishes in `future`
    assert all("build.finished" in after[b] for b in unfinished)
    assert not any("build.started" in types for types in after.values())


def test_seeded_builds_in_progress_finish_once_the_simulator_sends_them(services):
    now = time.time() - 3 * 3600  # the seed's end: what was in progress then is due by now
    seed_store(services.store, services.ingest, days=1, builds_per_day=3000, now=now)
    everyone = system_scope(now - 86400, now + 86400, None)
    running = services.queries.active_builds(everyone)
    kept = take_in_progress(services.store)
    assert running > 0 and len({e["build_id"] for e in kept if e["type"].startswith("build.")}) == running
    assert take_in_progress(services.store) == []  # sent once

    later = time.time()  # every kept event is due: a start hours after the seed
    assert max(e["ts"] for e in kept) <= later
    simulator = Simulator(services.ingest.ingest_batch, rate=0.0, clock=lambda: later)
    simulator.schedule(kept)
    sent = simulator.step(later)
    assert sorted(e["id"] for e in sent) == sorted(e["id"] for e in kept)
    result = services.ingest.ingest_batch(sent)
    assert result.accepted == len(sent)
    assert services.queries.active_builds(everyone) == 0
    assert simulator.pending() == []


def test_a_stopping_simulator_keeps_its_builds_in_progress_for_the_next_start(services):
    now = time.time() - 7200  # the simulated run lies in the past: every event is acceptable now
    simulator = Simulator(services.ingest.ingest_batch, rate=5.0, seed=3, clock=lambda: now)
    started = simulator.step(now + 20)  # builds started, most of their events still ahead
    services.ingest.ingest_batch(started)
    left = simulator.pending()
    assert left and all(e["ts"] > now + 20 for e in left)
    save_in_progress(services.store, left)
    running = ({e["build_id"] for e in started if e["type"] == "build.started"}
               - {e["build_id"] for e in started if e["type"] == "build.finished"})
    assert running
    assert {e["build_id"] for e in left if e["type"] == "build.finished"} == running

    again = Simulator(services.ingest.ingest_batch, rate=0.0, clock=lambda: now)
    again.schedule(take_in_progress(services.store))
    services.ingest.ingest_batch(again.step(max(e["ts"] for e in left)))
    assert services.queries.active_builds(system_scope(now - 3600, now + 7200, None)) == 0
