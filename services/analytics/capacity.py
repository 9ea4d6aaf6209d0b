"""Capacity analytics (pure, no store): when a resource series is projected to cross its threshold,
and how much of an availability error budget is left. Definitions: docs/capacity.md.

Time to threshold: a robust trend (statsmodels RLM, Huber's T norm, so a few spikes or outages do not
tilt it) is fitted to hourly means: a straight line, plus one daily harmonic (a sine and a cosine of
the UTC hour) when the means are at most 3 h apart and span at least `SEASONAL_SPAN_S` (2 days) —
so the day's rhythm is not mistaken for a trend. The projection follows the fitted *daily peak*
(the line plus the harmonic's amplitude; the line alone without a harmonic) forward from the last
hour. The answer is the time it reaches the threshold if that is within `HORIZON_S` (30 days) of
now; `now` when the resource is already at or above it (the median of the last `RECENT_POINTS`
hourly means, or the fitted peak at now); None — "not within 30 days" — when the trend is flat,
falls, or gets there later; and None with status `too_short` below `MIN_POINTS` hourly means."""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Projection", "project_crossing", "time_to_threshold", "error_budget", "HORIZON_S", "MIN_POINTS",
           "RECENT_POINTS", "SEASONAL_SPAN_S"]

HORIZON_S = 30 * 86400
MIN_POINTS = 6  # hourly means a trend needs
RECENT_POINTS = 3  # hourly means whose median says "already above"
SEASONAL_SPAN_S = 2 * 86400  # means spanning this long (at most 3 h apart) also fit the daily rhythm
_SEASONAL_STEP_S = 3 * 3600


@dataclass(frozen=True)
class Projection:
    """The outcome of a projection: `status` is `above`, `crossing`, `not_within` or `too_short`;
    `at` the crossing time (now when above, None otherwise); the trend line is
    `level + slope_per_day × (t − last_ts) / 86400`, the projected daily peak that plus `amplitude`."""

    status: str
    at: float | None
    threshold: float
    points: int
    last_ts: float | None = None
    level: float | None = None
    slope_per_day: float | None = None
    amplitude: float = 0.0  # of the daily harmonic (0: none fitted)

    def value_at(self, ts: float) -> float | None:
        """The trend line at `ts` (None without a trend)."""
        if self.level is None or self.slope_per_day is None or self.last_ts is None:
            return None
        return self.level + self.slope_per_day * (ts - self.last_ts) / 86400

    def peak_at(self, ts: float) -> float | None:
        """The projected daily peak at `ts`: the trend line plus the daily amplitude."""
        value = self.value_at(ts)
        return None if value is None else value + self.amplitude

    def as_dict(self) -> dict:
        """Plain fields (JSON-ready)."""
        return asdict(self)


def _clean(ts: Sequence[float], values: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(float(t), float(v)) for t, v in zip(ts, values)
             if v is not None and math.isfinite(float(v)) and math.isfinite(float(t))]
    pairs.sort()
    if not pairs:
        return np.empty(0), np.empty(0)
    x, y = (np.array(column) for column in zip(*pairs))
    return x, y


def _robust_fit(x_days: np.ndarray, y: np.ndarray, hours: np.ndarray | None) -> tuple[float, float, float]:
    """(intercept, slope per day, daily amplitude) of a Huber-robust fit of a line (plus a daily
    harmonic of the UTC `hours` when given); least squares when RLM cannot fit (a constant series
    has no scale)."""
    import statsmodels.api as sm

    columns = [np.ones_like(x_days), x_days]
    if hours is not None:
        angle = 2 * math.pi * hours / 24
        columns += [np.sin(angle), np.cos(angle)]
    design = np.column_stack(columns)
    params = errors = None
    if float(np.ptp(y)) > 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = sm.RLM(y, design, M=sm.robust.norms.HuberT()).fit()
                params, errors = fit.params, fit.bse
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
                params = None
    if params is None or not np.all(np.isfinite(params)):
        params, errors = np.linalg.lstsq(design, y, rcond=None)[0], None
    amplitude = 0.0
    if hours is not None:
        amplitude = float(math.hypot(params[2], params[3]))
        # a rhythm only when it stands out of the noise (3 standard errors: ~1 % of pure noise does)
        if errors is not None and np.all(np.isfinite(errors[2:])):
            if amplitude < 3 * math.sqrt((errors[2] ** 2 + errors[3] ** 2) / 2):
                amplitude = 0.0
    return float(params[0]), float(params[1]), amplitude


def project_crossing(ts: Sequence[float], values: Sequence[float | None], threshold: float, now: float,
                     horizon_s: float = HORIZON_S) -> Projection:
    """When the series (`ts` epoch seconds, hourly means, None = no data) reaches `threshold`."""
    x, y = _clean(ts, values)
    if len(x) < MIN_POINTS or x[-1] - x[0] <= 0:
        return Projection("too_short", None, threshold, len(x))
    last = float(x[-1])
    seasonal = x[-1] - x[0] >= SEASONAL_SPAN_S and float(np.median(np.diff(x))) <= _SEASONAL_STEP_S
    hours = (x % 86400) / 3600 if seasonal else None
    # intercept = the trend line at the last hour
    intercept, slope, amplitude = _robust_fit((x - last) / 86400, y, hours)
    fitted = dict(points=len(x), last_ts=last, level=intercept, slope_per_day=slope, amplitude=amplitude)
    recent = float(np.median(y[-RECENT_POINTS:]))
    peak_now = intercept + amplitude + slope * (now - last) / 86400
    if recent >= threshold or peak_now >= threshold:
        return Projection("above", now, threshold, **fitted)
    if slope <= 0:
        return Projection("not_within", None, threshold, **fitted)
    at = last + (threshold - amplitude - intercept) / slope * 86400
    if at > now + horizon_s:
        return Projection("not_within", None, threshold, **fitted)
    return Projection("crossing", max(at, now), threshold, **fitted)


def time_to_threshold(ts: Sequence[float], values: Sequence[float | None], threshold: float, now: float,
                      horizon_s: float = HORIZON_S) -> float | None:
    """The projected crossing time: now when already above, None when not within the horizon (or
    the series is too short to say)."""
    return project_crossing(ts, values, threshold, now, horizon_s).at


def error_budget(availability: float | None, objective: float, period_s: float) -> dict | None:
    """The error budget of an availability objective over a period: allowed, spent and left
    downtime in seconds, and left as a share of the allowed (negative when overspent). None
    without a measured availability."""
    if availability is None or not 0 < objective < 1 or period_s <= 0:
        return None
    allowed = (1 - objective) * period_s
    spent = (1 - availability) * period_s
    left = allowed - spent
    return {"objective": objective, "period_s": period_s, "allowed_s": allowed, "spent_s": spent, "left_s": left,
            "left_ratio": left / allowed, "met": availability >= objective}
