"""The `system` export: one row per stored `sys` bucket of a period, at the finest resolution still
kept at each point (minutes for the last 2 days, hours for 35 days, days beyond), oldest first
(columns: docs/exports.md). Deployment-wide: the collector's host samples and `/readyz` probes."""
from __future__ import annotations

from collections.abc import Iterator

import redis

from services.queries.system import NET_SECONDS, PROBE_DOWN, PROBE_UP, SYSTEM_MEASURES
from services.store import Store
from services.timerange import finest_available

__all__ = ["SYSTEM_COLUMNS", "RESOLUTION_NAMES", "system_buckets", "iter_system_rows"]

RESOLUTION_NAMES = {"m": "minute", "h": "hour", "d": "day"}
SYSTEM_COLUMNS = ("ts", "resolution", "samples",
                  *(f"{m}_{stat}" for m in SYSTEM_MEASURES for stat in ("mean", "max")),
                  "net_sent_bytes", "net_recv_bytes", "net_seconds", "probes_up", "probes_down")
_CHUNK = 500  # bucket hashes per round trip


def system_buckets(start: float, end: float, now: float) -> Iterator[tuple[str, int]]:
    """(resolution name, bucket start) tiling [start, end) with the finest buckets kept at each
    point (a coarser bucket where the finer ones of its start have expired). `start` is expected
    aligned to the finest resolution kept there (services.timerange.cover_range does that)."""
    t = int(start)
    while t < end:
        res = finest_available(t, now)
        bucket = res.bucket(t)
        yield res.name, bucket
        t = bucket + res.step_s


def _row(res: str, bucket: int, fields: dict[str, float]) -> tuple:
    n = int(fields.get("n", 0))
    stats = []
    for measure in SYSTEM_MEASURES:
        stats.append(fields.get(f"{measure}:sum", 0.0) / n if n else None)
        stats.append(fields.get(f"{measure}:max") if n else None)
    return (bucket, RESOLUTION_NAMES[res], n, *stats, int(fields.get("net_sent_delta", 0)),
            int(fields.get("net_recv_delta", 0)), fields.get(NET_SECONDS, 0.0),
            int(fields.get(PROBE_UP, 0)), int(fields.get(PROBE_DOWN, 0)))


def iter_system_rows(store: Store, start: float, end: float, now: float) -> Iterator[tuple]:
    """Rows (SYSTEM_COLUMNS order; `ts` = bucket start, epoch seconds) of every stored bucket in
    [start, end), read `_CHUNK` buckets per round trip; a bucket that is not stored has no row."""
    keys = store.keys
    buckets = system_buckets(start, end, now)
    while True:
        chunk = [b for _, b in zip(range(_CHUNK), buckets)]
        if not chunk:
            return
        names = [keys.system(res, bucket) for res, bucket in chunk]

        def read(client: redis.Redis, names=names):
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            return pipe.execute()

        for (res, bucket), raw in zip(chunk, store.run(read)):
            if raw:
                yield _row(res, bucket, {k.decode(): float(v) for k, v in raw.items()})
