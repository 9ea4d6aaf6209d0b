"""Demo host history: synthetic collector buckets — host samples and `/readyz` probes — for the days a
demo seed covers, so a fresh `serve --demo` has a host history for the Capacity page and the host
panels (the collector itself only starts recording when the server starts). Written once per store,
up to the minute the seed starts; a real deployment's host history comes from its collector alone.

The series (deterministic per seed): CPU follows the demo's daily build rhythm and its growth, memory
rises slowly to the real host's level at the seed and disk doubles to it over the history, network
follows the load, and the probes are up but for a 15-minute outage ten days back and a short blip
yesterday (docs/capacity.md)."""
from __future__ import annotations

import math

import numpy as np

from services.queries.system import NET_SECONDS, PROBE_DOWN, PROBE_UP, SYSTEM_MEASURES
from services.store import Store
from services.store.keys import RESOLUTIONS

__all__ = ["seed_host_history", "host_minutes"]

SAMPLES_PER_MINUTE = 12  # the collector's default 5-s interval
_SETTLED_S = 600  # buckets that ended this long before the seed cannot hold collector samples yet
_MEMORY_TOTAL, _DISK_TOTAL, _CORES = 16 * 2**30, 500e9, 4
_MAX = "local c = redis.call('HGET', KEYS[1], ARGV[1]) if not c or tonumber(c) < tonumber(ARGV[2]) then " \
       "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end"


def host_minutes(start: int, end: int, seed: int = 42, host: dict | None = None) -> dict[str, np.ndarray]:
    """Per minute of [start, end) (minute starts): mean and max of each measure, network bytes and
    seconds, probes up and down. `host` (a collector sample of the real host: memory and disk
    percent and totals) sets where memory and disk end, so the real samples continue the history."""
    host = host or {}
    memory_now, disk_now = host.get("memory_percent", 66.0), host.get("disk_percent", 78.0)
    memory_total = host.get("memory_total_bytes") or _MEMORY_TOTAL
    disk_total = host.get("disk_total_bytes") or _DISK_TOTAL
    ts = np.arange(start, end, 60, dtype=np.int64)
    rng = np.random.default_rng([seed, 7])
    age = (ts - start) / max(end - start, 1)  # 0 … 1 over the history
    hour = (ts % 86400) / 3600
    daily = 0.5 - 0.5 * np.cos(2 * math.pi * (hour - 4) / 24)  # low at 04:00 UTC, high at 16:00
    growth = 1 + 0.85 * age
    out = {"ts": ts}
    cpu = np.clip(6 + 24 * growth * (0.3 + 0.7 * daily) + rng.normal(0, 3, ts.size), 1, 100)
    memory = np.clip(memory_now - 10 * (1 - age) + 4 * (daily - 0.5) + rng.normal(0, 0.8, ts.size), 1, 100)
    disk = np.clip(disk_now * (0.5 + 0.5 * age) + rng.normal(0, 0.05, ts.size), 0.1, 100)
    for name, mean, spread in (("cpu_percent", cpu, 0.25), ("memory_percent", memory, 0.02),
                               ("disk_percent", disk, 0.0)):
        out[f"{name}:mean"] = mean
        out[f"{name}:max"] = np.minimum(100, mean * (1 + spread * rng.random(ts.size)))
    for name, percent, total in (("memory_used_bytes", "memory_percent", memory_total),
                                 ("disk_used_bytes", "disk_percent", disk_total)):
        out[f"{name}:mean"] = out[f"{percent}:mean"] / 100 * total
        out[f"{name}:max"] = out[f"{percent}:max"] / 100 * total
    out["load_1m:mean"], out["load_1m:max"] = cpu / 100 * _CORES, out["cpu_percent:max"] / 100 * _CORES
    rate = 1.5e6 * growth * (0.25 + 0.75 * daily) * rng.lognormal(0, 0.25, ts.size)  # bytes/s both ways
    out["net_sent_delta"], out["net_recv_delta"] = np.round(rate * 60 * 0.35), np.round(rate * 60 * 0.65)
    down = np.zeros(ts.size, dtype=np.int64)
    outage = end - 10 * 86400 + 3 * 3600  # 15 minutes down ten days back (when the history reaches it)
    down[(ts >= outage) & (ts < outage + 900)] = SAMPLES_PER_MINUTE
    down[(ts >= end - 86400 + 7200) & (ts < end - 86400 + 7260)] = 5  # a blip yesterday
    out[PROBE_DOWN], out[PROBE_UP] = down, SAMPLES_PER_MINUTE - down
    return out


def _buckets(minutes: dict[str, np.ndarray], step: int) -> list[tuple[int, dict[str, float], dict[str, float]]]:
    """(bucket start, additive fields, max fields) per `step` bucket of the minutes."""
    ts = minutes["ts"]
    groups = ts // step * step
    starts, index = np.unique(groups, return_index=True)
    ends = [*index[1:].tolist(), int(ts.size)]
    out = []
    for bucket, lo, hi in zip(starts.tolist(), index.tolist(), ends):
        n = (hi - lo) * SAMPLES_PER_MINUTE
        add = {"n": n, NET_SECONDS: (hi - lo) * 60.0}
        for measure in SYSTEM_MEASURES:
            add[f"{measure}:sum"] = float(minutes[f"{measure}:mean"][lo:hi].sum() * SAMPLES_PER_MINUTE)
        for field in ("net_sent_delta", "net_recv_delta", PROBE_UP, PROBE_DOWN):
            add[field] = int(minutes[field][lo:hi].sum())
        peaks = {f"{m}:max": float(minutes[f"{m}:max"][lo:hi].max()) for m in SYSTEM_MEASURES}
        out.append((bucket, add, peaks))
    return out


def seed_host_history(store: Store, *, days: int, now: float, seed: int = 42, host: dict | None = None) -> int:
    """Write `days` of synthetic host buckets up to the minute of `now` (minutes, hours and days,
    each only where that resolution is still kept), once per store, ending at the real `host`'s
    memory and disk levels. Returns the buckets written (0 when the store already has them)."""
    keys = store.keys
    if not store.run(lambda c: c.set(keys.meta("demo_host_history"), repr(now), nx=True)):
        return 0
    end = int(now // 60) * 60
    start = end - days * 86400
    minutes = host_minutes(start, end, seed, host)
    written = 0
    for res in RESOLUTIONS:
        ts = minutes["ts"]
        inside = ts // res.step_s * res.step_s + res.step_s + res.keep_s > now  # buckets still kept
        kept = _buckets({name: column[inside] for name, column in minutes.items()}, res.step_s)

        def write(client, kept=kept, res=res):
            pipe = client.pipeline(transaction=False)
            for bucket, add, peaks in kept:
                key = keys.system(res.name, bucket)
                if bucket + res.step_s <= now - _SETTLED_S:  # before this server started: nothing there
                    pipe.hset(key, mapping={**add, **peaks})
                else:  # the collector may have written into it already: add to it
                    for field, value in add.items():
                        if isinstance(value, int):
                            pipe.hincrby(key, field, value)
                        else:
                            pipe.hincrbyfloat(key, field, value)
                    for field, value in peaks.items():  # EVAL by name: a cluster pipeline has no eval()
                        pipe.execute_command("EVAL", _MAX, 1, key, field, repr(value))
                pipe.expireat(key, bucket + res.step_s + res.keep_s)
            pipe.execute()

        for i in range(0, len(kept), 200):
            store.run(lambda c, part=kept[i:i + 200]: write(c, part))
        written += len(kept)
    return written
