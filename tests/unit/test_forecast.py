"""Forecasts: intervals hold the truth at about their nominal rate, outliers do not bend the mean,
seasonal naive ships when nothing beats it, hourly buckets and clipping, short history, NaN."""
import math

import numpy as np
import pandas as pd
import pytest

from services.analytics import forecast as fc

WEEK = np.array([1.0, 1.1, 1.05, 1.0, 0.95, 0.5, 0.4])
DAYS, HORIZON = 90, 30


def daily_process(seed, *, noise="poisson", n=DAYS, h=HORIZON, outlier=None):
    """Weekly pattern + trend + noise: (history, truth drawn over the horizon, true expectation)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + h)
    mu = 40 + 0.15 * t + 20 * (WEEK[t % 7] - WEEK.mean())
    y = rng.poisson(mu).astype(float) if noise == "poisson" else mu + rng.normal(0, 5, len(t))
    if outlier is not None:
        y[outlier] = 2.2 * mu[outlier]
    index = pd.date_range("2025-01-06", periods=n + h, freq="D", tz="UTC")
    return pd.Series(y[:n], index[:n]), y[n:], mu[n:]


def seasonal_random_walk(seed, n=DAYS, h=HORIZON):
    """Each weekday its own random walk: the last week repeated is the optimal forecast."""
    rng = np.random.default_rng(seed)
    y = np.empty(n + h)
    y[:7] = [50, 55, 53, 50, 48, 25, 20]
    for t in range(7, n + h):
        y[t] = y[t - 7] + rng.normal(0, 3)
    index = pd.date_range("2025-01-06", periods=n + h, freq="D", tz="UTC")
    return pd.Series(y[:n], index[:n]), y[n:]


def hourly_process(seed, kind, n=35 * 24):
    """Working-hours daily rhythm, quieter weekends; counts, or the success rate of those builds."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    shape = np.clip(np.sin(np.pi * ((t % 24) - 7) / 12), 0, None)
    mu = 1 + 12 * shape * np.where((t // 24) % 7 >= 5, 0.35, 1.0)
    counts = rng.poisson(mu)
    if kind == "count":
        y = counts.astype(float)
    else:  # 97 % success: the bands want to pass 1
        y = np.where(counts > 0, rng.binomial(counts, 0.97) / np.maximum(counts, 1), np.nan)
    return pd.Series(y, pd.date_range("2025-03-03", periods=n, freq="h", tz="UTC"))


def means(result):
    return np.array([p["mean"] for p in result["points"]])


def covered(result, truth, level):
    return [p[f"lower_{level}"] <= v <= p[f"upper_{level}"] for p, v in zip(result["points"], truth)]


def assert_ordered(result):
    for p in result["points"]:
        assert p["lower_95"] <= p["lower_80"] <= p["mean"] <= p["upper_80"] <= p["upper_95"], p
        assert all(math.isfinite(p[k]) for k in ("mean", "lower_80", "upper_80", "lower_95", "upper_95"))


@pytest.mark.parametrize("noise", ["poisson", "gauss"])
def test_intervals_hold_the_truth_at_about_their_nominal_rate(noise):
    hits = {"80": [], "95": []}
    for seed in range(10):
        history, truth, _ = daily_process(seed, noise=noise)
        result = fc.forecast(history, horizon=HORIZON, season=7, kind="count")
        assert len(result["points"]) == HORIZON
        assert_ordered(result)
        for level in hits:
            hits[level] += covered(result, truth, level)
        bt = result["backtest"]
        assert 0.6 <= bt["coverage_80"] <= 1 and 0.8 <= bt["coverage_95"] <= 1
    assert 0.68 <= np.mean(hits["80"]) <= 0.93
    assert 0.86 <= np.mean(hits["95"]) <= 0.995


def test_models_beat_seasonal_naive_on_trend_plus_season():
    shipped, errors = [], []
    for seed in range(6):
        history, _, mu = daily_process(seed, noise="gauss")
        result = fc.forecast(history, horizon=HORIZON, season=7, kind="count")
        shipped.append(result["model"])
        naive = np.resize(history.to_numpy()[-7:], HORIZON)
        errors.append((np.mean(np.abs(means(result) - mu)), np.mean(np.abs(naive - mu))))
        if result["model"] != "seasonal_naive":
            assert result["backtest"]["mase"] < 0.98 * result["backtest"]["baseline_mase"]
    assert sum(m != "seasonal_naive" for m in shipped) >= 4, shipped
    model_error, naive_error = np.mean(errors, axis=0)
    assert model_error < 0.8 * naive_error


def test_one_outlier_day_does_not_bend_the_forecast():
    clean_err, dirty_err, naive_err = [], [], []
    for seed in range(8):
        clean, _, mu = daily_process(seed)
        dirty, _, _ = daily_process(seed, outlier=86)
        r_clean = fc.forecast(clean, horizon=HORIZON, season=7, kind="count")
        r_dirty = fc.forecast(dirty, horizon=HORIZON, season=7, kind="count")
        clean_err.append(np.mean(np.abs(means(r_clean) - mu)))
        dirty_err.append(np.mean(np.abs(means(r_dirty) - mu)))
        naive_err.append(np.mean(np.abs(np.resize(dirty.to_numpy()[-7:], HORIZON) - mu)))
        assert dirty_err[-1] <= 1.5 * clean_err[-1] + 1.0, (seed, r_dirty["model"])
    assert np.mean(dirty_err) <= 1.15 * np.mean(clean_err)
    assert np.mean(dirty_err) < 0.8 * np.mean(naive_err)


def test_seasonal_naive_ships_when_nothing_beats_it():
    shipped, hits = [], {"80": [], "95": []}
    for seed in range(6):
        history, truth = seasonal_random_walk(seed)
        result = fc.forecast(history, horizon=HORIZON, season=7, kind="count")
        shipped.append(result["model"])
        assert_ordered(result)
        bt = result["backtest"]
        assert bt["baseline"] == "seasonal_naive" and set(bt["candidates"]) >= {"seasonal_naive", "stl-arima-robust"}
        if result["model"] == "seasonal_naive":
            assert bt["mase"] == bt["baseline_mase"] == bt["candidates"]["seasonal_naive"]["mase"]
            assert means(result)[:7] == pytest.approx(history.to_numpy()[-7:])
            assert "nothing beat repeating the last week" in fc.describe_backtest(bt, "D")
            for level in hits:
                hits[level] += covered(result, truth, level)
    assert shipped.count("seasonal_naive") >= 5, shipped
    assert 0.65 <= np.mean(hits["80"]) <= 0.97
    assert 0.85 <= np.mean(hits["95"]) <= 1.0


@pytest.mark.parametrize("kind", ["count", "rate"])
def test_hourly_buckets_and_clipping(kind):
    history = hourly_process(3, kind)
    result = fc.forecast(history, horizon=72, season=24, kind=kind)
    last = int(history.index[-1].timestamp())
    assert [p["ts"] for p in result["points"]] == [last + 3600 * (i + 1) for i in range(72)]
    assert_ordered(result)
    lows = [p["lower_95"] for p in result["points"]]
    highs = [p["upper_95"] for p in result["points"]]
    assert min(lows) >= 0
    if kind == "rate":
        assert max(highs) <= 1 and max(highs) == 1.0  # clipped, and the clip was needed
    bt = result["backtest"]
    assert bt["horizon_steps"] == 48 and bt["origins"] >= 2
    assert result["model"] in bt["candidates"] and "seasonal_naive_weekly" in bt["candidates"]
    text = fc.describe_backtest(bt, "h")
    assert "yesterday" in text or "last day" in text


def test_hourly_weekly_rhythm_is_used():
    result = fc.forecast(hourly_process(5, "count"), horizon=72, season=24, kind="count")
    assert result["model"] in ("seasonal_naive_weekly", "stl-arima-robust-weekly")
    bt = result["backtest"]
    assert bt["mase"] < 0.9 * bt["baseline_mase"]
    assert fc.describe_backtest(bt, "h").startswith("beats yesterday-repeated by ")


def test_too_little_history_says_how_much_is_needed():
    history, _, _ = daily_process(0, n=9)
    result = fc.forecast(history, horizon=HORIZON, season=7, kind="count")
    assert result["points"] == [] and result["backtest"] is None and result["model"] == "none"
    need = fc.MIN_SEASONS * 7 + 7
    assert result["note"] == f"needs at least {need} days of history; has 9"
    hourly = fc.forecast(hourly_process(0, "count", n=50), horizon=72, season=24, kind="count")
    assert hourly["points"] == [] and "hours of history; has 50" in hourly["note"]
    ok = fc.forecast(daily_process(0, n=need)[0], horizon=HORIZON, season=7, kind="count")
    assert len(ok["points"]) == HORIZON and ok["backtest"]["origins"] >= 1


def test_deterministic_and_answer_shape():
    history, _, _ = daily_process(1)
    first = fc.forecast(history, horizon=HORIZON, season=7, kind="count")
    assert fc.forecast(history, horizon=HORIZON, season=7, kind="count") == first
    assert set(first) == {"model", "points", "backtest", "note"}
    assert set(first["backtest"]) == {
        "origins", "horizon_steps", "mase", "baseline", "baseline_mase", "coverage_80", "coverage_95",
        "baseline_coverage_80", "baseline_coverage_95", "candidates"}
    bt = first["backtest"]
    assert bt["origins"] == 8 and bt["horizon_steps"] == 14
    assert bt["mase"] == bt["candidates"][first["model"]]["mase"]
    assert bt["baseline_coverage_95"] == bt["candidates"]["seasonal_naive"]["coverage_95"]
    assert all(isinstance(p["ts"], int) for p in first["points"])


def test_nan_buckets_are_interpolated_and_not_scored():
    history, truth, _ = daily_process(2)
    holes = history.copy()
    holes.iloc[[3, 40, 41, 42, 70, 80, 89]] = np.nan
    result = fc.forecast(holes, horizon=HORIZON, season=7, kind="duration")
    assert len(result["points"]) == HORIZON
    assert_ordered(result)
    assert all(math.isfinite(v["mase"]) for v in result["backtest"]["candidates"].values())
    assert np.mean(np.abs(means(result) - truth)) < 15
    rate = fc.forecast((holes / 100).clip(0, 1), horizon=7, season=7, kind="rate")
    assert all(0 <= p["lower_95"] and p["upper_95"] <= 1 for p in rate["points"])


def test_failing_candidate_is_dropped(monkeypatch):
    def broken(y, h, period):
        raise np.linalg.LinAlgError("boom")

    def non_finite(y, h, period):
        out = fc._seasonal_naive(y, h, period)
        out["mean"] = out["mean"] * np.nan
        return out

    monkeypatch.setattr(fc, "_ets", broken)
    monkeypatch.setattr(fc, "_stl_arima", non_finite)
    history, _, _ = daily_process(0)
    result = fc.forecast(history, horizon=10, season=7, kind="count")
    assert set(result["backtest"]["candidates"]) == {"seasonal_naive"}
    assert result["model"] == "seasonal_naive" and len(result["points"]) == 10


def test_blas_runs_one_thread_during_a_call_and_is_restored_after(monkeypatch):
    history, _, _ = daily_process(0, n=40)
    fc.forecast(history, horizon=7, season=7, kind="count")
    threads = lambda: [get() for _, get in fc._blas["pairs"]]  # noqa: E731
    before, seen, inner = threads(), [], fc._forecast
    monkeypatch.setattr(fc, "_forecast", lambda *a: seen.append(threads()) or inner(*a))
    assert len(fc.forecast(history, horizon=7, season=7, kind="count")["points"]) == 7
    assert seen == [[1] * len(before)] and threads() == before


def test_describe_backtest_wording():
    bt = {"origins": 8, "horizon_steps": 14, "mase": 0.62, "baseline": "seasonal_naive", "baseline_mase": 1.0,
          "coverage_80": 0.8, "coverage_95": 0.94, "baseline_coverage_80": 0.7, "baseline_coverage_95": 0.9,
          "candidates": {}}
    assert fc.describe_backtest(bt, "D") == (
        "beats last-week-repeated by 38 %; the 95 % band held the truth 94 % of the time in 8 backtests")
    assert fc.describe_backtest(bt, "h").startswith("beats yesterday-repeated by 38 %")
    assert fc.describe_backtest(bt, "h", season=168).startswith("beats last-week-repeated")
    naive = dict(bt, mase=1.0, coverage_95=0.9)
    assert fc.describe_backtest(naive, "h") == (
        "nothing beat repeating the last day; the 95 % band held the truth 90 % of the time in 8 backtests")


def test_a_backtest_without_a_checked_band_is_described_without_a_number():
    bt = {"origins": 3, "mase": float("nan"), "baseline_mase": float("nan"), "coverage_95": float("nan"),
          "baseline_coverage_95": float("nan")}
    assert fc.describe_backtest(bt, "D") == ("nothing beat repeating the last week; the 95 % band could not be "
                                             "checked in 3 backtests")
