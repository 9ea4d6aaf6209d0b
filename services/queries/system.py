"""System samples and HTTP request statistics in the store, rolled up per minute, hour and day with
the same resolutions and retention as the build rollups (schema: docs/storage.md).

* `{lp}:sys:<res>:<bucket>` — written by the elected collector only: `n` samples, `<m>:sum` and
  `<m>:max` of each measure, network byte increments (`net_sent_delta`, `net_recv_delta`) and the
  seconds they cover (`net_s`), and the `/readyz` probes (`probe_up`, `probe_down`).
* `{lp}:http:<res>:<bucket>` — written by every process (each flushes its own buffer every few
  seconds, so every worker and instance is counted): `n:<status class>` counts, `ds` duration sum,
  `h:<index>` latency histogram (services/sketch, 1 % relative error).

Both are plain hashes updated with HINCRBY/HINCRBYFLOAT: increments commute, so concurrent writers
never lose one.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

import redis

from services import sketch
from services.store.keys import RESOLUTIONS, Keys
from services.store import STORE_ERRORS, Store, StoreUnavailable
from services.timerange import cover_range

__all__ = ["SYSTEM_MEASURES", "PROBE_UP", "PROBE_DOWN", "NET_SECONDS", "write_system_sample", "write_probe_counts",
           "http_histogram", "http_requests", "probe_availability",
           "system_summary", "HttpStats", "http_series", "system_series", "series_step", "series_windows",
           "read_buckets"]

log = logging.getLogger(__name__)

# Sampled measures (sum and max kept per bucket). Percentages are 0-100.
SYSTEM_MEASURES = ("cpu_percent", "memory_percent", "disk_percent", "memory_used_bytes", "disk_used_bytes",
                   "load_1m")
PROBE_UP, PROBE_DOWN = "probe_up", "probe_down"  # /readyz probes that answered 200 / anything else
NET_SECONDS = "net_s"  # seconds the network byte increments of a bucket cover

_MAX_SCRIPT = """
for i = 1, #KEYS do
  local cur = redis.call('HGET', KEYS[i], ARGV[1])
  if not cur or tonumber(cur) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[i], ARGV[1], ARGV[2]) end
end
"""


def http_histogram(fields: dict[str, float]) -> dict[int, int]:
    """The latency histogram (sketch bucket index → requests) of an `http` bucket's fields."""
    return {int(f[2:]): int(v) for f, v in fields.items() if f.startswith("h:")}


def http_requests(fields: dict[str, float]) -> int:
    """The requests (every status class) of an `http` bucket's fields."""
    return int(sum(v for f, v in fields.items() if f.startswith("n:")))


def probe_availability(fields: dict[str, float]) -> tuple[int, int, float | None]:
    """(probes up, probes down, up ÷ all — None without a probe) of a `sys` bucket's fields."""
    up, down = int(fields.get(PROBE_UP, 0)), int(fields.get(PROBE_DOWN, 0))
    return up, down, (up / (up + down) if up + down else None)


def write_system_sample(store: Store, sample: dict, ts: float) -> None:
    """Add one collector sample to its minute, hour and day buckets (one round trip)."""
    keys = store.keys

    def write(client: redis.Redis):
        pipe = client.pipeline(transaction=True)  # all buckets or none
        for res in RESOLUTIONS:
            key = keys.system(res.name, res.bucket(ts))
            pipe.hincrby(key, "n", 1)
            for measure in SYSTEM_MEASURES:
                pipe.hincrbyfloat(key, f"{measure}:sum", sample[measure])
                # max: compare-and-set inside the server (several collectors never run at once, but
                # a takeover may overlap one round); EVAL by name: a cluster pipeline has no eval()
                pipe.execute_command("EVAL", _MAX_SCRIPT, 1, key, f"{measure}:max", sample[measure])
            for field in ("net_sent_delta", "net_recv_delta"):
                if sample.get(field):
                    pipe.hincrby(key, field, int(sample[field]))
            if sample.get("net_seconds_delta"):
                pipe.hincrbyfloat(key, NET_SECONDS, sample["net_seconds_delta"])
            pipe.expire(key, res.keep_s)
        pipe.execute()

    store.run(write)


