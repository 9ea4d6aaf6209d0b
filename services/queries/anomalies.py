"""Anomalies of a period and what caused them: the series with enough context before the period
for a seasonal decomposition (services.analytics.anomalies.detect), then, for each anomalous
bucket, the breakdowns of that bucket against the ordinary buckets of the same phase (the same
hour of the day for hourly steps; every ordinary day for daily steps): partners, build types,
stages, error signatures (services.analytics.anomalies.contributors)."""
from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict, defaultdict

import orjson

import pandas as pd

from services import sketch
from services.analytics.anomalies import contributors, describe, detect
from services.queries.reader import QueryService, Totals, TooMuchWork, _metric_value, _partners, status_counts
from services.scope import Scope
from services.store import fields as rf
from services.timerange import finest_available

__all__ = ["AnomalyService", "ANOMALY_METRICS", "ANOMALY_STEPS", "MAX_EXPLAINED", "partner_counts"]

ANOMALY_METRICS = {"builds": "count", "success_rate": "rate", "duration_p95": "duration"}
# step -> (seconds, seasonal periods in steps, context before the period in steps)
ANOMALY_STEPS = {"1h": (3600, (24, 168), 21 * 24), "1d": (86400, (7,), 56)}
MAX_EXPLAINED = 20  # anomalies explained per answer (the strongest)
# A rate or a percentile of a handful of builds is noise: buckets with fewer completed builds are
# left out of the decomposition (and never reported).
MIN_COMPLETED = {"success_rate": 5, "duration_p95": 20}
# A success-rate anomaly must also be unlikely as binomial noise around the expected rate: with
# 30 builds at an expected 95 %, one more failure is no anomaly even when the series is smooth.
BINOMIAL_Z = 3.5
_KINDS = {"builds": ("b",), "success_rate": ("b", "e"), "duration_p95": ("b", "bh", "s")}


