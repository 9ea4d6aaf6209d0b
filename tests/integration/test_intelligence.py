"""Build intelligence against a real store: failure signatures, stage bottlenecks, duration
percentiles, the builds grid, exports, anomalies and forecasts. Every figure is compared with what
a person computes from the raw events ingested here (tests/reference.py style)."""
from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np
import orjson
import pytest
import requests

from app.settings import Settings
from services.analytics.signatures import signature
from services.container import build_services
from services.queries.buildlog import BUILD_COLUMNS
from services.queries.forecasts import Forecaster
from services.scope import system_scope
from services.vocabulary import BUILD_TYPES, STAGES
from tests.conftest import InProcessServer, sign_in, wait_until

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet", "nova-fin"]
PASSWORD = "correct horse battery"
HOUR, DAY = 3600, 86400

# Failure messages: a constant prefix (how the test knows the template of a message by itself)
# followed by variable parts (versions, numbers, ids, paths, quotes) that must not split a signature.
TEMPLATES = {
    "resolve": lambda r: (f"Could not resolve com.acme:lib-core:{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}"
                          f" from https://repo{r.randint(1, 99)}.example.com/maven2 after {r.randint(2, 9)} attempts"),
    "kotlin": lambda r: (f"Execution failed for task ':app:compile{r.choice(['Release', 'Debug', 'Store'])}Kotlin' at "
                         f"/builds/{r.randint(1000, 99999)}/app/src/main/java/Foo{r.randint(1, 9)}.kt:{r.randint(1, 900)}"),
    "keystore": lambda r: f"Keystore was tampered with, or password was incorrect (job {uuid.UUID(int=r.getrandbits(128))})",
    "daemon": lambda r: f"Gradle daemon disappeared unexpectedly after {r.randint(30, 4000)} s, exit code {r.randint(1, 255)}",
    "image": lambda r: (f"Image too small: icon {r.choice([16, 24, 32, 48])}x{r.choice([16, 24, 32, 48])} in "
                        f"res/mipmap-{r.choice(['hdpi', 'xhdpi'])}/ic_launcher_{r.randint(1, 99)}.png"),
    "history_only": lambda r: f"Dex merge overflow: {r.randint(65536, 99999)} methods",
    "fresh": lambda r: f"Upload rejected by store: HTTP {r.choice([500, 502, 503])} after {r.randint(1, 60)} s",
}
PREFIXES = {name: make(random.Random(0)).split(" ")[0] + " " + make(random.Random(0)).split(" ")[1]
            for name, make in TEMPLATES.items()}
# templates of the period / of the history before it (history_only never in the period, fresh only in it)
PERIOD_TEMPLATES = ("resolve", "kotlin", "keystore", "daemon", "image", "fresh")
HISTORY_TEMPLATES = ("resolve", "kotlin", "daemon", "history_only")
CATEGORIES = ("gradle", "signing", "infra", "assets")
BASE_STAGE_S = {"asset_processing": 20.0, "dependency_resolution": 40.0, "compilation": 200.0, "packaging": 30.0,
                "signing": 12.0, "upload": 25.0}
SLOW_STAGE = "dependency_resolution"


def template_of(message: str) -> str:
    """The template a message was made from (by its constant prefix)."""
    return next(name for name, prefix in PREFIXES.items() if message.startswith(prefix))


def build_events(rng: random.Random, build_id: str, pid: str, finish_ts: float, *, status: str, build_type: str,
                 slow: bool = False, message: str | None = None, failed_stage: str | None = None) -> list[dict]:
    """One build: started, its stages one after another (a stage's event at its end; signing skipped
    for debug builds, with a duration that must not count), finished."""
    durations = {s: round(rng.lognormvariate(math.log(base), 0.4), 3) for s, base in BASE_STAGE_S.items()}
    if slow:
        durations[SLOW_STAGE] = round(rng.uniform(900, 1500), 3)
    stages = list(STAGES)
    if status == "failed":
        stages = stages[:stages.index(failed_stage) + 1]
    elif status == "cancelled":
        stages = stages[:3]
    total = sum(durations[s] for s in stages if not (s == "signing" and build_type == "debug")) + rng.uniform(1, 5)
    start_ts = finish_ts - total
    events = [{"id": f"{build_id}-s", "type": "build.started", "ts": start_ts, "partner_id": pid,
               "build_id": build_id, "build_type": build_type, "app_version": "2.4.1"}]
    t = start_ts
    for k, stage in enumerate(stages):
        skipped = stage == "signing" and build_type == "debug"
        t += 0.0 if skipped else durations[stage]
        stage_status = "skipped" if skipped else ("failed" if status == "failed" and stage == failed_stage else "success")
        events.append({"id": f"{build_id}-{k}", "type": "build.stage", "ts": min(t, finish_ts - 0.5), "partner_id": pid,
                       "build_id": build_id, "stage": stage, "status": stage_status,
                       "duration_s": 45.0 if skipped else durations[stage]})
    finished = {"id": f"{build_id}-f", "type": "build.finished", "ts": finish_ts, "partner_id": pid,
                "build_id": build_id, "build_type": build_type, "status": status, "duration_s": round(total, 3)}
    if status == "failed":
        finished.update(failed_stage=failed_stage, error_category=rng.choice(CATEGORIES))
        if message is not None:
            finished["error_message"] = message
    events.append(finished)
    return events


def world_events(now: float, seed: int = 7) -> list[dict]:
    """~900 builds over the last 2 days (the period) and 250 between 12 and 3 days ago (history
    only: the period's signatures' first seen, stored days of the build log, day rollups)."""
    rng = random.Random(seed)
    events: list[dict] = []
    period = (now - 2 * DAY, now - 120)
    history = (now - 12 * DAY, now - 3 * DAY)
    for i in range(1150):
        in_period = i < 900
        lo, hi = period if in_period else history
        pid = rng.choice(PARTNERS)
        build_type = rng.choice(BUILD_TYPES)
        status = rng.choices(["success", "failed", "cancelled"], [0.8, 0.16, 0.04])[0]
        message = failed_stage = None
        if status == "failed":
            failed_stage = rng.choice(STAGES)
            if rng.random() < 0.9:  # some failures carry no message
                names = PERIOD_TEMPLATES if in_period else HISTORY_TEMPLATES
                message = TEMPLATES[rng.choice(names)](rng)
        events += build_events(rng, f"build-{i}", pid, rng.uniform(lo, hi), status=status, build_type=build_type,
                               slow=status != "cancelled" and rng.random() < 0.06, message=message,
                               failed_stage=failed_stage)
    return events


