"""Capacity analytics on constructed series: time to threshold and the error budget."""
from __future__ import annotations

import math
import random

import pytest

from services.analytics.capacity import HORIZON_S, MIN_POINTS, error_budget, project_crossing, time_to_threshold

DAY, HOUR = 86400, 3600
NOW = 1_800_000_000.0  # the last hourly mean starts an hour before


def hourly(days: float, value) -> tuple[list[float], list[float | None]]:
    """Hourly means over `days` ending at NOW - 1 h: value(hours before the last one)."""
    n = int(days * 24)
    ts = [NOW - HOUR * (n - i) for i in range(n)]
    return ts, [value(n - 1 - i) for i in range(n)]


def noisy(base, sd: float, seed: int, spikes: int = 0):
    rng = random.Random(seed)
    spike_at = {rng.randrange(24 * 7) for _ in range(spikes)}
    return lambda h: base(h) + rng.gauss(0, sd) + (40.0 if h in spike_at else 0.0)


def rising(per_day: float, last: float):
    return lambda h: last - per_day * h / 24  # `last` at the last hour, rising `per_day` a day


LAST = NOW - HOUR


def daily(mean, amplitude: float, trough_hour: float = 7.0):
    """mean(h) plus a daily rhythm of `amplitude` whose trough is at `trough_hour` UTC (the last hour
    here is 07:00 UTC: its latest means are the day's lowest)."""
    def value(h):
        hour = ((LAST - h * HOUR) % DAY) / HOUR
        return mean(h) - amplitude * math.cos(2 * math.pi * (hour - trough_hour) / 24)
    return value

# (name, series, threshold, expected status, expected crossing: seconds after the last hour, or None)
CASES = [
    ("already above", hourly(7, lambda h: 91.0), 85.0, "above", "now"),
    ("above after a late jump", hourly(7, lambda h: 95.0 if h < 3 else 40.0), 85.0, "above", "now"),
    ("rising", hourly(7, rising(2.0, 74.0)), 85.0, "crossing", 5.5 * DAY),
    ("rising fast", hourly(3, rising(24.0, 60.0)), 85.0, "crossing", 25 / 24 * DAY),
    ("rising but later than 30 days", hourly(7, rising(0.5, 50.0)), 85.0, "not_within", None),
    ("flat", hourly(7, lambda h: 50.0), 85.0, "not_within", None),
    ("falling", hourly(7, rising(-3.0, 70.0)), 85.0, "not_within", None),
    ("noisy flat with spikes", hourly(7, noisy(lambda h: 55.0, 4.0, 1, spikes=6)), 85.0, "not_within", None),
    ("noisy rising with spikes", hourly(7, noisy(rising(2.0, 70.0), 3.0, 2, spikes=6)), 85.0, "crossing", 7.5 * DAY),
    ("bytes per second", hourly(14, rising(2e6, 80e6)), 100e6, "crossing", 10 * DAY),
    # the day's rhythm is fitted, not taken for a trend; the projection follows the daily peak
    ("daily rhythm below the threshold", hourly(7, daily(lambda h: 50.0, 30.0)), 85.0, "not_within", None),
    ("daily peaks above, latest hours low", hourly(7, daily(lambda h: 60.0, 30.0)), 85.0, "above", "now"),
    ("daily peaks rising", hourly(7, daily(rising(2.0, 55.0), 20.0)), 85.0, "crossing", 5 * DAY),
    ("too short", hourly(MIN_POINTS / 24 - 1 / 24, lambda h: 99.0), 85.0, "too_short", None),
    ("gaps leave too few points", (hourly(2, lambda h: 50.0)[0], [50.0] * 3 + [None] * 45), 85.0, "too_short", None),
]


@pytest.mark.parametrize("name, series, threshold, status, expected", CASES, ids=[c[0] for c in CASES])
def test_time_to_threshold(name, series, threshold, status, expected):
    ts, values = series
    projection = project_crossing(ts, values, threshold, NOW)
    assert projection.status == status
    at = time_to_threshold(ts, values, threshold, NOW)
    assert at == projection.at
    if expected is None:
        assert at is None
    elif expected == "now":
        assert at == NOW
    else:
        # noisy series within a day of the true crossing, clean ones within a minute
        tolerance = DAY if "noisy" in name else 60
        assert at == pytest.approx(LAST + expected, abs=tolerance)
        assert NOW <= at <= NOW + HORIZON_S