class AnomalyService:
    """GET /api/v1/anomalies and the chart marks of /builds."""

    def __init__(self, queries: QueryService):
        self.queries = queries

    def anomalies(self, scope: Scope, metric: str, step: str, *, explain: bool = True) -> dict:
        """Buckets of [start, end) outside the expected band, strongest explained first in `cause`."""
        return self.all_metrics(scope, step, metrics=(metric,), explain=explain)[metric]

    def all_metrics(self, scope: Scope, step: str, *, metrics: tuple[str, ...] = tuple(ANOMALY_METRICS),
                    explain: bool = True) -> dict[str, dict]:
        """`anomalies` of several metrics from one read of the rollups (the page shows all three)."""
        _partners(scope)
        for metric in metrics:
            if metric not in ANOMALY_METRICS:
                raise KeyError(metric)
        step_s, periods, context = ANOMALY_STEPS[step]
        now = self.queries.clock()
        start = int(scope.start // step_s) * step_s
        end = min(int(-(-scope.end // step_s) * step_s), int(now // step_s) * step_s)  # complete buckets only
        lo = start - context * step_s
        # the context cannot reach back past what the step's resolution still keeps
        while lo < start and finest_available(lo, now).step_s > step_s:
            lo += step_s
        if end <= start:
            return {m: {"metric": m, "step_s": step_s, "from": start, "to": end, "anomalies": []} for m in metrics}
        wide = scope.within(lo, end)
        kinds = sorted({k for m in metrics for k in (_KINDS[m] if explain else
                                                    (("b", "bh") if m == "duration_p95" else ("b",)))})
        used_step, windows = self.queries.windows(wide, step_s, kinds)
        if used_step != step_s:
            raise TooMuchWork(f"step: {step} steps are not kept for this range; choose step=1d", "step")
        by_ts = dict(windows)
        counts = [status_counts(totals) for _, totals in windows]  # one pass over each bucket's fields
        completed = {ts: n["success"] + n["failed"] for (ts, _), n in zip(windows, counts)}
        index = pd.to_datetime([ts for ts, _ in windows], unit="s", utc=True)
        out = {}
        for metric in metrics:
            values = _values(metric, windows, counts)
            least = MIN_COMPLETED.get(metric, 0)
            series = pd.Series([float("nan") if v is None or (least and completed[ts] < least) else float(v)
                                for (ts, _), v in zip(windows, values)], index=index, dtype=float)
            found = _detect(series, periods, start, ANOMALY_METRICS[metric])
            found = [dict(a, metric=metric, step_s=step_s) for a in found if a["ts"] < end]
            if metric == "success_rate":
                found = [a for a in found if _binomial_z(a, completed[a["ts"]]) > BINOMIAL_Z]
            if explain and found:
                flagged = {a["ts"] for a in found}
                baselines: dict[int, Totals] = {}  # phase -> its ordinary buckets summed (shared by the anomalies)
                for a in sorted(found, key=lambda a: -abs(a["score"]))[:MAX_EXPLAINED]:
                    a["cause"] = self._explain(metric, a, by_ts, flagged, step_s, baselines)
            out[metric] = {"metric": metric, "step_s": step_s, "from": start, "to": end, "anomalies": found}
        return out

    def _explain(self, metric: str, anomaly: dict, by_ts: dict[int, Totals], flagged: set[int], step_s: int,
                 baselines: dict[int, Totals]) -> dict:
        ts = anomaly["ts"]
        actual = by_ts[ts]
        phase = 86400 if step_s == 3600 else step_s
        baseline = baselines.get(ts % phase)
        if baseline is None:
            baseline = baselines[ts % phase] = Totals()
            for t, totals in by_ts.items():
                if t not in flagged and (t - ts) % phase == 0:
                    for kind in ("b", "e", "s"):
                        baseline.add_sum(kind, "*", getattr(totals, kind))
        breakdowns = _breakdowns(metric, anomaly, actual, baseline)
        best_dim, best = None, []
        for dimension, (a, b, a_units, b_units, direction) in breakdowns.items():
            # contributions under 1 % say nothing ("and 0 % stage …")
            top = [c for c in contributors(a, b, actual_units=a_units, baseline_units=b_units, direction=direction)
                   if c["share"] >= 0.01]
            if dimension == "signature" and top:
                patterns = self._patterns([c["key"] for c in top])
                for c in top:
                    c["label"] = patterns.get(c["key"]) or c["key"]
            breakdowns[dimension] = top
            if top and (not best or top[0]["share"] > best[0]["share"]):
                best_dim, best = dimension, top
        sentence = describe(anomaly, metric, best or None, best_dim or "partner")
        # what the other dimensions say, where one value holds most of the deviation
        also = [f"{dimension} '{_short(top[0].get('label') or top[0]['key'])}' ({round(100 * top[0]['share'])} %)"
                for dimension, top in breakdowns.items()
                if dimension != best_dim and top and top[0]["share"] >= 0.5]
        if also:
            sentence += "; mostly " + ", ".join(also)
        return {"sentence": sentence, "dimension": best_dim, "contributors": breakdowns}


    def _patterns(self, ids: list[str]) -> dict[str, str]:
        store = self.queries.store
        values = store.run(lambda c: c.hmget(store.keys.signature_patterns(), ids))
        return {sig: v.decode() for sig, v in zip(ids, values) if v}


def _breakdowns(metric: str, anomaly: dict, actual: Totals, baseline: Totals) -> dict:
    """dimension -> (actual per value, baseline per value, actual units, baseline units, direction)."""
    direction = anomaly["direction"]
    if metric == "success_rate":
        # the measure is failed builds per completed build: "low" success = more failures than usual
        units = (_completed(actual), _completed(baseline))
        side = "high" if direction == "low" else "low"
        return {
            "signature": (_prefixed(actual.e, rf.SIGNATURE_COUNT), _prefixed(baseline.e, rf.SIGNATURE_COUNT), *units, side),
            "stage": (_prefixed(actual.b, "fs:"), _prefixed(baseline.b, "fs:"), *units, side),
            "partner": (partner_counts(actual, "failed"), partner_counts(baseline, "failed"), *units, side),
            "build type": (_type_counts(actual, "failed"), _type_counts(baseline, "failed"), *units, side),
        }
    if metric == "builds":
        expected = anomaly["expected"] or 0.0
        base_total = sum(_type_counts(baseline).values())
        return {
            "partner": (partner_counts(actual), partner_counts(baseline), expected, base_total, direction),
            "build type": (_type_counts(actual), _type_counts(baseline), expected, base_total, direction),
        }
    # build time: the stages' seconds per completed build against the baseline's
    units = (_completed(actual), _completed(baseline))
    return {"stage": (_prefixed(actual.s, "ds:"), _prefixed(baseline.s, "ds:"), *units, direction)}


_FITS: OrderedDict[bytes, list[dict]] = OrderedDict()  # content of the input series -> detect's answer
_FITS_LOCK = threading.Lock()
MAX_FITS = 256


def _detect(series: pd.Series, periods: tuple[int, ...], report_from: int, kind: str) -> list[dict]:
    """`detect`, memoised on the exact input (the series' timestamps and values, the periods, the
    kind, report_from): a pure function of it, so an answer is reused only for identical input —
    a late event changes the series and is fitted again. The seasonal fit is most of an anomaly
    read (≈ 30 ms a metric for hourly steps), and the series of complete buckets changes only when
    a bucket completes, while every refresh and viewer asks again."""
    digest = hashlib.blake2b(series.index.asi8.tobytes() + series.to_numpy(dtype=float).tobytes()
                             + orjson.dumps([periods, report_from, kind]), digest_size=16).digest()
    with _FITS_LOCK:
        found = _FITS.get(digest)
        if found is not None:
            _FITS.move_to_end(digest)
            return copy.deepcopy(found)
    found = detect(series, periods=periods, report_from=report_from, kind=kind)
    with _FITS_LOCK:
        _FITS[digest] = copy.deepcopy(found)
        while len(_FITS) > MAX_FITS:
            _FITS.popitem(last=False)
    return found


def _short(text: str, width: int = 48) -> str:
    text = str(text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _binomial_z(anomaly: dict, completed: float) -> float:
    """|failures − expected failures| in binomial standard deviations, in the anomaly's direction."""
    p = min(max(float(anomaly["expected"]), 0.005), 0.995)
    deviation = (p - float(anomaly["value"])) if anomaly["direction"] == "low" else (float(anomaly["value"]) - p)
    return deviation * completed ** 0.5 / (p * (1 - p)) ** 0.5


def _completed(t: Totals) -> float:
    n = status_counts(t)
    return n["success"] + n["failed"]


def _values(metric: str, windows: list[tuple[int, Totals]], counts: list[dict]) -> list:
    """The metric's value per bucket (the read API's definitions), from the buckets' status counts."""
    if metric == "builds":
        return [int(n["success"] + n["failed"] + n["cancelled"]) for n in counts]
    if metric == "success_rate":
        return [n["success"] / (n["success"] + n["failed"]) if n["success"] + n["failed"] else None for n in counts]
    if metric == "duration_p95":
        return [v[0] for v in sketch.quantiles_many([totals.bh for _, totals in windows], (0.95,))]
    return [_metric_value(metric, totals) for _, totals in windows]


def _prefixed(fields: dict, prefix: str) -> dict[str, float]:
    return {f[len(prefix):]: v for f, v in fields.items() if f.startswith(prefix) and v}


def _counts(t: Totals, prefix: str, status: str, key_of) -> dict[str, float]:
    """Finished builds (of `status`, or all) grouped by what `key_of(value, status)` picks out of
    the `b` fields starting with `prefix` (both `pc:<partner>:<status>` and `n:<status>:<type>`
    split into three parts)."""
    out: dict[str, float] = defaultdict(float)
    for f, v in t.b.items():
        if f.startswith(prefix) and v:
            _, first, second = f.split(":", 2)
            key, st = key_of(first, second)
            if not status or st == status:
                out[key] += v
    return dict(out)


def partner_counts(t: Totals, status: str = "") -> dict[str, float]:
    """Finished builds (of `status`, or all) per partner, from the all-partner scope's `pc:` fields."""
    return _counts(t, rf.PARTNER_FINISHED, status, lambda partner, st: (partner, st))


def _type_counts(t: Totals, status: str = "") -> dict[str, float]:
    return _counts(t, rf.FINISHED, status, lambda st, build_type: (build_type, st))