def write_probe_counts(store: Store, minutes: dict[int, tuple[int, int]]) -> None:
    """Add (up, down) probe counts, keyed by minute start, to their minute, hour and day buckets
    (one atomic round trip, so a retry after a store error never counts twice)."""
    if not minutes:
        return
    keys = store.keys

    def write(client: redis.Redis):
        pipe = client.pipeline(transaction=True)
        for minute, (up, down) in sorted(minutes.items()):
            for res in RESOLUTIONS:
                key = keys.system(res.name, res.bucket(minute))
                for field, count in ((PROBE_UP, up), (PROBE_DOWN, down)):
                    if count:
                        pipe.hincrby(key, field, int(count))
                pipe.expire(key, res.keep_s)
        pipe.execute()

    store.run(write)


def read_buckets(store: Store, kind: str, buckets: Iterable[tuple[str, int]]) -> list[dict[str, float]]:
    """The fields of each (resolution, bucket) hash of `kind` (`sys` or `http`), one round trip."""
    keys = store.keys
    names = [keys.system(res, b) if kind == "sys" else keys.http(res, b) for res, b in buckets]

    def read(client: redis.Redis):
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        return pipe.execute()

    out = []
    for fields in store.run(read) if names else []:
        out.append({k.decode(): float(v) for k, v in fields.items()})
    return out


def system_summary(store: Store, start: float, end: float, now: float) -> dict:
    """Average and peak of each measure over [start, end), and the sample count."""
    cover = cover_range(start, end, now)
    total: dict[str, float] = defaultdict(float)
    peaks: dict[str, float] = {}
    for fields in read_buckets(store, "sys", cover.buckets):
        for field, value in fields.items():
            if field.endswith(":max"):
                peaks[field[:-4]] = max(peaks.get(field[:-4], value), value)
            else:
                total[field] += value
    n = int(total.get("n", 0))
    up, down, availability = probe_availability(total)
    out: dict = {"samples": n, "probes_up": up, "probes_down": down, "availability": availability}
    for measure in SYSTEM_MEASURES:
        out[f"{measure}_avg"] = total[f"{measure}:sum"] / n if n else None
        out[f"{measure}_max"] = peaks.get(measure) if n else None
    return out


