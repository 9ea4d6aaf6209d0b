"""The build log's day facts across the day a day stops being recent, and after a late event."""
from __future__ import annotations

import pytest

from services.queries.buildlog import BuildLog
from services.scope import system_scope

pytestmark = pytest.mark.integration

DAY = 86400


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _builds(day: float, n: int, prefix: str, hour: int = 10) -> list[dict]:
    events = []
    for i in range(n):
        ts = day + hour * 3600 + i * 60
        build = f"{prefix}-{i}"
        events.append({"id": f"{build}-s", "type": "build.stage", "ts": ts - 30, "partner_id": "acme-bank",
                       "build_id": build, "stage": "compilation", "status": "success", "duration_s": 20.0 + i})
        events.append({"id": f"{build}-f", "type": "build.finished", "ts": ts, "partner_id": "acme-bank",
                       "build_id": build, "build_type": "debug", "status": "success", "duration_s": 30.0 + i})
    return events


@pytest.fixture
def world(services):
    day = (services.clock() // DAY - 5) * DAY  # a day safely inside the retention
    clock = Clock(day + 23 * 3600)
    services.ingest.clock = clock  # events of "today" for the ingest as for the log
    log = BuildLog(services.store, clock=clock, retention_s=services.settings.retention_s)
    return services, log, clock, day


def test_a_day_leaving_the_recent_window_keeps_every_row_and_the_grid_reads_them(world):
    services, log, clock, day = world
    scope = system_scope(day, day + DAY)
    services.ingest.ingest_batch(_builds(day, 5, "a"))
    assert len(log.table(scope)) == 5                                 # recent: read in process
    services.ingest.ingest_batch(_builds(day, 7, "b", hour=14))
    assert len(log.table(scope)) == 12
    clock.now = day + 2 * DAY + 3600                                  # two days later: no longer recent
    table, pending = log.table_ready(scope)                           # a page: never builds a day itself
    assert (len(table), pending) == (12, 0)                           # built from what was read while recent
    rows = log.rows(table.take(slice(None)))
    assert [r["build_id"] for r in rows] == [f"a-{i}" for i in range(5)] + [f"b-{i}" for i in range(7)]
    assert [r["duration_s"] for r in rows][:2] == [30.0, 31.0]
    assert services.store.client.hget(services.store.keys.build_facts(_day(day)), "stamp")  # and stored


def test_a_late_event_keeps_the_day_on_the_page_until_its_facts_are_built_again(world):
    services, log, clock, day = world
    scope = system_scope(day, day + DAY)
    services.ingest.ingest_batch(_builds(day, 4, "a"))
    clock.now = day + 3 * DAY
    assert log.warm(5) >= 1
    table, pending = log.table_ready(scope)
    assert (len(table), pending) == (4, 0)
    services.ingest.ingest_batch(_builds(day, 1, "late", hour=20))   # arrives two days late
    table, pending = log.table_ready(scope)
    assert (len(table), pending) == (4, 1)                            # the day as it was, said to be pending
    fresh = BuildLog(services.store, clock=clock, retention_s=services.settings.retention_s)
    table, pending = fresh.table_ready(scope)                         # another process: the stored, older facts
    assert (len(table), pending) == (4, 1)
    assert log.warm(5) == 1                                           # the worker builds it again
    table, pending = log.table_ready(scope)
    assert (len(table), pending) == (5, 0)
    assert len(log.table(scope)) == 5


def _day(ts: float) -> str:
    from services.store.keys import day_of
    return day_of(ts)


def test_an_empty_partner_set_has_no_rows_in_either_form(world):
    services, log, clock, day = world
    services.ingest.ingest_batch(_builds(day, 3, "a"))
    scope = system_scope(day, day + DAY, [])  # a partner manager without partners
    table, pending = log.table_ready(scope)
    assert (len(table), pending) == (0, 0)
    columns, pending = log.table_ready(scope, columns=("status", "duration_s"))
    assert set(columns) == {"status", "duration_s"} and len(columns["duration_s"]) == 0
    assert len(log.table_ready(system_scope(day, day + DAY), columns=("status",))[0]["status"]) == 3
