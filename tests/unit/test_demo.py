"""Demo history generator and live simulator: schema, invariants and realism."""
from __future__ import annotations

import itertools
import re
import threading
from collections import Counter, defaultdict

import pytest

from services.demo.generator import STAGES, Simulator, generate_history, partner_catalogue

NOW = 1_764_288_000.0 + 14.5 * 3600 + 0.678  # Friday 2025-11-28 14:30 UTC
DAY_S = 86400.0
PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TIERS = ("free", "basic", "pro", "enterprise")
BUILD_TYPES = ("debug", "release", "store")
ERROR_CATEGORIES = ("gradle", "signing", "asset", "timeout", "infra", "dependency")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _duration(v):
    return _number(v) and v >= 0


SCHEMA = {  # field -> check, per event type (the DESIGN.md ingestion contract)
    "partner.upserted": {
        "name": lambda v: isinstance(v, str) and 0 < len(v) <= 200, "tier": TIERS.__contains__,
        "monthly_build_quota": lambda v: type(v) is int and v >= 0,
        "status": ("active", "suspended", "churned").__contains__,
    },
    "build.started": {
        "build_id": lambda v: isinstance(v, str) and 0 < len(v) <= 128, "build_type": BUILD_TYPES.__contains__,
        "app_version": lambda v: isinstance(v, str) and re.fullmatch(r"\d+\.\d+\.\d+", v) is not None,
    },
    "build.stage": {
        "build_id": lambda v: isinstance(v, str) and 0 < len(v) <= 128, "stage": STAGES.__contains__,
        "status": ("success", "failed", "skipped").__contains__, "duration_s": _duration,
    },
    "build.finished": {
        "build_id": lambda v: isinstance(v, str) and 0 < len(v) <= 128, "build_type": BUILD_TYPES.__contains__,
        "status": ("success", "failed", "cancelled").__contains__, "duration_s": _duration,
    },
    "asset.processed": {
        "asset_type": ("icon", "splash", "logo", "banner", "screenshot").__contains__,
        "format": ("png", "webp", "jpg", "svg").__contains__,
        "density": ("mdpi", "hdpi", "xhdpi", "xxhdpi", "xxxhdpi", "any").__contains__,
        "original_bytes": lambda v: type(v) is int and v > 0, "output_bytes": lambda v: type(v) is int and v > 0,
        "quality_score": lambda v: _number(v) and 0 <= v <= 100, "duration_s": _duration,
    },
}
OPTIONAL = {"build.finished": {"failed_stage", "error_category", "error_message"}}


def schema_problems(event: dict) -> list[str]:
    """Every way an event breaks the ingestion contract (empty when it is valid)."""
    problems = []
    if not (isinstance(event.get("id"), str) and 1 <= len(event["id"]) <= 128):
        problems.append("id")
    if not (_number(event.get("ts")) and event["ts"] > 0):
        problems.append("ts")
    if not (isinstance(event.get("partner_id"), str) and PARTNER_ID.match(event["partner_id"])):
        problems.append("partner_id")
    fields = SCHEMA.get(event.get("type"))
    if fields is None:
        return problems + ["type"]
    problems += [name for name, ok in fields.items() if name not in event or not ok(event[name])]
    extra = set(event) - set(fields) - {"id", "type", "ts", "partner_id"} - OPTIONAL.get(event["type"], set())
    problems += [f"unexpected {name}" for name in sorted(extra)]
    if event["type"] == "build.finished" and "failed_stage" in event:
        if event["status"] != "failed" or event["failed_stage"] not in STAGES:
            problems.append("failed_stage")
        if event.get("error_category") not in ERROR_CATEGORIES or not event.get("error_message"):
            problems.append("error")
    return problems


def history(**kw) -> list[dict]:
    args = {"days": 7, "builds_per_day": 500, "now": NOW, "seed": 42} | kw
    return [e for batch in generate_history(**args) for e in batch]


@pytest.fixture(scope="module")
def week() -> list[dict]:
    return history()


@pytest.fixture(scope="module")
def builds(week) -> dict[str, dict]:
    """build_id -> {"started", "stages", "finished"} of the week's history."""
    out: dict[str, dict] = defaultdict(lambda: {"started": None, "stages": [], "finished": None})
    for e in week:
        if e["type"] == "build.started":
            out[e["build_id"]]["started"] = e
        elif e["type"] == "build.stage":
            out[e["build_id"]]["stages"].append(e)
        elif e["type"] == "build.finished":
            out[e["build_id"]]["finished"] = e
    return dict(out)


def test_history_is_deterministic():
    assert history(days=2, builds_per_day=300) == history(days=2, builds_per_day=300)
    assert history(days=2, builds_per_day=300) != history(days=2, builds_per_day=300, seed=7)


def test_every_event_matches_the_schema(week):
    bad = [(e, p) for e in week if (p := schema_problems(e))]
    assert not bad, bad[:3]
    assert {e["type"] for e in week} == set(SCHEMA)


