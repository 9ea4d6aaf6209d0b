"""Seasonal anomaly detection on synthetic build metrics, contributors of a deviation, the sentence."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from services.analytics.anomalies import contributors, describe, detect

KEYS = {"ts", "value", "expected", "lower", "upper", "direction", "score", "step_s"}


def hourly_rate(days: int = 35, weekend: float = 0.35) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Builds per hour: office hours with two peaks, nights at 12 %, weekends at 35 %, nightly builds at 02:00."""
    idx = pd.date_range("2026-10-05", periods=days * 24, freq="h", tz="UTC")  # a Monday
    hour, weekday = idx.hour.to_numpy(), idx.day_of_week.to_numpy()
    office = np.where((hour >= 8) & (hour < 19), 1.0, 0.12)
    office += np.where(((hour >= 10) & (hour < 12)) | ((hour >= 14) & (hour < 17)), 0.5, 0.0)
    lam = 60 * office * np.where(weekday >= 5, weekend, 1.0) + np.where(hour == 2, 36, 0)
    return idx, lam


def poisson(idx, lam, seed) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).poisson(lam).astype(float), index=idx)


def at(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


OUTAGE = [at("2026-10-28 14:00"), at("2026-10-28 15:00"), at("2026-10-28 16:00")]  # a Wednesday
SPIKE = [at("2026-11-05 10:00"), at("2026-11-05 11:00")]  # a Thursday


def with_incidents(seed: int) -> pd.Series:
    idx, lam = hourly_rate()
    lam = lam.copy()
    for ts in OUTAGE:
        lam[idx.get_loc(pd.Timestamp(ts, unit="s", tz="UTC"))] *= 0.3
    for ts in SPIKE:
        lam[idx.get_loc(pd.Timestamp(ts, unit="s", tz="UTC"))] *= 2.5
    return poisson(idx, lam, seed)


def daily_builds(seed: int, days: int = 90) -> tuple[pd.Series, pd.Series]:
    """(builds per day growing by half over the range, weekends at 35 %; their success rate ~0.95)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-08-15", periods=days, freq="D", tz="UTC")
    weekend = idx.day_of_week.to_numpy() >= 5
    builds = rng.poisson(1000 * (1 + 0.5 * np.arange(days) / days) * np.where(weekend, 0.35, 1.0))
    ok = rng.binomial(builds, np.where(weekend, 0.96, 0.95))
    return pd.Series(builds.astype(float), index=idx), pd.Series(ok / builds, index=idx)


@pytest.mark.parametrize("seeds", [range(6)])
def test_a_regular_hourly_series_flags_nothing(seeds):
    idx, lam = hourly_rate()
    found, took = [], []
    for seed in seeds:
        series = poisson(idx, lam, seed)
        start = time.perf_counter()
        found += detect(series, periods=(24, 168))
        took.append(time.perf_counter() - start)
    print(f"detect, 840 hourly points, periods (24, 168): median {1000 * np.median(took):.0f} ms")
    assert found == []


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_an_outage_and_a_spike_are_found_at_their_hours(seed):
    found = detect(with_incidents(seed), periods=(24, 168))
    expected = [(ts, "low") for ts in OUTAGE] + [(ts, "high") for ts in SPIKE]
    assert [(a["ts"], a["direction"]) for a in found] == expected
    for a in found:
        assert set(a) == KEYS and a["step_s"] == 3600
        assert 0 <= a["lower"] <= a["expected"] <= a["upper"]
        assert not a["lower"] <= a["value"] <= a["upper"]
        assert abs(a["score"]) > 4 and a["score"] == round(a["score"], 2)
        assert (a["score"] < 0) == (a["direction"] == "low")
    outage = found[0]
    assert 60 < outage["expected"] < 120 and outage["value"] < 45  # ~90 expected, ~27 seen


def test_report_from_limits_the_buckets_reported():
    series = with_incidents(0)
    assert [a["ts"] for a in detect(series, periods=(24, 168), report_from=SPIKE[1])] == [SPIKE[1]]
    since = pd.Timestamp("2026-11-01", tz="UTC")
    assert [a["ts"] for a in detect(series, periods=(24, 168), report_from=since)] == SPIKE
    assert [a["ts"] for a in detect(series, periods=(24, 168), report_from=since.timestamp())] == SPIKE
    assert detect(series, periods=(24, 168), report_from=pd.Timestamp("2026-11-09", tz="UTC")) == []


def test_missing_buckets_are_skipped_and_do_not_disturb_the_fit():
    series = with_incidents(0)
    holes = series.copy()
    holes.iloc[100:112] = np.nan  # half a day missing
    holes.iloc[-5:] = np.nan  # the newest buckets not there yet
    holes = holes.drop(holes.index[300:306])  # and some buckets absent from the index
    found = detect(holes, periods=(24, 168))
    assert [a["ts"] for a in found] == OUTAGE + SPIKE
    assert all(np.isfinite(a["value"]) for a in found)


def test_a_naive_index_is_taken_as_utc():
    series = with_incidents(0)
    naive = pd.Series(series.to_numpy(), index=series.index.tz_localize(None))
    assert detect(naive, periods=(24, 168)) == detect(series, periods=(24, 168))


def test_too_short_series_fall_back_to_the_shorter_period_or_report_nothing():
    idx, lam = hourly_rate(days=10, weekend=1.0)  # < 2 weeks: the weekly period is unusable
    lam = lam.copy()
    spike = idx.get_loc(pd.Timestamp("2026-10-13 15:00", tz="UTC"))
    lam[spike] *= 2.5
    found = detect(poisson(idx, lam, 1), periods=(24, 168))
    assert [a["ts"] for a in found] == [int(idx[spike].timestamp())]
    assert detect(poisson(idx[:40], lam[:40], 1), periods=(24, 168)) == []  # not even two days
    assert detect(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float), periods=(24,)) == []
    assert detect(pd.Series(np.nan, index=idx), periods=(24,)) == []


@pytest.mark.parametrize("kind", ["count", "rate", "duration"])
def test_a_constant_series_flags_nothing(kind):
    idx = pd.date_range("2026-10-01", periods=24 * 14, freq="h", tz="UTC")
    for value in (0.0, 0.5 if kind == "rate" else 7.0):
        assert detect(pd.Series(value, index=idx), periods=(24, 168), kind=kind) == []


def test_daily_growth_and_weekends_are_not_anomalies():
    took = []
    for seed in range(5):
        builds, rate = daily_builds(seed)
        start = time.perf_counter()
        assert detect(builds, periods=(7,)) == []
        took.append(time.perf_counter() - start)
        assert detect(rate, periods=(7,), kind="rate") == []
    print(f"detect, 90 daily points, period 7: median {1000 * np.median(took):.1f} ms")


@pytest.mark.parametrize("seed,day", [(0, "2026-10-21"), (1, "2026-11-07"), (3, "2026-09-02")])
def test_an_incident_day_is_a_low_success_rate(seed, day):
    _, rate = daily_builds(seed)
    rate = rate.copy()
    rate[pd.Timestamp(day, tz="UTC")] = 0.75
    found = detect(rate, periods=(7,), kind="rate")
    assert [(a["ts"], a["direction"]) for a in found] == [(at(day), "low")]
    (a,) = found
    assert a["step_s"] == 86400 and 0.93 < a["expected"] < 0.97 and a["upper"] <= 1.0
    assert a["value"] == 0.75 and a["lower"] > 0.85


def test_slow_durations_are_high_and_bounds_stay_positive():
    idx = pd.date_range("2026-10-05", periods=24 * 21, freq="h", tz="UTC")
    rng = np.random.default_rng(5)
    hour = idx.hour.to_numpy()
    p95 = 600 * np.where((hour >= 8) & (hour < 19), 1.3, 1.0) * np.exp(rng.normal(0, 0.02, len(idx)))
    p95[400] *= 2
    found = detect(pd.Series(p95, index=idx), periods=(24, 168), kind="duration")
    assert [(a["ts"], a["direction"]) for a in found] == [(int(idx[400].timestamp()), "high")]
    assert 0 < found[0]["lower"] < found[0]["expected"] < found[0]["upper"] < found[0]["value"]


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        detect(with_incidents(0), periods=(24,), kind="ratio")


PARTNERS = [f"partner-{i:02d}" for i in range(20)]


def test_the_injected_cause_is_ranked_first_with_most_of_the_excess():
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.5, 2.0, len(PARTNERS))
    baseline = {p: float(w * 40) for p, w in zip(PARTNERS, weights)}  # failures over 4 baseline hours
    actual = {p: float(w * 10) for p, w in zip(PARTNERS, weights)}  # the same rate in the bucket …
    actual["partner-07"] *= 10  # … but for one partner
    top = contributors(actual, baseline, actual_units=100, baseline_units=400, direction="high")
    assert top[0]["key"] == "partner-07" and top[0]["share"] > 0.99
    assert top[0]["excess"] == round(top[0]["actual"] - top[0]["expected"], 3) > 0
    assert set(top[0]) == {"key", "actual", "expected", "excess", "share"}


def test_a_uniform_increase_is_shared_evenly():
    baseline = {p: 30.0 for p in PARTNERS}
    actual = {p: 20.0 for p in PARTNERS}  # twice the baseline rate everywhere
    top = contributors(actual, baseline, actual_units=100, baseline_units=300, direction="high", limit=50)
    assert len(top) == len(PARTNERS)
    assert [c["key"] for c in top] == sorted(PARTNERS)  # equal excess: ordered by key
    assert all(c["share"] == 0.05 and c["expected"] == 10.0 and c["excess"] == 10.0 for c in top)


def test_low_ranks_the_largest_deficit_and_drops_the_rest():
    baseline = {"acme": 700.0, "zen": 200.0, "new": 0.0, "gone": 100.0}
    actual = {"acme": 20.0, "zen": 60.0, "new": 15.0}  # acme's builds almost stopped; gone is gone
    top = contributors(actual, baseline, actual_units=100, baseline_units=1000, direction="low")
    assert [c["key"] for c in top] == ["acme", "gone"]
    assert top[0] == {"key": "acme", "actual": 20.0, "expected": 70.0, "excess": -50.0, "share": 0.833}
    assert top[1]["share"] == 0.167
    high = contributors(actual, baseline, actual_units=100, baseline_units=1000, direction="high")
    assert [(c["key"], c["share"]) for c in high] == [("zen", 0.727), ("new", 0.273)]


def test_limit_zero_baseline_and_empty_inputs():
    actual = {"a": 3.0, "b": 1.0, "c": 4.0}
    top = contributors(actual, {}, actual_units=10, baseline_units=0, direction="high", limit=2)
    assert [(c["key"], c["expected"], c["share"]) for c in top] == [("c", 0.0, 0.5), ("a", 0.0, 0.375)]
    assert contributors({}, {}, actual_units=0, baseline_units=0, direction="high") == []
    assert contributors({"a": 1.0}, {"a": 1.0}, actual_units=1, baseline_units=1, direction="low") == []
    with pytest.raises(ValueError):
        contributors(actual, {}, actual_units=1, baseline_units=1, direction="up")


def test_describe_a_daily_success_rate_drop():
    anomaly = {"ts": at("2026-11-12"), "value": 0.612, "expected": 0.934, "direction": "low", "step_s": 86400}
    top = [{"key": "93aef188055fc007", "label": "Keystore was tampered with, or password was incorrect",
            "share": 0.78}]
    assert describe(anomaly, "success_rate", top, "signature") == (
        "success rate 61 % on Nov 12 (expected 93 %): 78 % of the extra failures are signature "
        "'Keystore was tampered with…'")


def test_describe_an_hourly_volume_spike_and_a_slow_day():
    spike = {"ts": at("2026-11-02 14:00"), "value": 412.0, "expected": 180.4, "direction": "high", "step_s": 3600}
    top = [{"key": "acme-bank", "share": 0.6}, {"key": "zen-pay", "share": 0.25}]
    assert describe(spike, "builds", top, "partner") == (
        "412 builds at Nov 2 14:00 UTC (expected 180): 60 % of the extra builds are partner 'acme-bank' "
        "and 25 % partner 'zen-pay'")
    slow = {"ts": at("2026-11-03"), "value": 725.0, "expected": 480.0, "direction": "high"}  # no step_s: daily
    assert describe(slow, "duration_p95", [{"key": "release", "share": 1.0}], "build_type") == (
        "p95 duration 12 min 5 s on Nov 3 (expected 8 min): 100 % of the excess is build type 'release'")
    hours = {"ts": at("2026-11-03 09:00"), "value": 5400.0, "expected": 7190.0, "direction": "low", "step_s": 3600}
    assert describe(hours, "duration_p95", [], "stage") == "p95 duration 1 h 30 min at Nov 3 09:00 UTC (expected 2 h)"
    close = {"ts": at("2026-11-04"), "value": 0.951, "expected": 0.954, "direction": "low"}
    assert describe(close, "success_rate", None, "stage") == "success rate 95.1 % on Nov 4 (expected 95.4 %)"