def short_forecast_wait(monkeypatch, server, seconds: float) -> None:
    """Make GET /api/v1/forecast answer 202 quickly (no background worker runs in InProcessServer):
    the wait is `settings.forecast_wait_s` (older code: app.api.intelligence.FORECAST_WAIT_S)."""
    module = sys.modules["app.api.intelligence"]  # app.api re-exports the blueprint under this name
    if hasattr(module, "FORECAST_WAIT_S"):
        monkeypatch.setattr(module, "FORECAST_WAIT_S", seconds)
    if hasattr(server.services.settings, "forecast_wait_s"):
        monkeypatch.setattr(server.services.settings, "forecast_wait_s", seconds)


def ingest(services, events: list[dict], batch: int = 5000) -> None:
    for i in range(0, len(events), batch):
        services.ingest.ingest_batch(events[i:i + batch])


def finished_in(events, start, end, partners=None) -> list[dict]:
    return [e for e in events if e["type"] == "build.finished" and start <= e["ts"] < end
            and (partners is None or e["partner_id"] in partners)]


def within(got, exact, rel=0.02) -> bool:
    return abs(got - exact) <= rel * abs(exact) + 1e-9


@pytest.fixture
def open_server(settings, redis_client):
    """An in-process server in open mode (every caller an admin), no collector."""
    server = InProcessServer(settings.model_copy(update={"collector_enabled": False}))
    yield server
    server.stop()


WORLD_SENTINEL = "test-intelligence:world"


def trend_start(now: float) -> int:
    """A period start one hour after a 3-hour boundary, ~2 days before `now`."""
    return int(now - 2 * DAY) // (3 * HOUR) * (3 * HOUR) + 4 * HOUR


class World(NamedTuple):
    server: InProcessServer
    events: list
    start: int
    end: int
    now: float


@pytest.fixture(scope="module")
def world_state():
    state: dict = {}
    yield state
    if state.get("world"):
        state["world"].server.stop()


@pytest.fixture
def world(world_state, valkey_url, tmp_path_factory) -> World:
    """An open server with the world ingested (built once for the module, again only when another
    test flushed the store). The period [start, end) has whole-hour/minute edges, so it is exactly
    what the rollups cover. The world's tests only read."""
    import redis

    client = redis.Redis.from_url(valkey_url)
    try:
        if world_state.get("world") is None or not client.exists(WORLD_SENTINEL):
            if world_state.get("world") is not None:
                world_state.pop("world").server.stop()
            client.flushall()
            settings = Settings(_env_file=None, redis_url=valkey_url, data_dir=tmp_path_factory.mktemp("world"),
                                ingest_tokens="", collector_enabled=False)
            server = InProcessServer(settings)
            now = time.time()
            events = world_events(now)
            # a failure in the hour before trend_start(now): the failure trend must not count it
            events += build_events(random.Random(5), "before-trend-period", "nova-fin", trend_start(now) - 1800,
                                   status="failed", build_type="store", message=TEMPLATES["resolve"](random.Random(5)),
                                   failed_stage="dependency_resolution")
            ingest(server.services, events)
            client.set(WORLD_SENTINEL, "1")
            world_state["world"] = World(server, events, int(now - 2 * DAY) // HOUR * HOUR, int(now) // 60 * 60 + 60, now)
    finally:
        client.close()
    return world_state["world"]


def api(server, path, session=None, **params) -> requests.Response:
    """GET `path` on `server` (as `session`'s user, or anonymously)."""
    return (session or requests).get(server.url + path, params=params, timeout=30)


# -- failure signatures ------------------------------------------------------------------------------------


def test_failures_group_every_failed_build_by_signature(world):
    server, events, start, end, _ = world
    answer = api(server, "/api/v1/failures", **{"from": start, "to": end})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    failed = [e for e in finished_in(events, start, end) if e["status"] == "failed" and e.get("error_message")]
    by_template = defaultdict(list)
    for e in failed:
        by_template[template_of(e["error_message"])].append(e)
    sigs = body["signatures"]
    assert body["failed_with_message"] == len(failed) == sum(s["count"] for s in sigs)
    # one signature per template: the same message with other numbers, ids, paths and quotes
    got = {template_of(s["example"]): s for s in sigs}
    assert len(got) == len(sigs) == len(by_template), [s["pattern"] for s in sigs]
    assert set(got) == set(PERIOD_TEMPLATES)
    history = defaultdict(list)
    for e in events:
        if e["type"] == "build.finished" and e.get("error_message"):
            history[template_of(e["error_message"])].append(e["ts"])
    for name, entry in got.items():
        mine = by_template[name]
        assert entry["count"] == len(mine), name
        assert entry["share"] == pytest.approx(len(mine) / len(failed))
        assert set(entry["partners"]) == {e["partner_id"] for e in mine}
        assert entry["stages"] == dict(Counter(e["failed_stage"] for e in mine)), name
        assert entry["categories"] == dict(Counter(e["error_category"] for e in mine)), name
        assert template_of(entry["pattern"]) == name
        assert entry["signature"] == signature(mine[0]["error_message"])[0]
        # first / last seen span the whole stored history, not only the period
        assert entry["first_seen"] == pytest.approx(min(history[name]), abs=1e-3), name
        assert entry["last_seen"] == pytest.approx(max(history[name]), abs=1e-3), name
        assert entry["new"] is (min(history[name]) >= start), name
    assert got["fresh"]["new"] and not got["resolve"]["new"]
    assert [s["count"] for s in sigs] == sorted((s["count"] for s in sigs), reverse=True)


@pytest.mark.parametrize("partners", [["zenith-pay"], ["acme-bank", "orbit-wallet"]])
def test_failures_of_some_partners_show_only_their_builds_and_history(world, partners):
    server, events, start, end, _ = world
    keep = set(partners)
    body = api(server, "/api/v1/failures", **{"from": start, "to": end, "partner": ",".join(partners)}).json()
    failed = [e for e in finished_in(events, start, end, keep) if e["status"] == "failed" and e.get("error_message")]
    assert body["failed_with_message"] == len(failed) == sum(s["count"] for s in body["signatures"]) > 0
    own = defaultdict(list)
    for e in events:
        if e["type"] == "build.finished" and e.get("error_message") and e["partner_id"] in keep:
            own[template_of(e["error_message"])].append(e)
    assert {template_of(s["example"]) for s in body["signatures"]} == {template_of(e["error_message"]) for e in failed}
    for entry in body["signatures"]:
        name = template_of(entry["example"])
        mine = [e for e in failed if template_of(e["error_message"]) == name]
        assert entry["count"] == len(mine)
        by_partner = Counter(e["partner_id"] for e in mine)
        assert entry["partners"] == sorted(by_partner, key=lambda p: (-by_partner[p], p))
        assert entry["first_seen"] == pytest.approx(min(e["ts"] for e in own[name]), abs=1e-3)
        assert entry["last_seen"] == pytest.approx(max(e["ts"] for e in own[name]), abs=1e-3)
        assert entry["new"] is (min(e["ts"] for e in own[name]) >= start)
        # the example shown is one of these partners' own messages
        assert entry["example"] in {e["error_message"] for e in own[name]}
    assert "nova-fin" not in orjson.dumps(body).decode()


@pytest.mark.parametrize("partners", [None, ["nova-fin"]])
def test_failures_over_a_month_read_from_day_rollups(world, partners):
    """30 days: whole days from the day rollups inside, hours and minutes at the edges."""
    server, events, _, end, now = world
    start = int(now - 30 * DAY) // HOUR * HOUR + 1800
    params = {"from": start, "to": end, **({"partner": partners[0]} if partners else {})}
    body = api(server, "/api/v1/failures", **params).json()
    failed = [e for e in finished_in(events, start, end, partners and set(partners))
              if e["status"] == "failed" and e.get("error_message")]
    assert body["failed_with_message"] == len(failed)
    assert {template_of(s["example"]): s["count"] for s in body["signatures"]} == \
        dict(Counter(template_of(e["error_message"]) for e in failed))
    assert all(s["new"] for s in body["signatures"])  # the whole history is inside the period
    summary = api(server, "/api/v1/summary", **params).json()
    assert summary["builds_failed"] == len([e for e in finished_in(events, start, end, partners and set(partners))
                                            if e["status"] == "failed"])


def test_failure_trends_add_up_to_the_counts(world):
    """A period starting one hour after a 3-hour boundary, with a failure in the hour before it: the
    trend's windows tile the period the counts cover, so they add up to the counts."""
    server, events, _, end, now = world
    start = trend_start(now)
    body = api(server, "/api/v1/failures", **{"from": start, "to": end}).json()
    assert body["trend_step_s"] % 60 == 0 and len(body["trend_ts"]) <= 30
    failed = [e for e in finished_in(events, start, end) if e["status"] == "failed" and e.get("error_message")]
    assert body["failed_with_message"] == len(failed)
    for entry in body["signatures"]:
        assert len(entry["trend"]) == len(body["trend_ts"])
        assert body["trend_ts"][0] >= start
        assert sum(entry["trend"]) == entry["count"], (entry["pattern"], body["trend_ts"][0], start)


# -- stage bottlenecks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("period", "partners"), [("recent", None), ("recent", ["orbit-wallet", "nova-fin"]),
                                                  ("history", None)])
