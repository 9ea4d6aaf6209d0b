"""Ingest throughput: service layer, POST /api/v1/events, the raw Redis ceiling, and the demo seed.

    python benchmarks/ingest.py [--batches 60] [--seed-days 90] [--seed-builds-per-day 5000]

Prints one JSON line. Runs against an embedded Valkey with the production default persistence
(append-only file, fsync every second) in a temporary directory. The service layer and HTTP
figures are measured twice: with a 202 waiting for the append-only file (the default) and
without (`*_memory_*`); `*_aof_cost_ratio` is memory / aof of the same run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._machine import machine  # noqa: E402
from benchmarks._server import exit_cleanly_on_sigterm, wait_ready  # noqa: E402
from app.settings import Settings  # noqa: E402
from services.demo.generator import generate_history  # noqa: E402
from services.store.embedded import EmbeddedValkey  # noqa: E402
from services.ingest.events import validate_batch  # noqa: E402
from services.ingest.plan import plan_writes  # noqa: E402
from services.container import build_services  # noqa: E402
from services.demo.seeding import seed_store  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def workload(batches: int, now: float) -> list[list[dict]]:
    """Recent traffic: the last two days at 50,000 builds/day (minute, hour and day rollups, live
    state for the last 6 h), in 1,000-event batches."""
    out = []
    for batch in generate_history(days=2, builds_per_day=50_000, now=now, seed=7, batch_size=1000):
        out.append(batch)
        if len(out) == batches:
            break
    return out


def raw_ceiling(services, batches, now) -> float:
    """Events/s for the same command mix sent as plain redis-py pipelines (no script, no checks)."""
    settings = services.settings
    plans = []
    for batch in batches:
        events, _ = validate_batch(batch, now=now, oldest_ts=0, future_tolerance_s=10**9)
        plans.append(plan_writes(events, keys=services.store.keys, now=now, retention_s=settings.retention_s,
                                 live_window_s=settings.live_window_s))
    client = services.store.client
    started = time.perf_counter()
    for plan in plans:
        pipe = client.pipeline(transaction=False)
        for key, fields in plan.seen.items():
            pipe.hmget(key, list(fields))
            pipe.hset(key, mapping={f: 1 for f in fields})
            pipe.expireat(key, plan.seen_exat[key])
        for key, values in plan.push.items():
            pipe.rpush(key, orjson.dumps(values))
            pipe.expireat(key, plan.push_exat[key])
        for key, deltas in plan.rollups.items():
            pipe.rpush(key, orjson.dumps(deltas))
            pipe.expireat(key, plan.rollup_exat[key])
        for op in plan.live:
            if op[0] in ("S", "G"):
                pipe.exists(op[2])
                pipe.hset(op[1], mapping={"build_id": op[5], "partner_id": op[7]})
                pipe.zadd(op[3], {op[5]: float(op[6])}, gt=True)
                pipe.zadd(op[4], {op[5]: float(op[6])}, gt=True)
            elif op[0] == "F":
                pipe.set(op[2], 1, exat=op[6])
                pipe.delete(op[1])
                pipe.zrem(op[3], op[5])
                pipe.zrem(op[4], op[5])
        pipe.execute()
    return sum(map(len, batches)) / (time.perf_counter() - started)


def service_layer(services, batches) -> float:
    started = time.perf_counter()
    for batch in batches:
        services.ingest.ingest_batch(batch)
    return sum(map(len, batches)) / (time.perf_counter() - started)


def over_http(url: str, batches, clients: int) -> float:
    bodies = [orjson.dumps({"events": b}) for b in batches]
    errors = []

    def worker(part):
        with requests.Session() as session:
            for body in part:
                response = session.post(url + "/api/v1/events", data=body, timeout=120,
                                        headers={"Content-Type": "application/json"})
                if response.status_code != 202:
                    errors.append(response.text[:200])

    threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"HTTP ingest failed: {errors[:3]}")
    return sum(map(len, batches)) / elapsed


def _served(redis_url: str, data_dir: Path, durability: str, measure):
    """`measure(url)` against a `serve` process (gunicorn, 2 workers) with LULUPAY_INGEST_DURABILITY."""
    port = free_port()
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "LULUPAY_DATA_DIR": str(data_dir),
           "LULUPAY_INGEST_DURABILITY": durability}
    server = subprocess.Popen([sys.executable, "-m", "app", "--log-level", "WARNING", "serve", "--no-demo",
                               "--port", str(port)], cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        return measure(url)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--seed-days", type=int, default=90)
    parser.add_argument("--seed-builds-per-day", type=int, default=5000)
    args = parser.parse_args()

    now = time.time()
    figures: dict = {"benchmark": "ingest", "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp) / "valkey", port=free_port()) as valkey:
        settings = Settings(_env_file=None, redis_url=valkey.url)
        services = build_services(settings)
        figures["valkey"] = services.store.client.info("server").get("valkey_version") or \
            services.store.client.info("server").get("redis_version")
        batches = workload(args.batches, now)
        figures["events_per_run"] = sum(map(len, batches))

        services.store.client.flushall()
        figures["raw_pipeline_events_per_s"] = round(raw_ceiling(services, batches, now))
        # what a 202 costs (docs/reliability.md): "aof" (the default) waits for the append-only
        # file on disk (WAITAOF), "memory" does not; both measured in this run, one after the other
        in_memory = build_services(Settings(_env_file=None, redis_url=valkey.url, ingest_durability="memory"))
        for name, layer in (("service_events_per_s", services), ("service_memory_events_per_s", in_memory)):
            services.store.client.flushall()
            figures[name] = round(service_layer(layer, batches))
        figures["service_aof_cost_ratio"] = round(figures["service_memory_events_per_s"] / figures["service_events_per_s"], 2)
        figures["http_clients"] = args.clients
        for name, durability in (("http_events_per_s", "aof"), ("http_memory_events_per_s", "memory")):
            services.store.client.flushall()
            figures[name] = round(_served(valkey.url, Path(tmp) / "srv", durability,
                                          lambda url: over_http(url, batches, args.clients)))
        figures["http_aof_cost_ratio"] = round(figures["http_memory_events_per_s"] / figures["http_events_per_s"], 2)

        if args.seed_days:
            services.store.client.flushall()
            report = seed_store(services.store, services.ingest, days=args.seed_days,
                                builds_per_day=args.seed_builds_per_day, now=now)
            figures.update(seed_days=args.seed_days, seed_builds_per_day=args.seed_builds_per_day,
                           seed_events=report.accepted, seed_seconds=round(report.seconds, 1),
                           seed_events_per_s=round(report.accepted / report.seconds),
                           store_memory_mib=round(services.store.client.info("memory")["used_memory"] / 2**20))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
