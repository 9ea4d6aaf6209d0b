"""Quota projection, churn risk, hour-of-week profile, tier mix and monthly changes on constructed
inputs (services.analytics.partners)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.analytics.partners import (BASELINE_DAYS, PACE_DAYS, churn_risk, hour_of_week, month_starts,
                                         monthly_changes, quota_projection, tier_mix)

DAY = 86400
NOW = datetime(2026, 11, 10, 12, tzinfo=timezone.utc).timestamp()
MONTH_START = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
MONTH_END = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()


def project(**kw):
    args = dict(used=300, quota=1000, pace_builds=7 * 50, now=NOW, month_end=MONTH_END)
    args.update(kw)
    return quota_projection(**args)


def test_quota_runs_out_within_the_month_at_the_pace_of_the_last_seven_days():
    out = project()
    assert out["quota_pace_per_day"] == pytest.approx(50.0)
    assert out["quota_projected_exhaustion_at"] == pytest.approx(NOW + 700 / 50 * DAY)  # 14 days on
    assert out["quota_used"] == 300 and out["quota_left"] == 700 and out["quota_used_ratio"] == pytest.approx(0.3)
    assert out["quota_exhausted"] is False


def test_quota_not_within_the_month_is_null():
    out = project(pace_builds=7 * 10)  # 70 days of quota left at 10 a day
    assert out["quota_projected_exhaustion_at"] is None and out["quota_pace_per_day"] == pytest.approx(10.0)


def test_zero_pace_never_runs_out():
    out = project(pace_builds=0)
    assert out["quota_projected_exhaustion_at"] is None and out["quota_pace_per_day"] == 0


def test_no_quota_has_no_projection():
    for quota in (None, 0):
        out = project(quota=quota)
        assert out["quota_projected_exhaustion_at"] is None and out["quota_used_ratio"] is None
        assert out["quota_left"] is None


def test_already_exhausted_is_dated_inside_the_bucket_where_the_count_reached_the_quota():
    buckets = [(MONTH_START + i * DAY, MONTH_START + (i + 1) * DAY, 120) for i in range(9)]
    out = project(used=1080, month_buckets=buckets)
    assert out["quota_exhausted"] is True
    # 8 days × 120 = 960; the 9th day reaches 1000 after 40 of its 120 builds: a third into it
    assert out["quota_projected_exhaustion_at"] == pytest.approx(MONTH_START + 8 * DAY + DAY / 3)
    assert project(used=1000, month_buckets=[])["quota_projected_exhaustion_at"] == NOW  # no buckets: now


def risk(**kw):
    args = dict(status="active", recent_builds=70, baseline_builds=280, last_build_ts=NOW - 3600, now=NOW)
    args.update(kw)
    return churn_risk(**args)


def test_steady_partner_is_low_risk():
    out = risk()
    assert out["score"] == 0 and out["level"] == "low"
    assert out["reasons"] == ["activity steady: no drop, no unusual gap, no downgrade"]


def test_a_sharp_drop_is_high_risk_with_the_numbers_in_words():
    out = risk(recent_builds=7)  # 90 % fewer than the 70 a week before
    assert out["components"]["activity_drop"] == 1.0 and out["level"] == "high"
    assert out["reasons"][0] == "builds fell 90 % in the last 7 days (7 against 70 a week before)"


def test_a_moderate_drop_is_medium():
    out = risk(recent_builds=35)  # a 50 % fall → (0.5 − 0.2) / 0.6 = 0.5
    assert out["components"]["activity_drop"] == pytest.approx(0.5)
    assert out["level"] == "medium"


def test_small_partners_are_not_judged_on_noise():
    out = risk(recent_builds=0, baseline_builds=12, last_build_ts=NOW - 3 * DAY)  # 3 a week before
    assert out["components"]["activity_drop"] == 0.0


def test_inactivity_is_measured_against_the_partners_own_rhythm():
    daily = risk(recent_builds=0, baseline_builds=280, last_build_ts=NOW - 9 * DAY)
    assert daily["components"]["inactivity"] == pytest.approx((9 - 2) / 7)
    assert any(r.startswith("no build for 9 days (last on 2026-11-01)") for r in daily["reasons"])
    weekly = risk(recent_builds=1, baseline_builds=4, last_build_ts=NOW - 6 * DAY)  # about one a week
    assert weekly["components"]["inactivity"] == 0.0  # six days is its normal gap


def test_a_recent_downgrade_counts_and_is_named():
    history = [{"ts": NOW - 200 * DAY, "tier": "pro", "status": "active", "change": "created"},
               {"ts": NOW - 5 * DAY, "tier": "basic", "status": "active", "change": "downgrade"}]
    out = risk(history=history)
    assert out["components"]["downgrade"] == pytest.approx(0.3) and out["level"] == "medium"
    assert out["reasons"] == ["downgraded from pro to basic on 2026-11-05"]
    old = [history[0], {**history[1], "ts": NOW - (PACE_DAYS + BASELINE_DAYS + 1) * DAY}]
    assert risk(history=old)["components"]["downgrade"] == 0


def test_components_combine_and_churned_or_suspended_partners_say_so():
    both = risk(recent_builds=35, last_build_ts=NOW - 9 * DAY)
    a, b = both["components"]["activity_drop"], both["components"]["inactivity"]
    assert both["score"] == pytest.approx(1 - (1 - a) * (1 - b), abs=1e-4)
    churned = risk(status="churned", history=[{"ts": NOW - 3 * DAY, "tier": "free", "status": "churned",
                                               "change": "churned"}])
    assert churned["score"] == 1.0 and churned["reasons"] == ["the partner has churned (since 2026-11-07)"]
    suspended = risk(status="suspended", recent_builds=0, last_build_ts=NOW - 10 * DAY)
    assert suspended["level"] == "high" and suspended["reasons"][0].startswith("the account is suspended")


def test_hour_of_week_means_per_hour_and_day():
    monday = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
    buckets = [(monday + 9 * 3600, 10), (monday + 7 * DAY + 9 * 3600, 20), (monday + DAY + 3600, 4)]
    grid = hour_of_week(buckets)
    assert grid[0][9] == 15 and grid[1][1] == 4 and grid[6][23] is None
    assert len(grid) == 7 and all(len(row) == 24 for row in grid)


def test_tier_mix_and_monthly_changes_follow_the_histories():
    oct1 = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
    histories = {
        "a": [{"ts": oct1 - DAY, "tier": "free", "status": "active", "change": "created"},
              {"ts": MONTH_START + 2 * DAY, "tier": "pro", "status": "active", "change": "upgrade"}],
        "b": [{"ts": oct1 + DAY, "tier": "basic", "status": "active", "change": "created"},
              {"ts": oct1 + 20 * DAY, "tier": "basic", "status": "churned", "change": "churned"}],
    }
    months = month_starts(oct1, MONTH_END)
    assert months == [int(oct1), int(MONTH_START)]
    mix = tier_mix(histories, [oct1 + 10 * DAY, MONTH_END - 1])
    assert mix["tiers"]["free"] == [1, 0] and mix["tiers"]["basic"] == [1, 0] and mix["tiers"]["pro"] == [0, 1]
    rows = monthly_changes(histories, months)
    assert rows[0]["new"] == ["b"] and rows[0]["churned"] == ["b"] and rows[1]["upgrades"] == ["a"]
    assert rows[1]["downgrades"] == [] and rows[0]["upgrades"] == []


# -- one partner against the fleet ---------------------------------------------------------------
from services.analytics.partners import bucket_comparison, burn_down, fleet_standing, median  # noqa: E402


def test_median_of_odd_even_and_no_values():
    assert median([3, 1, 2]) == 2 and median([4, 1, 3, 2]) == 2.5 and median([]) is None


def _row(pid, builds, rate, avg, status="active"):
    return {"partner_id": pid, "builds": builds, "success_rate": rate, "duration_avg_s": avg, "status": status}


def test_fleet_standing_ranks_among_active_partners_and_leaves_out_missing_figures():
    rows = [_row("a", 10, 0.9, 300.0), _row("b", 30, 0.95, 200.0), _row("c", 20, None, None),
            _row("gone", 500, 1.0, 10.0, status="churned"), _row("me", 25, 0.8, 250.0)]
    s = fleet_standing(rows, "me")
    # builds over a, b, c, me (the churned partner is not in the fleet): 10, 20, 25, 30
    assert s["builds"] == {"value": 25, "median": 22.5, "rank": 2, "of": 4}
    # success rate: c has none → 0.8, 0.9, 0.95; me is last
    assert s["success_rate"] == {"value": 0.8, "median": 0.9, "rank": 3, "of": 3}
    # build time: lower is better → 200 < 250 < 300
    assert s["duration_avg_s"] == {"value": 250.0, "median": 250.0, "rank": 2, "of": 3}


def test_fleet_standing_of_a_suspended_partner_still_counts_itself():
    rows = [_row("a", 10, 0.9, 300.0), _row("me", 0, None, None, status="suspended")]
    s = fleet_standing(rows, "me")
    assert s["builds"] == {"value": 0, "median": 5.0, "rank": 2, "of": 2}
    assert s["success_rate"]["rank"] is None and s["success_rate"]["median"] == 0.9


def test_bucket_comparison_counts_every_fleet_partner_and_skips_rates_without_completed_builds():
    buckets = [(0, {"me": {"success": 3, "failed": 1}, "a": {"success": 1}, "b": {"cancelled": 2}}),
               (3600, {"a": {"success": 2, "failed": 2}})]
    out = bucket_comparison(buckets, "me", ["a", "b", "c"])
    assert out["ts"] == [0, 3600]
    assert out["builds"] == [4, 0]
    assert out["success_rate"] == [0.75, None]
    # builds per partner in bucket 0: me 4, a 1, b 2, c 0 → sorted 0, 1, 2, 4
    lo, mid, hi = out["fleet_builds"][0]
    assert mid == 1.5 and lo == pytest.approx(0.75) and hi == pytest.approx(2.5)
    # rates in bucket 0: me 0.75, a 1.0 (b has no completed build, c none)
    assert out["fleet_success_rate"][0][1] == pytest.approx(0.875)
    assert out["fleet_success_rate"][1] == (0.5, 0.5, 0.5)


def test_burn_down_projects_to_the_exhaustion_and_stops_there():
    day = 86400
    out = burn_down(day_builds=[(0, 10), (day, 20)], quota=100, pace_per_day=35.0, now=1.5 * day,
                    month_start=0, month_end=30 * day)
    assert out["left"] == [(0, 100), (day, 90), (1.5 * day, 70)]
    (t0, v0), (t1, v1) = out["projection"]
    assert (t0, v0) == (1.5 * day, 70.0)
    assert t1 == pytest.approx(1.5 * day + 70 / 35 * day) and v1 == pytest.approx(0.0)


def test_burn_down_with_zero_pace_stays_flat_and_exhausted_has_no_projection():
    day = 86400
    flat = burn_down(day_builds=[(0, 5)], quota=50, pace_per_day=0.0, now=0.5 * day, month_start=0, month_end=30 * day)
    assert flat["projection"] == [(0.5 * day, 45.0), (30 * day, 45.0)]
    gone = burn_down(day_builds=[(0, 60)], quota=50, pace_per_day=60.0, now=0.5 * day, month_start=0,
                     month_end=30 * day)
    assert gone["left"][-1] == (0.5 * day, 0) and gone["projection"] == []
    slow = burn_down(day_builds=[(0, 1)], quota=50, pace_per_day=1.0, now=0.5 * day, month_start=0, month_end=30 * day)
    assert slow["projection"][-1][0] == 30 * day and slow["projection"][-1][1] == pytest.approx(49 - 29.5)


def test_burn_down_without_quota_is_the_cumulative_count():
    out = burn_down(day_builds=[(0, 3), (86400, 4)], quota=None, pace_per_day=3.5, now=90000, month_start=0,
                    month_end=30 * 86400)
    assert out["left"] is None and out["projection"] == [] and out["used"][-1] == (90000, 7)