def test_bottlenecks_match_the_raw_stage_events(world, period, partners):
    server, events, start, end, now = world
    if period == "history":  # whole hours (the hour rollups) on stored days
        start, end = int(now - 10 * DAY) // HOUR * HOUR, int(now - 4 * DAY) // HOUR * HOUR
    params = {"from": start, "to": end}
    if partners:
        params["partner"] = ",".join(partners)
    answer = api(server, "/api/v1/bottlenecks", **params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    keep = set(partners or PARTNERS)
    ran = [e for e in events if e["type"] == "build.stage" and start <= e["ts"] < end and e["partner_id"] in keep
           and e["status"] != "skipped"]
    seconds = {s: sum(e["duration_s"] for e in ran if e["stage"] == s) for s in STAGES}
    completed = [e for e in finished_in(events, start, end, keep) if e["status"] != "cancelled"]
    threshold = float(np.percentile([e["duration_s"] for e in completed], 95))
    slow = {e["build_id"] for e in completed if e["duration_s"] >= threshold}
    stage_of = defaultdict(dict)  # build -> stage -> seconds (every stage event of the build, any time)
    for e in events:
        if e["type"] == "build.stage" and e["status"] != "skipped":
            stage_of[e["build_id"]][e["stage"]] = e["duration_s"]
    slow_s = {s: sum(stage_of[b].get(s, 0.0) for b in slow) for s in STAGES}
    assert body["slow_threshold_s"] == pytest.approx(threshold)
    assert body["slow_builds"] == len(slow)
    rows = {r["stage"]: r for r in body["stages"]}
    assert set(rows) == set(STAGES)
    for stage in STAGES:
        row = rows[stage]
        assert row["share_of_time"] == pytest.approx(seconds[stage] / sum(seconds.values()), rel=1e-6), stage
        assert row["share_of_slowest"] == pytest.approx(slow_s[stage] / sum(slow_s.values()), rel=1e-5), stage
        durations = [e["duration_s"] for e in ran if e["stage"] == stage]
        for q in (50, 95):
            exact = float(np.percentile(durations, q))
            assert within(row[f"p{q}_s"], exact), (stage, q, row[f"p{q}_s"], exact)
    # the stage that makes the slow builds slow, in the sentence
    extra = {s: slow_s[s] / len(slow) - sum(stage_of[e["build_id"]].get(s, 0.0) for e in completed) / len(completed)
             for s in STAGES}
    assert max(extra, key=extra.get) == SLOW_STAGE
    assert body["driver"]["stage"] == SLOW_STAGE
    assert body["driver"]["share_of_slowest"] == pytest.approx(rows[SLOW_STAGE]["share_of_slowest"])
    assert body["sentence"].startswith("Dependency resolution drives slow builds"), body["sentence"]
    assert f"({len(slow)} builds over" in body["sentence"]


# -- duration percentiles per build type --------------------------------------------------------------------


def test_duration_percentiles_per_build_type_and_window(world):
    server, events, _, end, now = world
    step = 6 * HOUR
    start = int(now - 2 * DAY) // step * step + step
    result = server.services.intelligence.duration_percentiles(system_scope(start, end), step)
    assert result["step_s"] == step
    assert result["ts"][0] == start and all(b - a == step for a, b in zip(result["ts"], result["ts"][1:]))
    completed = [e for e in finished_in(events, start, end) if e["status"] != "cancelled"]
    checked = 0
    for i, ts in enumerate(result["ts"]):
        for build_type in (*BUILD_TYPES, "all"):
            durations = [e["duration_s"] for e in completed if ts <= e["ts"] < ts + step
                         and build_type in ("all", e["build_type"])]
            for q in (50, 95, 99):
                got = result["types"][build_type][f"p{q}"][i]
                if not durations:
                    assert got is None
                    continue
                exact = float(np.percentile(durations, q))
                assert within(got, exact), (ts, build_type, q, got, exact)
                checked += 1
    assert checked >= 3 * 4 * 6


# -- the builds grid ---------------------------------------------------------------------------------------


def test_builds_grid_total_equals_the_summary(world):
    server, events, _, end, now = world
    services = server.services
    start = now - 2 * DAY + 1234.5  # not aligned: the grid aligns it like the summary
    scope = system_scope(start, end)
    summary = services.queries.summary(scope)
    grid = services.intelligence.builds(scope, start_row=0, end_row=50)
    assert grid["total"] == summary["builds_total"] == len(finished_in(events, summary["from"], summary["to"]))
    newest = sorted(finished_in(events, summary["from"], summary["to"]), key=lambda e: -e["ts"])[:50]
    assert [r["build_id"] for r in grid["rows"]] == [e["build_id"] for e in newest]  # newest first by default
    for partner in ("acme-bank", "orbit-wallet"):
        part = system_scope(start, end, [partner])
        assert services.intelligence.builds(part, end_row=1)["total"] == services.queries.summary(part)["builds_total"]


def test_builds_grid_filters_sorts_and_pages(world):
    """Over yesterday and today (the days the build log extends in process)."""
    server, events, _, end, now = world
    services = server.services
    start = int(now) // DAY * DAY - DAY + 1234.5
    scope = system_scope(start, end)
    summary = services.queries.summary(scope)
    expected = {e["build_id"]: e for e in finished_in(events, summary["from"], summary["to"])}
    assert services.intelligence.builds(scope, end_row=0)["total"] == summary["builds_total"] == len(expected)
    for name in ("keystore", "kotlin", "fresh"):
        mine = {b for b, e in expected.items() if e.get("error_message") and template_of(e["error_message"]) == name}
        sig = signature(next(expected[b]["error_message"] for b in mine))[0]
        rows = services.intelligence.builds(scope, filters={"error_signature": sig}, start_row=0, end_row=10_000)
        assert rows["total"] == len(mine) and {r["build_id"] for r in rows["rows"]} == mine, name
        assert all(r["error_signature"] == sig and r["status"] == "failed" for r in rows["rows"])
    # several filters at once, a list of values, sorted by duration, paged
    want = sorted((e for e in expected.values() if e["partner_id"] == "acme-bank" and e["status"] in ("failed", "cancelled")),
                  key=lambda e: -e["duration_s"])
    pages = [services.intelligence.builds(scope, filters={"partner_id": "acme-bank", "status": ["failed", "cancelled"]},
                                          sort=("duration_s", True), start_row=i, end_row=i + 7)
             for i in range(0, len(want) + 7, 7)]
    assert all(p["total"] == len(want) for p in pages)
    got = [r for p in pages for r in p["rows"]]
    assert [r["build_id"] for r in got] == [e["build_id"] for e in want]
    for row in got:
        event = expected[row["build_id"]]
        assert row["duration_s"] == event["duration_s"] and row["finished_at"] == pytest.approx(event["ts"])
        assert row["error_message"] == event.get("error_message") and row["failed_stage"] == event.get("failed_stage")
        assert row["error_category"] == event.get("error_category") and row["build_type"] == event["build_type"]
    # the newest builds, read day by day from the end, are the grid's first page sorted by time
    failed = sorted((e for e in expected.values() if e["status"] == "failed"), key=lambda e: -e["ts"])
    for limit in (1, 5, len(failed) + 3):
        recent = services.intelligence.recent_builds(scope, filters={"status": "failed"}, limit=limit)
        assert [r["build_id"] for r in recent["rows"]] == [e["build_id"] for e in failed[:limit]], limit
        assert recent["days_pending"] == 0


# -- exports -----------------------------------------------------------------------------------------------

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(math.floor(ts), timezone.utc).strftime(ISO_Z)


def export_rows(fmt: str, text: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if fmt == "json":
        return orjson.loads(text)
    assert text == "" or text.endswith("\n")
    return [orjson.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
@pytest.mark.parametrize("period", ["recent", "history"])
def test_builds_export_has_the_summary_rows(world, fmt, period):
    """Unaligned `from` (and, over the history, `to`): the export covers the summary's period."""
    server, events, _, end, now = world
    span = {"recent": (int(now - 2 * DAY) + 1234, end), "history": (now - 10 * DAY + 1234.5, now - 4 * DAY - 777)}
    params = {"from": span[period][0], "to": span[period][1], "partner": "acme-bank,zenith-pay"}
    summary = api(server, "/api/v1/summary", **params).json()
    if period == "history":  # the hour rollups: edges aligned to whole hours
        assert summary["from"] % HOUR == 0 and summary["to"] % HOUR == 0 and summary["to"] > params["to"]
    answer = api(server, f"/api/v1/export/builds.{fmt}", **params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith({"csv": "text/csv", "json": "application/json",
                                                      "ndjson": "application/x-ndjson"}[fmt])
    rows = export_rows(fmt, answer.content.decode("utf-8"))
    assert len(rows) == summary["builds_total"] > 0
    expected = {e["build_id"]: e for e in finished_in(events, summary["from"], summary["to"], {"acme-bank", "zenith-pay"})}
    assert {r["build_id"] for r in rows} == set(expected)
    for row in rows:
        event = expected[row["build_id"]]
        assert row["finished_at"] == iso(event["ts"])
        assert float(row["duration_s"]) == event["duration_s"]
        assert row["partner_id"] == event["partner_id"] and row["status"] == event["status"]
        message = event.get("error_message")
        if fmt == "csv":
            assert row["error_message"] == (message or "")
            assert row["error_signature"] == (signature(message)[0] if message else "")
        else:
            assert row["error_message"] == message
            assert row["error_signature"] == (signature(message)[0] if message else None)


def test_builds_grid_of_stored_days_read_back_by_another_process(world):
    """Days before yesterday are answered from the facts stored in the store: a second set of
    services (another process) reads the same grid and bottlenecks back from them."""
    server, events, _, _, now = world
    start, end = now - 10 * DAY + 1234.5, now - 4 * DAY - 777
    scope = system_scope(start, end)
    first = server.services.intelligence.builds(scope, filters={"status": "failed"}, sort=("duration_s", False),
                                                 end_row=10_000)
    other = build_services(server.services.settings)
    summary = other.queries.summary(scope)
    expected = {e["build_id"]: e for e in finished_in(events, summary["from"], summary["to"])}
    assert other.intelligence.builds(scope, end_row=0)["total"] == summary["builds_total"] == len(expected)
    again = other.intelligence.builds(scope, filters={"status": "failed"}, sort=("duration_s", False), end_row=10_000)
    assert again == first
    failed = sorted((e for e in expected.values() if e["status"] == "failed"), key=lambda e: e["duration_s"])
    assert [r["build_id"] for r in again["rows"]] == [e["build_id"] for e in failed]
    only = {b for b, e in expected.items() if e.get("error_message") and template_of(e["error_message"]) == "history_only"}
    sig = signature(TEMPLATES["history_only"](random.Random(1)))[0]
    rows = other.intelligence.builds(scope, filters={"error_signature": [sig]}, end_row=10_000)
    assert {r["build_id"] for r in rows["rows"]} == only and rows["total"] == len(only) > 0
    assert other.intelligence.bottlenecks(scope)["stages"] == server.services.intelligence.bottlenecks(scope)["stages"]


def test_failures_export_lists_the_signatures_of_the_api(world):
    server, _, start, end, _ = world
    params = {"from": start, "to": end, "partner": "orbit-wallet"}
    signatures = api(server, "/api/v1/failures", **params).json()["signatures"]
    rows = export_rows("csv", api(server, "/api/v1/export/failures.csv", **params).text)
    assert [r["signature"] for r in rows] == [s["signature"] for s in signatures]
    for row, entry in zip(rows, signatures):
        assert int(row["count"]) == entry["count"] and row["pattern"] == entry["pattern"]
        assert row["first_seen"] == iso(entry["first_seen"]) and row["last_seen"] == iso(entry["last_seen"])
        assert row["new"] == ("true" if entry["new"] else "false")
        assert row["partners"] == "orbit-wallet"


def test_export_file_name_names_the_period(world):
    server = world.server
    today = int(time.time()) // DAY * DAY
    answer = api(server, "/api/v1/export/builds.csv", **{"from": iso(today - 30 * DAY), "to": iso(today)})
    assert answer.status_code == 200
    first = datetime.fromtimestamp(today - 30 * DAY, timezone.utc).strftime("%Y%m%d")
    last = datetime.fromtimestamp(today, timezone.utc).strftime("%Y%m%d")
    assert answer.headers["Content-Disposition"] == f'attachment; filename="lulupay-builds-{first}-{last}.csv"'
    answer = api(server, "/api/v1/export/stages.ndjson", **{"from": iso(today - 30 * DAY), "to": iso(today)})
    assert answer.headers["Content-Disposition"] == f'attachment; filename="lulupay-stages-{first}-{last}.ndjson"'


# -- the same reads on small, purpose-made stores ------------------------------------------------------


def test_new_counts_a_signature_first_seen_inside_the_period_the_counts_cover(open_server):
    """A range starting mid-hour (hour rollups: the period is aligned down to the hour) counts a
    failure from the hour's first minutes; its signature, first seen there, is new in that period."""
    now = time.time()
    hour = int(now - 5 * DAY) // HOUR * HOUR
    rng = random.Random(3)
    events = build_events(rng, "early", "acme-bank", hour + 600, status="failed", build_type="release",
                          message="Lint found 3 errors in module app", failed_stage="compilation")
    events += build_events(rng, "old", "acme-bank", hour - 3 * DAY, status="failed", build_type="release",
                           message="Manifest merger failed with 2 errors", failed_stage="packaging")
    events += build_events(rng, "later", "acme-bank", hour + 7200, status="failed", build_type="release",
                           message="Manifest merger failed with 5 errors", failed_stage="packaging")
    ingest(open_server.services, events)
    body = api(open_server, "/api/v1/failures", **{"from": hour + 1800, "to": hour + 4 * HOUR}).json()
    by_pattern = {s["example"].split(" ")[0]: s for s in body["signatures"]}
    assert body["failed_with_message"] == 2 and set(by_pattern) == {"Lint", "Manifest"}
    assert by_pattern["Manifest"]["new"] is False  # first seen 3 days earlier
    assert by_pattern["Lint"]["first_seen"] == pytest.approx(hour + 600)
    assert by_pattern["Lint"]["new"] is True, (body["from"], by_pattern["Lint"]["first_seen"])


def test_builds_grid_shows_rows_of_the_day_before_yesterday(open_server):
    services = open_server.services
    today = int(time.time()) // DAY * DAY
    rng = random.Random(17)
    events = []
    for k, ts in enumerate((today - 2 * DAY + HOUR, today - DAY + HOUR, today + 60)):
        events += build_events(rng, f"lint-{k}", "acme-bank", min(ts, time.time() - 30), status="failed",
                               build_type="release", message=f"Lint found {k + 2} errors in module app",
                               failed_stage="compilation")
    ingest(services, events)
    scope = system_scope(today - 2 * DAY, time.time())
    sig = signature("Lint found 9 errors in module app")[0]
    rows = services.intelligence.builds(scope, filters={"error_signature": sig}, end_row=100)
    assert rows["total"] == 3
    assert {r["build_id"] for r in rows["rows"]} == {"lint-0", "lint-1", "lint-2"}


def test_csv_export_defuses_formulas_but_not_numbers(open_server):
    now = time.time()
    rng = random.Random(11)
    events = build_events(rng, "=cmd|' /C calc'!A0", "acme-bank", now - 600, status="failed", build_type="release",
                          message='=HYPERLINK("http://x")', failed_stage="signing")
    events += build_events(rng, "-1234", "acme-bank", now - 500, status="failed", build_type="debug",
                           message="@SUM(A1:A9) is not a build", failed_stage="upload")
    events += build_events(rng, "plain-build", "acme-bank", now - 400, status="failed", build_type="store",
                           message="+ tab\tand, comma", failed_stage="compilation")
    ingest(open_server.services, events)
    # a period without builds: the header alone, an empty array, an empty body
    empty = {"from": int(now) - 3 * HOUR, "to": int(now) - 2 * HOUR}
    assert api(open_server, "/api/v1/export/builds.csv", **empty).text.split("\r\n") == [",".join(BUILD_COLUMNS), ""]
    assert api(open_server, "/api/v1/export/builds.json", **empty).json() == []
    assert api(open_server, "/api/v1/export/builds.ndjson", **empty).content == b""
    params = {"from": int(now) - HOUR, "to": int(now) + 60}
    records = list(csv.reader(io.StringIO(api(open_server, "/api/v1/export/builds.csv", **params).text, newline="")))
    header, rows = records[0], records[1:]
    by_id = {row[header.index("build_id")].lstrip("'"): dict(zip(header, row)) for row in rows}
    assert len(by_id) == 3
    hyper = by_id["=cmd|' /C calc'!A0"]
    assert hyper["error_message"] == "'" + '=HYPERLINK("http://x")'
    assert hyper["build_id"] == "'=cmd|' /C calc'!A0"
    assert by_id["-1234"]["build_id"] == "'-1234" and by_id["-1234"]["error_message"] == "'@SUM(A1:A9) is not a build"
    assert by_id["plain-build"]["build_id"] == "plain-build"
    assert by_id["plain-build"]["error_message"] == "'+ tab\tand, comma"
    finished = {e["build_id"]: e for e in events if e["type"] == "build.finished"}
    for build_id, row in by_id.items():
        assert row["duration_s"] == repr(finished[build_id]["duration_s"])  # numbers as they are
        assert row["finished_at"] == iso(finished[build_id]["ts"])
    # JSON keeps the text as it is
    rows = orjson.loads(api(open_server, "/api/v1/export/builds.json", **params).content)
    assert {r["error_message"] for r in rows} == {'=HYPERLINK("http://x")', "@SUM(A1:A9) is not a build",
                                                  "+ tab\tand, comma"}


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/api/v1/export/nothing.csv", {}, "dataset"),
    ("/api/v1/export/builds.xlsx", {}, "format"),
    ("/api/v1/export/nothing.xlsx", {}, "dataset"),
    ("/api/v1/export/builds.csv", {"from": "yesterday-ish"}, "from"),
    ("/api/v1/export/builds.csv", {"to": "2026-13-45T99:00:00Z"}, "to"),
    ("/api/v1/export/builds.json", {"from": "2026-11-20T00:00:00Z", "to": "2026-11-10T00:00:00Z"}, "from"),
    ("/api/v1/export/builds.ndjson", {"partner": "NOT A PARTNER"}, "partner"),
])
def test_export_refuses_bad_arguments_naming_the_field(open_server, path, params, field):
    answer = api(open_server, path, **params)
    assert answer.status_code == 400, (answer.status_code, answer.text[:200])
    assert answer.json()["field"] == field


def test_export_of_a_partner_manager_holds_only_their_partners(login_server):
    services = login_server.services
    now = time.time()
    rng = random.Random(13)
    events = [{"id": f"p-{pid}", "type": "partner.upserted", "ts": now - 4000, "partner_id": pid, "name": pid.title(),
               "tier": "pro", "monthly_build_quota": 100, "status": "active"} for pid in PARTNERS]
    for i in range(30):
        events += build_events(rng, f"x-{i}", PARTNERS[i % 4], now - 3000 + i * 60, status="success",
                               build_type="release")
    ingest(services, events)
    services.users.add("pat", "partner_manager", ["acme-bank", "nova-fin"], PASSWORD)
    services.users.add("ada", "admin", [], PASSWORD)
    pat, ada = sign_in(login_server.url, "pat", PASSWORD), sign_in(login_server.url, "ada", PASSWORD)
    params = {"from": int(now) - 2 * HOUR, "to": int(now) + 60}
    mine = {e["build_id"] for e in events if e["type"] == "build.finished" and e["partner_id"] in ("acme-bank", "nova-fin")}
    for fmt in ("csv", "json", "ndjson"):
        answer = api(login_server, f"/api/v1/export/builds.{fmt}", pat, **params)
        assert answer.status_code == 200
        rows = export_rows(fmt, answer.text)
        assert {r["build_id"] for r in rows} == mine
    assert len(export_rows("csv", api(login_server, "/api/v1/export/builds.csv", ada, **params).text)) == 30
    only = export_rows("json", api(login_server, "/api/v1/export/builds.json", pat, partner="nova-fin", **params).text)
    assert {r["partner_id"] for r in only} == {"nova-fin"} and len(only) == 7
    for other in ("zenith-pay", "acme-bank,zenith-pay"):
        answer = api(login_server, "/api/v1/export/builds.csv", pat, partner=other, **params)
        assert answer.status_code == 403 and answer.json()["field"] == "partner"
        assert "zenith-pay" not in answer.text.replace(other, "")
    for dataset in ("stages", "failures", "partners", "assets"):
        text = api(login_server, f"/api/v1/export/{dataset}.csv", pat, **params).text
        assert "zenith-pay" not in text and "orbit-wallet" not in text, dataset
    assert {r["partner_id"] for r in export_rows("csv", api(login_server, "/api/v1/export/partners.csv", pat,
                                                              **params).text)} == {"acme-bank", "nova-fin"}
    stage_rows = export_rows("ndjson", api(login_server, "/api/v1/export/stages.ndjson", pat, **params).text)
    assert {r["build_id"] for r in stage_rows} == mine and {r["partner_id"] for r in stage_rows} == {"acme-bank", "nova-fin"}
    assert requests.get(login_server.url + "/api/v1/export/builds.csv", timeout=10).status_code == 401


# -- anomalies ---------------------------------------------------------------------------------------------

KEYSTORE = "Keystore was tampered with, or password was incorrect"


def rhythm_events(now: float, rng: random.Random) -> tuple[list[dict], list[int], int]:
    """25 days of hourly builds with a daily and weekly rhythm (weekday office hours busy, one
    failure an hour; quiet nights and weekends, none), and a 4-hour incident on a recent weekday:
    orbit-wallet's builds failing with one keystore message. (events, incident hours, last hour)."""
    last = int(now) // HOUR * HOUR  # the current, incomplete hour: nothing in it
    day = (last - DAY) // DAY * DAY
    while datetime.fromtimestamp(day, timezone.utc).weekday() >= 5:
        day -= DAY
    incident = [day + h * HOUR for h in (10, 11, 12, 13)]
    events = []
    for hour in range(last - 25 * DAY, last, HOUR):
        when = datetime.fromtimestamp(hour, timezone.utc)
        office = when.weekday() < 5 and 8 <= when.hour < 18
        n = 14 + rng.randint(-2, 2) if office else (6 + rng.randint(-1, 1) if when.weekday() >= 5 else 3 + rng.randint(-1, 1))
        failures = 1 if office else 0
        builds = [("failed" if k < failures else "success", rng.choice(PARTNERS), None) for k in range(n)]
        if hour in incident:
            builds += [("failed", "orbit-wallet", f"{KEYSTORE}: /keys/{rng.randint(100, 999)}/release.jks")
                       for _ in range(10)]
        for k, (status, pid, message) in enumerate(builds):
            e = {"id": f"r{hour}-{k}", "type": "build.finished", "ts": hour + rng.uniform(1, HOUR - 1),
                 "partner_id": pid, "build_id": f"r{hour}-{k}", "build_type": rng.choice(BUILD_TYPES),
                 "status": status, "duration_s": rng.uniform(200, 900)}
            if status == "failed":
                e.update(failed_stage="signing" if message else "dependency_resolution",
                         error_category="signing" if message else "gradle",
                         error_message=message or TEMPLATES["resolve"](rng))
            events.append(e)
    return events, incident, last


def test_anomalies_find_the_incident_and_its_cause(open_server):
    services = open_server.services
    events, incident, last = rhythm_events(time.time(), random.Random(23))
    ingest(services, events)
    scope = system_scope(last - 4 * DAY, last)
    result = services.anomalies.anomalies(scope, "success_rate", "1h")
    found = {a["ts"]: a for a in result["anomalies"]}
    assert set(incident) <= set(found), (sorted(found), incident)
    assert all(found[ts]["direction"] == "low" for ts in incident)
    assert len(set(found) - set(incident)) <= 1, sorted(set(found) - set(incident))  # the rhythm is not an anomaly
    for ts in incident:
        completed = [e for e in events if ts <= e["ts"] < ts + HOUR]
        assert found[ts]["value"] == pytest.approx(sum(e["status"] == "success" for e in completed) / len(completed))
        assert found[ts]["value"] < found[ts]["lower"] <= found[ts]["expected"]
    strongest = max(result["anomalies"], key=lambda a: abs(a["score"]))
    assert strongest["ts"] in incident
    cause = strongest["cause"]
    sig, pattern = signature(f"{KEYSTORE}: /keys/123/release.jks")
    top_signature = cause["contributors"]["signature"][0]
    assert top_signature["key"] == sig and top_signature["label"] == pattern
    assert cause["contributors"]["partner"][0]["key"] == "orbit-wallet"
    assert cause["contributors"]["stage"][0]["key"] == "signing"
    assert cause["dimension"] in ("signature", "partner", "stage")
    assert "Keystore was tampered with" in cause["sentence"] or "orbit-wallet" in cause["sentence"], cause["sentence"]
    # the volume rhythm (and the incident's few extra builds) is no builds anomaly either
    volume = services.anomalies.anomalies(scope, "builds", "1h", explain=False)
    assert {a["ts"] for a in volume["anomalies"]} <= set(incident)
    # the API answers the same, and names a bad parameter
    answer = api(open_server, "/api/v1/anomalies", metric="success_rate", step="1h", **{"from": last - 4 * DAY, "to": last})
    assert answer.status_code == 200
    assert [a["ts"] for a in answer.json()["anomalies"]] == [a["ts"] for a in result["anomalies"]]
    for bad in ({"metric": "happiness"}, {"step": "5m"}):
        answer = api(open_server, "/api/v1/anomalies", **bad)
        assert answer.status_code == 400 and answer.json()["field"] == next(iter(bad))


# -- forecasts ---------------------------------------------------------------------------------------------


def daily_events(now: float, rng: random.Random, days: int = 49) -> list[dict]:
    """`days` complete days of builds up to yesterday: busy weekdays, quiet weekends."""
    today = int(now) // DAY * DAY
    events = []
    for day in range(today - days * DAY, today, DAY):
        weekday = datetime.fromtimestamp(day, timezone.utc).weekday()
        n = 24 + rng.randint(-3, 3) if weekday < 5 else 8 + rng.randint(-2, 2)
        for k in range(n):
            pid = PARTNERS[(k + day // DAY) % 3]  # three partners only: nova-fin has no builds
            events.append({"id": f"d{day}-{k}", "type": "build.finished", "ts": day + rng.uniform(60, DAY - 60),
                           "partner_id": pid, "build_id": f"d{day}-{k}", "build_type": "release",
                           "status": "success", "duration_s": rng.uniform(100, 600)})
    return events


def daily_counts(events, partners=None) -> dict[int, int]:
    counts = Counter(int(e["ts"]) // DAY * DAY for e in events if partners is None or e["partner_id"] in partners)
    return dict(counts)


def check_forecast(body: dict, events: list[dict], partners=None) -> None:
    today = int(time.time()) // DAY * DAY
    points = body["points"]
    assert len(points) == 14
    assert [p["ts"] for p in points] == [today + i * DAY for i in range(14)]
    for p in points:
        assert p["lower_95"] <= p["lower_80"] <= p["mean"] <= p["upper_80"] <= p["upper_95"], p
        assert p["lower_95"] >= 0
    backtest = body["backtest"]
    for key in ("mase", "baseline_mase", "coverage_80", "coverage_95"):
        assert isinstance(backtest[key], float) and backtest[key] >= 0, key
    assert 0 <= backtest["coverage_80"] <= backtest["coverage_95"] <= 1
    counts = daily_counts(events, partners)
    # the first day with data may be partial: the history leaves it out
    assert {ts: v for ts, v in body["history"]} == {ts: counts.get(ts, 0)
                                                    for ts in range(min(counts) + DAY, today, DAY)}
    # the forecast follows the weekly rhythm: weekdays above weekends
    weekday = [p["mean"] for p in points if datetime.fromtimestamp(p["ts"], timezone.utc).weekday() < 5]
    weekend = [p["mean"] for p in points if datetime.fromtimestamp(p["ts"], timezone.utc).weekday() >= 5]
    assert min(weekday) > max(weekend)


def test_forecast_api_queues_then_answers_with_ordered_intervals(open_server, monkeypatch):
    short_forecast_wait(monkeypatch, open_server, 0.2)
    services = open_server.services
    events = daily_events(time.time(), random.Random(29))
    ingest(services, events)
    url = "/api/v1/forecast/builds"
    first = api(open_server, url, step="1d", horizon="14d")
    assert first.status_code in (200, 202)
    if first.status_code == 202:
        assert first.json()["status"] == "computing" and first.headers["Retry-After"]
        assert services.forecasts.compute("builds", "1d", None)["model"] != "none"
    answer = api(open_server, url, step="1d", horizon="14d")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fresh"] is True and body["metric"] == "builds" and body["step_s"] == DAY
    check_forecast(body, events)
    # a shorter horizon is the same forecast cut
    short = api(open_server, url, step="1d", horizon="5d").json()
    assert short["points"] == body["points"][:5]


@pytest.mark.parametrize(("path", "params", "status", "field"), [
    ("/api/v1/forecast/builds", {"step": "1w"}, 400, "step"),
    ("/api/v1/forecast/builds", {"step": "1d", "horizon": "0d"}, 400, "horizon"),
    ("/api/v1/forecast/builds", {"step": "1d", "horizon": "31d"}, 400, "horizon"),
    ("/api/v1/forecast/builds", {"step": "1d", "horizon": "36h"}, 400, "horizon"),
    ("/api/v1/forecast/builds", {"step": "1h", "horizon": "fortnight"}, 400, "horizon"),
    ("/api/v1/forecast/happiness", {}, 404, "metric"),
])
def test_forecast_api_names_a_bad_argument(open_server, monkeypatch, path, params, status, field):
    short_forecast_wait(monkeypatch, open_server, 0.05)
    answer = api(open_server, path, **params)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field


def test_forecast_of_a_partner_manager_is_of_their_partners(login_server, monkeypatch):
    short_forecast_wait(monkeypatch, login_server, 0.2)
    services = login_server.services
    events = daily_events(time.time(), random.Random(31))
    ingest(services, events)
    services.users.add("pat", "partner_manager", ["zenith-pay"], PASSWORD)
    services.users.add("ada", "admin", [], PASSWORD)
    pat, ada = sign_in(login_server.url, "pat", PASSWORD), sign_in(login_server.url, "ada", PASSWORD)
    url = "/api/v1/forecast/builds"
    assert api(login_server, url, pat, step="1d", horizon="14d").status_code == 202
    # this process runs the job, or the session server's own forecast worker (same store) took it first
    Forecaster(services.forecasts).run_once()
    wait_until(lambda: api(login_server, url, pat, step="1d", horizon="14d").status_code == 200,
               timeout=60, message="the partner's forecast")
    mine = api(login_server, url, pat, step="1d", horizon="14d")
    check_forecast(mine.json(), events, {"zenith-pay"})
    assert mine.json()["partners"] == ["zenith-pay"]
    assert "acme-bank" not in mine.text and "orbit-wallet" not in mine.text
    # the cache is per partner set: the admin's forecast (every partner) is not the partner's one
    assert api(login_server, url, ada, step="1d", horizon="14d").status_code == 202
    jobs = [orjson.loads(j) for j in services.store.client.lrange(services.store.keys.forecast_jobs(), 0, -1)]
    assert [(j["metric"], j["partners"]) for j in jobs] in ([("builds", None)], [])
    if not jobs:  # the server's own worker took the job already: it is marked pending or done, for every partner
        every = services.store.keys.forecast(services.forecasts._digest("builds", "1d", None))
        assert services.store.client.exists(every + ":pending", every)
    answer = api(login_server, url, pat, step="1d", partner="acme-bank")
    assert answer.status_code == 403 and answer.json()["field"] == "partner"


def test_forecast_of_partners_without_builds_says_there_is_no_history(open_server, monkeypatch):
    short_forecast_wait(monkeypatch, open_server, 0.05)
    ingest(open_server.services, daily_events(time.time(), random.Random(37)))  # nova-fin: no builds
    url = "/api/v1/forecast/builds"
    assert api(open_server, url, step="1d", partner="nova-fin").status_code == 202
    assert Forecaster(open_server.services.forecasts).run_once() == 1
    answer = api(open_server, url, step="1d", partner="nova-fin")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "none" and answer.json()["points"] == []


def test_a_forecast_fitted_before_its_history_arrived_is_fitted_again(services):
    """`make run` starts the worker while the seed is still writing: a forecast of a store without
    history (or half of it) must not stay until the next day's bucket."""
    now = time.time()
    events = daily_events(now, random.Random(43))
    cut = now - 20 * DAY
    forecaster = Forecaster(services.forecasts)
    first = services.forecasts.compute("builds", "1d", None)  # nothing ingested yet
    assert first["model"] == "none" and services.forecasts.is_fresh("builds", "1d", None)
    assert not services.forecasts.history_changed("builds", "1d", None)
    ingest(services, [e for e in events if e["ts"] < cut])  # the seed writes the older part first
    assert services.forecasts.history_changed("builds", "1d", None)
    # the worker's round queues a forced job: computed although the cached answer is "fresh"
    assert services.forecasts.enqueue("builds", "1d", None, first=True, force=True)
    assert forecaster.run_once() == 1
    second = services.forecasts.get("builds", "1d", 14, system_scope())
    assert second["model"] != "none" and second["history"] and second["fresh"] is True
    assert not services.forecasts.history_changed("builds", "1d", None)
    ingest(services, [e for e in events if e["ts"] >= cut])
    assert services.forecasts.history_changed("builds", "1d", None)
    # an unforced job of a fresh forecast is skipped (computed meanwhile elsewhere)
    services.store.client.delete(services.store.keys.forecast(services.forecasts._digest("builds", "1d", None))
                                 + ":pending")
    assert services.forecasts.enqueue("builds", "1d", None)
    assert forecaster.run_once() == 0


def test_recent_builds_of_a_stored_day_read_only_its_last_batches_and_survive_a_late_batch(services):
    """A stored day ingested in many small batches: the newest builds are read from the day's last
    batches, and a batch arriving after its facts were built moves nothing."""
    rng = random.Random(5)
    day = (int(time.time()) // DAY - 4) * DAY
    builds = []
    for i in range(120):
        status = "failed" if i % 3 == 0 else "success"
        builds.append(build_events(rng, f"tail-{i:03d}", "acme-bank", day + 600 + i * 600, status=status,
                                   build_type="release", failed_stage="compilation" if status == "failed" else None,
                                   message="Compilation failed in Foo.kt:12" if status == "failed" else None))
    for i in range(0, 120, 3):  # 40 batches of three builds, in time order
        services.ingest.ingest_batch([e for b in builds[i:i + 3] for e in b])
    scope = system_scope(day, day + DAY)
    finished = sorted((b[-1] for b in builds), key=lambda e: -e["ts"])
    failed = [e for e in finished if e["status"] == "failed"]
    services.intelligence.builds(scope, end_row=0)  # builds and stores the day's facts
    for limit in (1, 7, 40):
        recent = services.intelligence.recent_builds(scope, filters={"status": "failed"}, limit=limit)
        assert [r["build_id"] for r in recent["rows"]] == [e["build_id"] for e in failed[:limit]], limit
        assert all(r["error_message"] == "Compilation failed in Foo.kt:12" for r in recent["rows"])
    newest = services.intelligence.builds(scope, end_row=5)["rows"]
    assert [r["build_id"] for r in newest] == [e["build_id"] for e in finished[:5]]
    # a late build of that day: the stored facts no longer match the partition, rows are still right
    late = build_events(rng, "tail-late", "acme-bank", day + 30, status="failed", build_type="debug",
                        failed_stage="compilation", message="late")
    services.ingest.ingest_batch(late)
    again = services.intelligence.recent_builds(scope, filters={"status": "failed"}, limit=40)
    ids = [r["build_id"] for r in again["rows"]]
    assert ids[:39] == [e["build_id"] for e in failed[:39]]
