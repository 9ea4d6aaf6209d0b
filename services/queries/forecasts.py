"""Forecasts off the request path: a job per metric, step and partner set, computed by a background
worker (any web process of any instance) and cached in the store until a new bucket completes.

A read never fits a model: it answers from the cache (a stale answer while the next one is being
computed), or queues the job and says so. The worker reads the history from the rollups (complete
buckets only) and calls the pure `services.analytics.forecast`.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pandas as pd

from services.analytics.forecast import describe_backtest, forecast
from services.queries.reader import QueryService, _partners
from services.scope import Scope, system_scope
from services.store import Store, StoreUnavailable

__all__ = ["ForecastService", "Forecaster", "FORECAST_METRICS", "FORECAST_STEPS", "StepSpec", "parse_horizon"]

log = logging.getLogger(__name__)

MODEL_VERSION = 2  # part of the cache key: a change of method recomputes every forecast
# metric -> (series metric, kind for the model)
FORECAST_METRICS = {"builds": ("builds", "count"), "success_rate": ("success_rate", "rate"),
                    "duration_p95": ("duration_p95", "duration")}


@dataclass(frozen=True)
class StepSpec:
    """One forecast step: bucket width, history read, longest horizon, season."""

    name: str
    step_s: int
    history_steps: int
    max_horizon: int
    season: int
    default_horizon: int


FORECAST_STEPS = {
    "1d": StepSpec("1d", 86400, 90, 30, 7, 14),
    "1h": StepSpec("1h", 3600, 35 * 24, 72, 24, 48),
}
PENDING_S = 120  # a queued job is not queued again for this long
MAX_QUEUED = 1000  # jobs waiting at most (another partner set's forecast waits for the next read)
FAILED_TTL_S = 600  # a forecast that could not be computed is not tried again for this long
WAIT_POLL_S = 0.05
# How often the worker looks at the all-partner forecasts (stale, or fitted on history that has
# changed since — a seed still writing, late data) and warms the build log; at most refresh_s.
CHECK_S = 60.0


def parse_horizon(text: str | None, spec: StepSpec) -> int:
    """Steps of a horizon like '14d', '72h' or a bare number of steps; ValueError when out of range."""
    if text is None or text == "":
        return spec.default_horizon
    text = text.strip().lower()
    unit = {"d": 86400, "h": 3600}.get(text[-1:])
    number = text[:-1] if unit else text
    if not (number.isascii() and number.isdigit()) or len(number) > 6:
        raise ValueError("horizon: a whole number of days ('14d') or hours ('72h')")
    seconds = int(number) * unit if unit else int(number) * spec.step_s
    if seconds % spec.step_s:
        raise ValueError(f"horizon: must be a whole number of {spec.name} steps")
    steps = seconds // spec.step_s
    if not 1 <= steps <= spec.max_horizon:
        raise ValueError(f"horizon: 1 to {spec.max_horizon} steps of {spec.name}")
    return steps


class ForecastService:
    """Cached forecasts (`get`) and their computation (`compute`, run by the Forecaster)."""

    def __init__(self, store: Store, queries: QueryService, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.queries = queries
        self.clock = clock
        self.local_worker: "Forecaster | None" = None

    @staticmethod
    def _digest(metric: str, step: str, partners: list[str] | None) -> str:
        text = orjson.dumps([MODEL_VERSION, metric, step, partners])
        return hashlib.sha256(text).hexdigest()[:32]

    def last_complete_bucket(self, spec: StepSpec) -> int:
        """End (exclusive) of the history a forecast made now uses: the start of the current bucket."""
        return int(self.clock() // spec.step_s) * spec.step_s

    def get(self, metric: str, step: str, horizon: int, scope: Scope, *, wait_s: float = 0.0) -> dict | None:
        """The forecast for the scope's partners (the scope's range is not used: the history is
        the last `history_steps` complete buckets), cut to `horizon` steps, with `fresh` and
        `computed_at`; None when none is cached yet (the job is queued). `wait_s` waits that long
        for a queued job."""
        partners = _partners(scope)
        spec = FORECAST_STEPS[step]
        digest = self._digest(metric, step, partners)
        key = self.store.keys.forecast(digest)
        deadline = time.monotonic() + wait_s
        queued = False
        while True:
            raw = self.store.run(lambda c: c.get(key))
            cached = orjson.loads(raw) if raw else None
            fresh = cached is not None and cached["history_end"] >= self.last_complete_bucket(spec)
            if not fresh and not queued:
                self.enqueue(metric, step, partners, digest)
                queued = True
            out_of_time = time.monotonic() >= deadline
            if cached is not None and (fresh or out_of_time):
                return _cut(cached, horizon, fresh)
            if out_of_time:
                return None
            time.sleep(WAIT_POLL_S)  # waiting on another thread's (or instance's) job, not a model

    def is_fresh(self, metric: str, step: str, partners: list[str] | None) -> bool:
        """True when the cached forecast already uses the last complete bucket."""
        raw = self.store.run(lambda c: c.get(self.store.keys.forecast(self._digest(metric, step, partners))))
        return bool(raw) and orjson.loads(raw)["history_end"] >= self.last_complete_bucket(FORECAST_STEPS[step])

    def enqueue(self, metric: str, step: str, partners: list[str] | None, digest: str | None = None, *,
                first: bool = False, force: bool = False) -> bool:
        """Queue a job unless one for the same forecast was queued in the last PENDING_S, or the
        queue already holds MAX_QUEUED jobs (`first`: ahead of the others — the default view's)."""
        digest = digest or self._digest(metric, step, partners)
        keys = self.store.keys

        def push(client):
            if client.llen(keys.forecast_jobs()) >= MAX_QUEUED:
                return False
            if not client.set(keys.forecast(digest) + ":pending", "1", nx=True, ex=PENDING_S):
                return False
            job = orjson.dumps({"metric": metric, "step": step, "partners": partners, "digest": digest,
                                **({"force": True} if force else {})})
            # the worker pops from the right: `first` jobs go there
            (client.rpush if first else client.lpush)(keys.forecast_jobs(), job)
            return True

        queued = self.store.run(push)
        if queued and self.local_worker is not None:
            self.local_worker.wake()
        return queued

    def history(self, metric: str, step: str, partners: list[str] | None) -> pd.Series:
        """The series a forecast is fitted on: the last `history_steps` complete buckets."""
        spec = FORECAST_STEPS[step]
        end = self.last_complete_bucket(spec)
        start = end - spec.history_steps * spec.step_s
        series = self.queries.series(FORECAST_METRICS[metric][0], system_scope(start, end, partners), spec.step_s)
        index = pd.to_datetime([ts for ts, _ in series["points"]], unit="s", utc=True)
        values = [float("nan") if v is None else float(v) for _, v in series["points"]]
        history = pd.Series(values, index=index, dtype=float)
        history.index.freq = pd.tseries.frequencies.to_offset("D" if step == "1d" else "h")
        # Leading buckets before any data (a young store) are not history, and the first bucket with
        # data may hold only part of its step (the data began inside it): left out too.
        empty = (lambda v: v != v or v == 0) if FORECAST_METRICS[metric][1] == "count" else (lambda v: v != v)
        first = next((i for i, v in enumerate(values) if not empty(v)), len(values))
        return history.iloc[first + 1:] if first < len(values) else history.iloc[len(values):]

    def compute(self, metric: str, step: str, partners: list[str] | None, *, fit: Callable = forecast) -> dict:
        """Fit, backtest and cache one forecast (the worker's job). `fit`: the pure
        `services.analytics.forecast.forecast`, here or in the background's child process."""
        spec = FORECAST_STEPS[step]
        started = time.perf_counter()
        end = self.last_complete_bucket(spec)
        history = self.history(metric, step, partners)
        if len(history) == 0:  # no data at all for this partner set
            days = spec.history_steps * spec.step_s // 86400
            result = {"model": "none", "points": [], "backtest": None,
                      "note": f"no history: no builds in the last {days} days"}
        else:
            result = fit(history, horizon=spec.max_horizon, season=spec.season,
                              kind=FORECAST_METRICS[metric][1])
        out = {
            "metric": metric, "step_s": spec.step_s, "model": result["model"],
            "history": [[int(ts.timestamp()), (None if v != v else float(v))] for ts, v in history.items()],
            "points": result["points"], "backtest": result["backtest"], "note": result["note"],
            "summary": describe_backtest(result["backtest"], step) if result["backtest"] else None,
            "partners": partners, "history_end": end, "computed_at": self.clock(),
            "compute_s": round(time.perf_counter() - started, 3), "history_digest": _history_digest(history),
        }
        self._save(metric, step, partners, out)
        return out

    def history_changed(self, metric: str, step: str, partners: list[str] | None) -> bool:
        """True when the cached forecast was fitted on other history than the store holds now for
        the same buckets (data that arrived late — a seed still writing, a backfill); False when
        there is none cached (`is_fresh` covers that) or it is the same."""
        raw = self.store.run(lambda c: c.get(self.store.keys.forecast(self._digest(metric, step, partners))))
        if not raw:
            return False
        cached = orjson.loads(raw)
        if cached.get("failed"):
            return False  # a failure cached as a note: tried again when it expires
        if cached.get("history_end") != self.last_complete_bucket(FORECAST_STEPS[step]):
            return False  # a new bucket: stale anyway
        return cached.get("history_digest") != _history_digest(self.history(metric, step, partners))

    def _save(self, metric: str, step: str, partners: list[str] | None, out: dict, ttl: int | None = None) -> None:
        key = self.store.keys.forecast(self._digest(metric, step, partners))
        ttl = ttl or FORECAST_STEPS[step].step_s * 3
        self.store.run(lambda c: (c.set(key, orjson.dumps(out), ex=ttl), c.delete(key + ":pending")))

    def fail(self, metric: str, step: str, partners: list[str] | None, error: Exception) -> None:
        """A forecast that could not be computed: an earlier one stays (shown as not fresh); without
        one, the failure is cached as a note for FAILED_TTL_S, so it is not computed on every read."""
        key = self.store.keys.forecast(self._digest(metric, step, partners))
        if self.store.run(lambda c: c.exists(key)):
            return
        spec = FORECAST_STEPS[step]
        self._save(metric, step, partners, ttl=FAILED_TTL_S, out={
            "metric": metric, "step_s": spec.step_s, "model": "none", "history": [], "points": [], "backtest": None,
            "note": f"the forecast could not be computed ({type(error).__name__}); see the server log",
            "summary": None, "partners": partners, "history_end": self.last_complete_bucket(spec),
            "computed_at": self.clock(), "compute_s": None, "failed": True})


def _history_digest(history: pd.Series) -> str:
    """What a forecast was fitted on: the buckets and their values (rounded to 9 digits)."""
    values = [int(ts.timestamp()) for ts in history.index] + [None if v != v else round(float(v), 9)
                                                             for v in history.to_numpy()]
    return hashlib.blake2b(orjson.dumps(values), digest_size=12).hexdigest()


def _cut(cached: dict, horizon: int, fresh: bool) -> dict:
    out = {k: v for k, v in cached.items() if k not in ("history_end", "history_digest", "failed")}
    out["points"] = cached["points"][:horizon]
    out["fresh"] = fresh
    return out


class Forecaster:
    """The background worker: takes queued jobs from the store (every web process runs one; a job
    is taken by exactly one) and, every `refresh_s` (at most every CHECK_S), queues the all-partner forecasts
    that are stale or were fitted on history that changed since, so the default
    view is always ready, then runs `warm` (building what the pages would otherwise wait for)."""

    def __init__(self, service: ForecastService, *, refresh_s: float = 300.0,
                 warm: Callable[[threading.Event], int] | None = None, fit: Callable = forecast):
        self.service = service
        self.fit = fit  # the model fit (services.offload runs it in a child process)
        self.refresh_s = refresh_s
        self.warm = warm  # more work ahead of the pages (the build log's stored facts), when idle
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs_done = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> "Forecaster":
        self.service.local_worker = self
        self._thread = threading.Thread(target=self._run, name="forecaster", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.service.local_worker is self:
            self.service.local_worker = None

    def run_once(self) -> int:
        """Take and compute every queued job; the number computed."""
        done = 0
        store = self.service.store
        while not self._stop.is_set():
            raw = store.run(lambda c: c.rpop(store.keys.forecast_jobs()))
            if raw is None:
                break
            try:
                job = orjson.loads(raw)
                metric, step, partners = job["metric"], job["step"], job["partners"]
                if metric not in FORECAST_METRICS or step not in FORECAST_STEPS:
                    raise ValueError("a job of another version")
            except (ValueError, KeyError, TypeError):
                log.warning("forecast job dropped: %r", raw[:200])
                continue
            if not job.get("force") and self.service.is_fresh(metric, step, partners):
                continue  # computed meanwhile (by another process, or queued twice)
            try:
                self.service.compute(metric, step, partners, fit=self.fit)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one bad series must not stop the worker
                log.exception("forecast job failed: %s", job)
                self.service.fail(metric, step, partners, exc)
            done += 1
        self.jobs_done += done
        return done

    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stop.is_set():
            try:
                refresh = time.monotonic() >= next_refresh
                if refresh:
                    for metric in FORECAST_METRICS:
                        for step in FORECAST_STEPS:
                            if not self.service.is_fresh(metric, step, None):
                                self.service.enqueue(metric, step, None, first=True)
                            elif self.service.history_changed(metric, step, None):
                                self.service.enqueue(metric, step, None, first=True, force=True)
                    next_refresh = time.monotonic() + min(self.refresh_s, CHECK_S)
                self.run_once()
                if refresh and self.warm is not None:
                    built = self.warm(self._stop)
                    if built:
                        log.info("build log: facts of %d days built", built)
            except StoreUnavailable as exc:
                log.warning("forecaster: store unavailable (%s)", exc)
            except Exception:  # the worker outlives any one bad job, day or bug
                log.exception("forecaster: round failed")
            self._wake.wait(timeout=5.0)
            self._wake.clear()