def test_the_trend_line_passes_through_the_fitted_level():
    ts, values = hourly(7, rising(2.0, 74.0))
    projection = project_crossing(ts, values, 85.0, NOW)
    assert projection.slope_per_day == pytest.approx(2.0, rel=1e-6)
    assert projection.value_at(LAST) == pytest.approx(74.0, abs=1e-6)
    assert projection.value_at(projection.at) == pytest.approx(85.0, abs=1e-6)
    assert projection.as_dict()["status"] == "crossing" and projection.points == 7 * 24


def test_the_daily_rhythm_is_fitted_only_over_two_days_of_hourly_means():
    rhythm = daily(lambda h: 50.0, 20.0)
    week = project_crossing(*hourly(7, rhythm), 85.0, NOW)
    assert week.amplitude == pytest.approx(20.0, rel=1e-3) and abs(week.slope_per_day) < 1e-6
    assert week.peak_at(LAST) == pytest.approx(70.0, rel=1e-3)
    # one day cannot tell a rhythm from a trend: a plain line (whose slope the rhythm tilts)
    assert project_crossing(*hourly(1, rhythm), 85.0, NOW).amplitude == 0.0
    # daily means have no hour of the day
    days_ts = [NOW - DAY * (30 - i) for i in range(30)]
    assert project_crossing(days_ts, [50.0 + (i % 2) for i in range(30)], 85.0, NOW).amplitude == 0.0
    # noise is no rhythm
    assert project_crossing(*hourly(7, noisy(lambda h: 50.0, 3.0, 5)), 85.0, NOW).amplitude == 0.0


def test_a_few_outliers_do_not_tilt_the_trend():
    """Six 40-point spikes in the last day: least squares would tilt the line up; the robust fit
    keeps a flat series flat."""
    ts, values = hourly(7, lambda h: 50.0 + (40.0 if h < 6 else 0.0) * (h % 2))
    projection = project_crossing(ts, values, 85.0, NOW)
    assert projection.status == "not_within"
    assert abs(projection.slope_per_day) < 0.5


def test_the_horizon_is_a_parameter():
    ts, values = hourly(7, rising(0.5, 50.0))  # crosses 35 × 2 = 70 days on
    assert time_to_threshold(ts, values, 85.0, NOW) is None
    assert time_to_threshold(ts, values, 85.0, NOW, horizon_s=90 * DAY) == pytest.approx(LAST + 70 * DAY, abs=60)


# -- error budget ---------------------------------------------------------------------------
BUDGETS = [
    # availability, objective, period, allowed min, spent min, left min, left share, met
    (0.9995, 0.999, 30 * DAY, 43.2, 21.6, 21.6, 0.5, True),
    (1.0, 0.999, 30 * DAY, 43.2, 0.0, 43.2, 1.0, True),
    (0.999, 0.999, 7 * DAY, 10.08, 10.08, 0.0, 0.0, True),
    (0.998, 0.999, 1 * DAY, 1.44, 2.88, -1.44, -1.0, False),
    (0.95, 0.99, 1 * DAY, 14.4, 72.0, -57.6, -4.0, False),
]


@pytest.mark.parametrize("availability, objective, period, allowed, spent, left, share, met", BUDGETS)
def test_error_budget(availability, objective, period, allowed, spent, left, share, met):
    budget = error_budget(availability, objective, period)
    assert budget["allowed_s"] / 60 == pytest.approx(allowed)
    assert budget["spent_s"] / 60 == pytest.approx(spent, abs=1e-9)
    assert budget["left_s"] / 60 == pytest.approx(left, abs=1e-9)
    assert budget["left_ratio"] == pytest.approx(share, abs=1e-9)
    assert budget["met"] is met


@pytest.mark.parametrize("availability, objective, period", [(None, 0.999, DAY), (0.99, 1.0, DAY), (0.99, 0.0, DAY),
                                                             (0.99, 0.999, 0)])
def test_error_budget_is_undefined_without_a_measure_or_a_sane_objective(availability, objective, period):
    assert error_budget(availability, objective, period) is None


def test_constructed_series_are_what_they_say():
    ts, values = hourly(7, rising(2.0, 74.0))
    assert len(ts) == 168 and ts[-1] == LAST and values[-1] == 74.0
    assert values[-25] == pytest.approx(72.0) and all(math.isfinite(v) for v in values)
