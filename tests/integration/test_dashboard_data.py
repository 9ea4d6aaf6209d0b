"""Panel data from the store equals what a person computes from the raw events."""
import random
from datetime import datetime, timezone
import time
from collections import defaultdict
from services.scope import system_scope

import numpy as np
import pytest

from services.queries.dashboard import DURATION_BANDS, DashboardData, executive, monthly_trend
from tests.reference import random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet", "nova-fin"]


@pytest.fixture
def loaded(services):
    now = time.time()
    events = random_events(random.Random(21), 600, now - 3 * 86400, now - 60, PARTNERS)
    services.ingest.ingest_batch(events)
    start, end = int(now - 2 * 86400) // 3600 * 3600, int(now) // 60 * 60 + 60
    return services, events, start, end


def _in(events, kind, start, end, partners=None):
    return [e for e in events if e["type"] == kind and start <= e["ts"] < end
            and (partners is None or e["partner_id"] in partners)]


@pytest.mark.parametrize("partners", [None, ["zenith-pay"]])
def test_stage_durations_match_raw_stage_events(loaded, partners):
    services, events, start, end = loaded
    rows = DashboardData(services.queries).stage_durations(system_scope(start, end, partners))
    stages = _in(events, "build.stage", start, end, partners and set(partners))
    for row in rows:
        durations = [e["duration_s"] for e in stages if e["stage"] == row["stage"] and e["status"] != "skipped"]
        assert row["runs"] == len([e for e in stages if e["stage"] == row["stage"]])
        exact = float(np.percentile(durations, 95))
        assert abs(row["p95_s"] - exact) <= 0.02 * exact


def test_asset_table_sums_match_raw_asset_events(loaded):
    services, events, start, end = loaded
    rows = DashboardData(services.queries).asset_table(system_scope(start, end))
    expected = defaultdict(lambda: {"n": 0, "orig": 0, "out": 0})
    for e in _in(events, "asset.processed", start, end):
        g = expected[(e["asset_type"], e["format"], e["density"])]
        g["n"] += 1
        g["orig"] += e["original_bytes"]
        g["out"] += e["output_bytes"]
    assert {(r["asset_type"], r["format"], r["density"]): (r["processed"], r["bytes_saved"]) for r in rows} == \
        {k: (g["n"], g["orig"] - g["out"]) for k, g in expected.items()}


def test_build_rate_and_heatmap_count_every_finished_build(loaded):
    services, events, start, end = loaded
    data = DashboardData(services.queries)
    rate = data.build_rate(system_scope(start, end), 3600)
    finished = _in(events, "build.finished", start, end)
    for status in ("success", "failed", "cancelled"):
        assert sum(r[status] for r in rate["rows"]) == len([e for e in finished if e["status"] == status])
    heat = data.duration_heatmap(system_scope(start, end), 3600)
    completed = [e for e in finished if e["status"] != "cancelled"]
    assert sum(map(sum, heat["counts"])) == len(completed)
    long_ones = sum(1 for e in completed if e["duration_s"] >= 1800)
    assert sum(row[-1] for row in heat["counts"]) == pytest.approx(long_ones, abs=max(2, 0.02 * long_ones))
    assert len(heat["bands"]) == len(DURATION_BANDS)


def test_executive_compares_with_the_previous_period(loaded):
    services, events, start, end = loaded
    span = 86400
    data = executive(services.queries, system_scope(end - span, end), {"pro": 100.0})
    assert data["current"]["builds_total"] == reference_summary(events, end - span, end)["builds_total"]
    assert data["previous"]["builds_total"] == reference_summary(events, end - 2 * span, end - span)["builds_total"]
    assert data["current"]["builds_per_day"] == pytest.approx(data["current"]["builds_total"])
    # the previous period's builds per day are over its days from the first day with a build
    first = min(e["ts"] for e in events if e["type"] == "build.finished" and e["ts"] >= end - 2 * span)
    covered = (end - span - max(end - 2 * span, first // 86400 * 86400)) / 86400
    assert data["previous_covered_days"] == pytest.approx(covered)
    assert data["previous"]["builds_per_day"] == pytest.approx(data["previous"]["builds_total"] / covered)


def test_monthly_trend_adds_up_to_the_summary(loaded):
    services, events, start, end = loaded
    rows = monthly_trend(services.queries, system_scope(end, end), months=2)
    assert sum(r["builds"] for r in rows) == len([e for e in events if e["type"] == "build.finished"])
    # like with like: builds per day over the days each month covers; the current month is partial,
    # and so is the first month with builds when they start after its first day
    finished = sorted(e["ts"] for e in events if e["type"] == "build.finished")
    current = rows[-1]
    month_start = datetime.strptime(current["month"], "%Y-%m").replace(tzinfo=timezone.utc).timestamp()
    assert current["partial"] and current["days"] == pytest.approx((end - month_start) / 86400, abs=0.01)
    first = next(r for r in rows if r["builds"])
    first_start = datetime.strptime(first["month"], "%Y-%m").replace(tzinfo=timezone.utc).timestamp()
    first_day = finished[0] // 86400 * 86400
    if first is not current:
        assert first["partial"] == (first_day > first_start)
    covered = (min(end, datetime.strptime(first["month"], "%Y-%m").replace(tzinfo=timezone.utc).timestamp()
                   + first["month_days"] * 86400) - max(first_start, first_day)) / 86400
    assert first["builds_per_day"] == pytest.approx(first["builds"] / covered, rel=1e-3)
