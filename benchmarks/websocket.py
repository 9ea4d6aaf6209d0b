"""Real-time channel under load: N WebSocket clients on one instance (gunicorn, 2 workers), 10 build
events/s ingested over HTTP, latency from ingest to receipt, memory per connection, and a dashboard
callback measured at the same time.

    python benchmarks/websocket.py [--clients 100 1000] [--rate 10] [--seconds 30] [--worker-class gthread]

Prints one JSON line. Setup: an embedded Valkey (temporary directory) with 2 days of demo history,
the Procfile's web line (`gunicorn --config gunicorn.conf.py`, WEB_CONCURRENCY=2). Clients are
real WebSocket connections from this process (handshake and subscription by websocket-client, then
read from a selector), each subscribed to `builds` for every partner.
A publisher thread POSTs one `build.stage` event every 1/rate s to `/api/v1/events`; each client
notes when each event arrives: latency = arrival − the moment the POST started (same clock).
Memory per connection = growth of the workers' RSS (psutil, USS not available everywhere) from
before connecting to all connected, divided by N. Meanwhile a second thread calls the Operations
`overview` callback through `/_dash-update-component` with the query cache flushed (cold) once a
second: its p50/p95.

Targets (issue #5): 1,000 clients with p99 <= 100 ms on one instance; callbacks within the
dashboard target (p95 <= 100 ms cold).
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the websocket-client package: take its folder off the import path first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import tempfile
import threading
import time

import psutil
import redis
import requests
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._machine import cpu_seconds, machine  # noqa: E402
from benchmarks._server import exit_cleanly_on_sigterm, wait_ready  # noqa: E402
from benchmarks.dashboard import Caller, flush_cache, request_body  # noqa: E402
from services.demo.generator import generate_history  # noqa: E402
from services.store.embedded import EmbeddedValkey  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def workers_rss(server: subprocess.Popen) -> int:
    """Resident memory of gunicorn's workers (the master's children), bytes."""
    total = 0
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


ID_PATTERN = re.compile(rb'"id":"(bench-[0-9]{7})"')  # bench-<case digit><6 digits>


def run_clients(url: str, n: int, arrivals: dict[str, list[float]], connected: threading.Event,
                stop: threading.Event, failures: list[str]) -> None:
    """N clients in one thread: websocket-client does each handshake and subscription, then the
    raw sockets are read with a selector and the event ids found in the byte stream (server frames
    are unmasked, so the JSON text is there as sent). ~5 µs per message instead of ~100 µs for a
    full client library, so the clients do not saturate the cores they share with the server."""
    selector = selectors.DefaultSelector()
    for i in range(n):
        try:
            ws = websocket.create_connection(url, timeout=60)
            ws.send(json.dumps({"subscribe": ["builds"]}))
            ack = json.loads(ws.recv())
            assert ack["stream"] == "subscribed", ack
        except Exception as exc:  # noqa: BLE001 - reported in the figures
            failures.append(f"client {i}: {exc!r}")
            continue
        ws.sock.setblocking(False)
        selector.register(ws.sock, selectors.EVENT_READ, {"ws": ws, "carry": b""})
    connected.set()
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.2):
            state = key.data
            try:
                data = key.fileobj.recv(262144)
            except BlockingIOError:
                continue
            except OSError as exc:
                failures.append(repr(exc))
                selector.unregister(key.fileobj)
                continue
            if not data:
                selector.unregister(key.fileobj)
                continue
            now = time.time()
            buf = state["carry"] + data
            last = 0
            for match in ID_PATTERN.finditer(buf):
                arrivals.setdefault(match.group(1).decode(), []).append(now)
                last = match.end()
            state["carry"] = buf[last:][-40:]
    for key in list(selector.get_map().values()):
        key.data["ws"].close()


def publish(base: str, rate: float, seconds: float, sent: dict[str, float], stop: threading.Event, prefix: str) -> None:
    """One build.stage event every 1/rate s; ids `bench-<prefix><n>` (unique per case: a repeated
    id would be a duplicate, stored and published once)."""
    session = requests.Session()
    interval = 1 / rate
    next_at = time.monotonic()
    i = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        event_id = f"bench-{prefix}{i:06d}"
        event = {"type": "build.stage", "id": event_id, "ts": time.time(), "partner_id": "bench-partner",
                 "build_id": f"bench-build-{i // 6}", "stage": "compilation", "status": "success", "duration_s": 1.0}
        sent[event_id] = time.time()
        session.post(base + "/api/v1/events", json=event, timeout=30).raise_for_status()
        i += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def callbacks_meanwhile(base: str, client: redis.Redis, stop: threading.Event, samples: list[float]) -> None:
    deps = requests.get(base + "/_dash-dependencies", timeout=30).json()
    dep = next(d for d in deps if d["output"].startswith("..ops-kpis.children"))
    caller = Caller(base)
    body = request_body(dep, {"range": "24h", "from": None, "to": None, "partners": [], "refresh": "30s"})
    for _ in range(2):  # each worker's first call pays imports and template loading: not counted
        caller.post(body)
    while not stop.wait(1.0):
        flush_cache(client, "{lp}:cache:")
        seconds, _, _ = caller.post(body)
        samples.append(seconds)


def run_case(base: str, server: subprocess.Popen, client: redis.Redis, n: int, rate: float, seconds: float,
             case: int) -> dict:
    arrivals: dict[str, list[float]] = {}
    sent: dict[str, float] = {}
    failures: list[str] = []
    connected, stop = threading.Event(), threading.Event()
    rss_before = workers_rss(server)
    loop_thread = threading.Thread(target=run_clients, args=(base.replace("http://", "ws://") + "/ws", n, arrivals,
                                                             connected, stop, failures), daemon=True)
    loop_thread.start()
    connect_started = time.monotonic()
    if not connected.wait(180):
        stop.set()
        raise RuntimeError(f"only some of {n} clients connected: {failures[:3]}")
    connect_s = time.monotonic() - connect_started
    rss_connected = workers_rss(server)
    me = psutil.Process()
    workers = psutil.Process(server.pid).children(recursive=True)
    cpu_before = (cpu_seconds([me]), cpu_seconds(workers), time.monotonic())
    callback_samples: list[float] = []
    caller_thread = threading.Thread(target=callbacks_meanwhile, args=(base, client, stop, callback_samples), daemon=True)
    caller_thread.start()
    publish(base, rate, seconds, sent, threading.Event(), prefix=str(case % 10))
    wall = time.monotonic() - cpu_before[2]
    cpu_share = {"benchmark_clients": round((cpu_seconds([me]) - cpu_before[0]) / wall, 2),
                 "server_workers": round((cpu_seconds(workers) - cpu_before[1]) / wall, 2)}
    time.sleep(2)  # let the last messages arrive (benchmark only: no assertion depends on it)
    stop.set()
    loop_thread.join(30)
    caller_thread.join(30)
    latencies = [(t - sent[event_id]) * 1000 for event_id, times in arrivals.items() if event_id in sent for t in times]
    expected = len(sent) * n
    return {
        "clients": n, "rate_per_s": rate, "seconds": seconds, "messages_expected": expected,
        "messages_received": len(latencies), "client_failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "connect_all_s": round(connect_s, 1),
        "latency_ms_p50": round(percentile(latencies, 0.5), 1) if latencies else None,
        "latency_ms_p99": round(percentile(latencies, 0.99), 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
        "cpu_cores_used": cpu_share,
        "memory_per_connection_kib": round((rss_connected - rss_before) / n / 1024, 1),
        "callback_overview_cold_ms_p50": round(statistics.median(callback_samples) * 1000, 1) if callback_samples else None,
        "callback_overview_cold_ms_p95": round(percentile(callback_samples, 0.95) * 1000, 1) if callback_samples else None,
    }


def main() -> None:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "gevent"])
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS (default: gunicorn.conf.py's)")
    parser.add_argument("--seed-days", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedValkey(Path(tmp) / "valkey", port=free_port(), persist=True).start()
        client = redis.Redis.from_url(store.url)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LULUPAY_")}
        env.update(REDIS_URL=store.url, PORT=str(port), WEB_CONCURRENCY="2", GUNICORN_WORKER_CLASS=args.worker_class,
                   PROMETHEUS_MULTIPROC_DIR=str(Path(tmp) / "prom"), LULUPAY_DATA_DIR=tmp,
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        if args.threads:
            env["GUNICORN_THREADS"] = str(args.threads)
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server)
            for batch in generate_history(days=args.seed_days, partners=40, builds_per_day=5000, now=time.time()):
                for i in range(0, len(batch), 5000):
                    requests.post(base + "/api/v1/events", json={"events": batch[i:i + 5000]}, timeout=120).raise_for_status()
            cases = [run_case(base, server, client, n, args.rate, args.seconds, case)
                     for case, n in enumerate(args.clients)]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
            store.stop()
    print(json.dumps({"benchmark": "websocket", "worker_class": args.worker_class,
                      "threads": args.threads or "gunicorn.conf.py default", "cases": cases, "machine": machine(),
                      "targets": {"clients": 1000, "latency_ms_p99": 100, "callback_ms_p95": 100}}))


if __name__ == "__main__":
    main()