def test_event_ids_are_unique(week):
    ids = [e["id"] for e in week]
    assert len(ids) == len(set(ids))


def test_timestamps_stay_inside_the_history_window_in_order(week):
    ts = [e["ts"] for e in week]
    assert min(ts) >= NOW - 7 * DAY_S and max(ts) < NOW
    assert ts == sorted(ts)


def test_average_volume_matches_builds_per_day(builds):
    assert len(builds) == 7 * 500


def test_batches_have_the_requested_size():
    sizes = [len(b) for b in generate_history(days=1, builds_per_day=400, now=NOW, batch_size=250)]
    assert all(s == 250 for s in sizes[:-1]) and 0 < sizes[-1] <= 250


def test_build_events_come_in_stage_order(builds):
    for b in builds.values():
        if b["started"] is None:
            continue
        ts = [b["started"]["ts"]] + [s["ts"] for s in b["stages"]]
        assert ts == sorted(ts)
        assert [s["stage"] for s in b["stages"]] == list(STAGES[:len(b["stages"])])
        if b["finished"]:
            assert b["finished"]["ts"] >= ts[-1]
            assert b["finished"]["build_type"] == b["started"]["build_type"]


def test_finished_duration_is_the_stage_sum_plus_small_overhead(builds):
    for b in builds.values():
        done = b["finished"]
        if done is None or done["status"] == "cancelled":
            continue
        gap = done["duration_s"] - sum(s["duration_s"] for s in b["stages"])
        assert -0.01 <= gap <= 2.5, (done, gap)
        assert done["duration_s"] == pytest.approx(done["ts"] - b["started"]["ts"], abs=0.002)


def test_failed_builds_name_the_stage_that_failed(builds):
    failed = [b for b in builds.values() if b["finished"] and b["finished"]["status"] == "failed"]
    assert failed
    for b in failed:
        last = b["stages"][-1]
        assert last["status"] == "failed" and last["stage"] == b["finished"]["failed_stage"]
        assert all(s["status"] == "success" for s in b["stages"][:-1])
        assert b["finished"]["error_category"] and b["finished"]["error_message"]
    categories = Counter(b["finished"]["error_category"] for b in failed)
    assert {"gradle", "signing", "asset", "dependency"} <= set(categories)


def test_successful_and_cancelled_builds_have_no_error(builds):
    for b in builds.values():
        done = b["finished"]
        if done and done["status"] != "failed":
            assert "failed_stage" not in done and "error_message" not in done
            assert all(s["status"] == "success" for s in b["stages"])
            assert len(b["stages"]) == 6 or done["status"] == "cancelled"


def test_success_rate_is_realistic(builds):
    statuses = Counter(b["finished"]["status"] for b in builds.values() if b["finished"])
    total = sum(statuses.values())
    assert 0.90 <= statuses["success"] / total <= 0.97
    assert 0.005 <= statuses["cancelled"] / total <= 0.03


def test_builds_running_at_now_are_left_in_progress(builds):
    running = [b for b in builds.values() if b["started"] and b["finished"] is None]
    assert running
    assert all(b["started"]["ts"] > NOW - 3600 for b in running)


def test_recurring_error_signatures_dominate(builds):
    messages = Counter(b["finished"]["error_message"] for b in builds.values()
                       if b["finished"] and b["finished"]["status"] == "failed")
    top = sum(n for _, n in messages.most_common(10))
    assert top / sum(messages.values()) > 0.4