def _windows(start: float, end: float, now: float, step_s: int | None, max_points: int = 300):
    """(step, resolution, window starts) for a series over [start, end)."""
    from services.queries.reader import AUTO_STEPS, resolution_for_step_or_coarser
    span = max(end - start, 60)
    if step_s is None:
        step_s = next((s for s in AUTO_STEPS if span / s <= max_points), AUTO_STEPS[-1])
    res = resolution_for_step_or_coarser(step_s, start, now)
    step_s = max(step_s, res.step_s)
    step_s -= step_s % res.step_s
    first = int(start // step_s) * step_s
    return step_s, res, list(range(first, int(end), step_s)) or [first]


def series_step(start: float, end: float, now: float) -> int:
    """The step the HTTP and system series use for [start, end) (also for Prometheus)."""
    return _windows(start, end, now, None)[0]


# Windows of a series merged in the store: a 24-hour chart at 5-minute steps covers 1,440 minute
# hashes, and summing them in Valkey's Lua (~5 ms) instead of shipping and summing every field in
# Python (~40–150 ms) keeps the HTTP and host panels within the dashboard budget. Values come back as
# strings ('%.17g': exact for integers below 2^53, round-trip for floats).
_WINDOWS_SCRIPT = """
local per = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, per do
  local merged, order = {}, {}
  for j = i, math.min(i + per - 1, #KEYS) do
    local flat = redis.call('HGETALL', KEYS[j])
    for k = 1, #flat, 2 do
      local f, v = flat[k], tonumber(flat[k + 1])
      local cur = merged[f]
      if cur == nil then
        merged[f] = v
        order[#order + 1] = f
      elseif string.sub(f, -4) == ':max' then
        if v > cur then merged[f] = v end
      else
        merged[f] = cur + v
      end
    end
  end
  local arr = {}
  for _, f in ipairs(order) do
    arr[#arr + 1] = f
    arr[#arr + 1] = string.format('%.17g', merged[f])
  end
  out[#out + 1] = arr
end
return out
"""


def series_windows(store: Store, kind: str, start: float, end: float, now: float, step_s: int | None = None):
    """(step, [(window start, merged fields)]) of the `sys` or `http` buckets over [start, end)."""
    return _series(store, kind, start, end, now, step_s)


def _series(store: Store, kind: str, start: float, end: float, now: float, step_s: int | None):
    step_s, res, starts = _windows(start, end, now, step_s)
    per = step_s // res.step_s
    keys = store.keys
    key_of = keys.system if kind == "sys" else keys.http
    names = [key_of(res.name, t + i * res.step_s) for t in starts for i in range(per)]
    merge = store.script(_WINDOWS_SCRIPT)
    merged = store.run(lambda client: merge(keys=names, args=[per]))
    windows = []
    for t, flat in zip(starts, merged):
        fields: dict[str, float] = defaultdict(float)
        for i in range(0, len(flat), 2):
            fields[flat[i].decode()] = float(flat[i + 1])
        windows.append((t, fields))
    return step_s, windows


def system_series(store: Store, start: float, end: float, now: float, step_s: int | None = None) -> dict:
    """Average CPU, memory and disk percent per window (None where there was no sample)."""
    step, windows = _series(store, "sys", start, end, now, step_s)
    rows = []
    for t, m in windows:
        n = m.get("n", 0)
        rows.append({"ts": t, **{measure: (m[f"{measure}:sum"] / n if n else None)
                                 for measure in ("cpu_percent", "memory_percent", "disk_percent")}})
    return {"step_s": step, "rows": rows}


def http_series(store: Store, start: float, end: float, now: float, step_s: int | None = None) -> dict:
    """Per window: requests, 4xx and 5xx counts, error ratio and latency p50/p95/p99 (seconds)."""
    step, windows = _series(store, "http", start, end, now, step_s)
    rows = []
    for t, m in windows:
        total = http_requests(m)
        p50, p95, p99 = sketch.quantiles(http_histogram(m), (0.5, 0.95, 0.99))
        errors4, errors5 = int(m.get("n:4xx", 0)), int(m.get("n:5xx", 0))
        rows.append({"ts": t, "requests": total, "errors_4xx": errors4, "errors_5xx": errors5,
                     "requests_per_s": total / step, "errors_4xx_per_s": errors4 / step,
                     "errors_5xx_per_s": errors5 / step,
                     "error_ratio": ((errors4 + errors5) / total) if total else None,
                     "p50_s": p50, "p95_s": p95, "p99_s": p99})
    return {"step_s": step, "rows": rows, "source": "store"}


class HttpStats:
    """Per-process buffer of HTTP request statistics, flushed to the store every `interval_s` by a
    daemon thread (and on `stop()`), so request handling never waits on the store."""

    def __init__(self, store: Store, *, interval_s: float = 5.0, clock=time.time):
        self.store = store
        self.interval_s = interval_s
        self.clock = clock
        self._buffer: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, status: int, seconds: float) -> None:
        """Count one finished request (cheap: a dict update under a lock)."""
        minute = int(self.clock() // 60) * 60
        index = sketch.bucket_of(seconds)
        with self._lock:
            fields = self._buffer[minute]
            fields[f"n:{status // 100}xx"] += 1
            fields["ds"] += seconds
            fields[f"h:{index}"] += 1

    def flush(self) -> bool:
        """Write the buffered counts (one round trip); on a store error keep them for the next try."""
        with self._lock:
            buffer, self._buffer = self._buffer, defaultdict(lambda: defaultdict(float))
        if not buffer:
            return True
        keys = self.store.keys

        def write(client: redis.Redis):
            pipe = client.pipeline(transaction=True)  # all or nothing: a retry never double counts
            for minute, fields in buffer.items():
                for res in RESOLUTIONS:
                    key = keys.http(res.name, res.bucket(minute))
                    for field, value in fields.items():
                        if field == "ds":
                            pipe.hincrbyfloat(key, field, value)
                        else:
                            pipe.hincrby(key, field, int(value))
                    pipe.expire(key, res.keep_s)
            pipe.execute()

        try:
            self.store.run(write)
            return True
        except (StoreUnavailable, *STORE_ERRORS) as exc:
            log.warning("HTTP statistics not flushed (store unreachable: %s); kept for the next try", exc)
            with self._lock:
                for minute, fields in buffer.items():
                    for field, value in fields.items():
                        self._buffer[minute][field] += value
            return False

    def start(self) -> "HttpStats":
        """Flush every `interval_s` in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="http-stats", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def stop(self) -> None:
        """Stop the thread and flush what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 5)
            self._thread = None
        self.flush()