def test_weekends_are_quiet_and_volume_grows():
    starts = [e["ts"] for e in history(days=29, builds_per_day=200) if e["type"] == "build.started"]
    per_date = Counter(int(ts // DAY_S) for ts in starts)
    dates = sorted(per_date)[1:-1]  # whole UTC days only
    weekend = [per_date[d] for d in dates if (d + 3) % 7 >= 5]  # 1970-01-01 was a Thursday
    weekdays = [per_date[d] for d in dates if (d + 3) % 7 < 5]
    assert 0.25 <= (sum(weekend) / len(weekend)) / (sum(weekdays) / len(weekdays)) <= 0.45
    first, last = sum(per_date[d] for d in dates[:7]), sum(per_date[d] for d in dates[-7:])
    assert 1.4 <= last / first <= 2.1


def test_office_hours_are_busier_than_nights(builds):
    hours = Counter(int(b["started"]["ts"] % DAY_S // 3600) for b in builds.values() if b["started"])
    assert sum(hours[h] for h in range(10, 16)) / 6 > 4 * sum(hours[h] for h in (21, 22, 23, 0, 1)) / 5


def test_partners_cover_every_tier_and_change_subscription(week):
    upserts = [e for e in week if e["type"] == "partner.upserted"]
    initial = {e["partner_id"]: e for e in upserts[:40]}
    assert len(initial) >= 40 and {e["tier"] for e in initial.values()} == set(TIERS)
    tiers = Counter(e["tier"] for e in initial.values())
    assert tiers["free"] + tiers["basic"] > tiers["pro"] + tiers["enterprise"] and tiers["enterprise"] >= 1
    rank = {t: i for i, t in enumerate(TIERS)}
    current = {pid: e["tier"] for pid, e in initial.items()}
    kinds = Counter()
    churned_at = {}
    for e in upserts[40:]:
        step = rank[e["tier"]] - rank[current[e["partner_id"]]]
        kinds["upgrade" if step > 0 else "downgrade" if step < 0 else e["status"]] += 1
        current[e["partner_id"]] = e["tier"]
        assert e["monthly_build_quota"] == {"free": 100, "basic": 1000, "pro": 5000, "enterprise": 50000}[e["tier"]]
        if e["status"] == "churned":
            churned_at[e["partner_id"]] = e["ts"]
    assert kinds["upgrade"] >= 1 and kinds["downgrade"] >= 1 and kinds["churned"] >= 1
    late = [e for e in week if e["type"] == "build.started" and e["ts"] > churned_at.get(e["partner_id"], NOW)]
    assert not late


def test_catalogue_is_deterministic_with_valid_unique_ids():
    cat = partner_catalogue(40, 42)
    assert cat == partner_catalogue(40, 42) and cat != partner_catalogue(40, 1)
    ids = [p["partner_id"] for p in cat]
    assert len(set(ids)) == 40 and all(PARTNER_ID.match(i) for i in ids)
    assert len({p["partner_id"] for p in partner_catalogue(200, 3)}) == 200


def test_assets_shrink_by_format(week):
    assets = [e for e in week if e["type"] == "asset.processed"]
    builds = sum(e["type"] == "build.started" for e in week)
    assert 1.0 <= len(assets) / builds <= 2.0
    assert all(0 < e["output_bytes"] < e["original_bytes"] for e in assets)
    assert all(0.05 <= e["duration_s"] <= 3.0 and 70 <= e["quality_score"] <= 100 for e in assets)
    ratio = defaultdict(list)
    for e in assets:
        ratio[e["format"]].append(1 - e["output_bytes"] / e["original_bytes"])
    mean = {f: sum(v) / len(v) for f, v in ratio.items()}
    assert mean["webp"] > mean["jpg"] > mean["png"] > mean["svg"]
    assert 0.60 <= mean["webp"] <= 0.75 and 0.10 <= mean["svg"] <= 0.25


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def run_simulator(seconds: float, step_s: float = 0.5, **kw) -> list[tuple[float, dict]]:
    clock = FakeClock(NOW)
    sim = Simulator(lambda events: None, clock=clock, **({"rate": 2.0, "seed": 1} | kw))
    out = []
    for i in range(1, int(seconds / step_s) + 1):
        now = NOW + i * step_s
        out += [(now, e) for e in sim.step(now)]
    return out


def test_simulator_emits_each_build_in_order():
    emitted = run_simulator(300)
    assert all(e["ts"] <= now for now, e in emitted)
    assert all(not schema_problems(e) for _, e in emitted)
    ids = [e["id"] for _, e in emitted]
    assert len(ids) == len(set(ids))
    per_build = defaultdict(list)
    for _, e in emitted:
        if "build_id" in e:
            per_build[e["build_id"]].append(e)
    assert 450 <= len(per_build) <= 750  # Poisson, 2 builds/s over 300 s
    finished = 0
    for events in per_build.values():
        assert events[0]["type"] == "build.started"
        stages = [e["stage"] for e in events if e["type"] == "build.stage"]
        assert stages == list(STAGES[:len(stages)])
        if events[-1]["type"] == "build.finished":
            finished += 1
            assert events[-1]["duration_s"] < 400
        assert all(e["type"] != "build.finished" for e in events[:-1])
    assert finished > 0.6 * len(per_build)


def test_simulator_builds_belong_to_the_seeded_partners():
    ids = {p["partner_id"] for p in partner_catalogue(40, 42)}
    emitted = run_simulator(60)
    assert {e["partner_id"] for _, e in emitted} <= ids
    assert any(e["type"] == "asset.processed" for _, e in emitted)


def test_simulator_does_not_flood_after_a_clock_jump():
    clock = FakeClock(NOW)
    sim = Simulator(lambda events: None, rate=2.0, seed=3, clock=clock)
    events = sim.step(NOW + 10 * DAY_S)
    assert sum(e["type"] == "build.started" for e in events) < 2.0 * 400


def test_simulator_thread_delivers_and_stops():
    got = threading.Event()
    calls = itertools.count()

    def sink(events):
        if next(calls) == 0:
            raise RuntimeError("first delivery fails")  # the simulator must keep going
        got.set()

    ticks = itertools.count()
    sim = Simulator(sink, rate=5.0, seed=2, clock=lambda: NOW + 30 * next(ticks), tick_s=0.01).start()
    try:
        assert got.wait(5.0)
    finally:
        sim.stop(timeout=5.0)
    assert not any(t.name == "lulupay-simulator" for t in threading.enumerate())
