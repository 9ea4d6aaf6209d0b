"""/metrics: scrape time and exposition size under gunicorn, and the HTTP middleware's overhead.

    python benchmarks/metrics.py [--partners 100] [--scrapes 60] [--requests 20000]

Prints one JSON line.

* scrape: an embedded Valkey (temporary directory) and the Procfile's web line (gunicorn,
  `gunicorn.conf.py`, 2 workers, multiprocess metrics). One day of demo traffic for `--partners`
  partners is posted through `/api/v1/events` (spread over both workers, so every worker holds a
  full set of label combinations), the collector writes its snapshot, then `/metrics` is fetched
  `--scrapes` times: p50/p95 wall time per scrape, exposition bytes and sample lines.
* middleware: in this process, in multiprocess mode like gunicorn: two identical Flask apps with
  one JSON route, one of them instrumented (`app.observability.install`); `--requests` requests
  through Flask's test client, alternating blocks; overhead = difference of the per-request
  medians of the blocks.

Targets (issue #4): <= 50 ms per scrape with 100 partners and 2 workers; <= 0.2 ms per request.
"""
from __future__ import annotations

import os
import tempfile

_MULTIPROC = tempfile.mkdtemp(prefix="lulupay-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _MULTIPROC  # before prometheus_client is imported

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._machine import machine  # noqa: E402
from benchmarks._server import exit_cleanly_on_sigterm, wait_ready  # noqa: E402
from services.demo.generator import generate_history  # noqa: E402
from services.store.embedded import EmbeddedValkey  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def scrape_figures(partners: int, scrapes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedValkey(Path(tmp) / "valkey", port=free_port(), persist=True).start()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LULUPAY_")}
        env.update(REDIS_URL=store.url, PORT=str(port), WEB_CONCURRENCY="2", GUNICORN_THREADS="8",
                   PROMETHEUS_MULTIPROC_DIR=str(Path(tmp) / "prom"), LULUPAY_COLLECTOR_INTERVAL_S="1",
                   LULUPAY_DATA_DIR=tmp, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, server)
            events = 0
            session = requests.Session()
            for batch in generate_history(days=1, partners=partners, builds_per_day=20 * partners, now=time.time()):
                for i in range(0, len(batch), 1000):
                    chunk = batch[i:i + 1000]
                    # a fresh connection per request: gunicorn spreads them over both workers
                    response = requests.post(url + "/api/v1/events", json={"events": chunk}, timeout=60)
                    response.raise_for_status()
                    events += len(chunk)
            for _ in range(50):
                requests.get(url + "/api/v1/summary", timeout=30)
            deadline = time.monotonic() + 30
            while b"lulupay_partner_builds_this_month" not in requests.get(url + "/metrics").content:
                if time.monotonic() > deadline:
                    raise RuntimeError("no collector snapshot")
                time.sleep(0.2)
            times, size, lines = [], 0, 0
            for _ in range(scrapes):
                started = time.perf_counter()
                body = session.get(url + "/metrics", timeout=30).content
                times.append((time.perf_counter() - started) * 1000)
                size = len(body)
                lines = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            times.sort()
            return {"events_posted": events, "partners": partners, "workers": 2, "scrapes": scrapes,
                    "scrape_ms_p50": round(statistics.median(times), 1),
                    "scrape_ms_p95": round(times[int(0.95 * (len(times) - 1))], 1),
                    "exposition_bytes": size, "samples": lines}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
            store.stop()


def middleware_overhead(total: int) -> dict:
    from flask import Flask

    from app import observability
    from app.settings import Settings
    from services.container import build_services
    from services.queries.system import HttpStats

    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedValkey(Path(tmp), port=free_port(), persist=True).start()
        try:
            services = build_services(Settings(_env_file=None, redis_url=store.url))

            def make(instrumented: bool):
                server = Flask(f"bench{instrumented}")
                server.add_url_rule("/api/v1/partners/<partner_id>", "p", lambda partner_id: {"partner_id": partner_id})
                if instrumented:
                    stub = type("DashStub", (), {"callback_map": {}})()
                    observability.install(server, stub, services, HttpStats(services.store))
                return server.test_client()

            plain, instrumented = make(False), make(True)
            block = 500
            per = {False: [], True: []}
            for i in range(2 * total // block):
                client = instrumented if i % 2 else plain
                started = time.perf_counter()
                for _ in range(block):
                    client.get("/api/v1/partners/acme")
                per[bool(i % 2)].append((time.perf_counter() - started) / block * 1000)
            base, inst = statistics.median(per[False]), statistics.median(per[True])
            return {"requests": total, "request_ms_plain": round(base, 4), "request_ms_instrumented": round(inst, 4),
                    "overhead_ms": round(inst - base, 4)}
        finally:
            store.stop()


def main() -> None:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=60)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    result = {"benchmark": "metrics", "scrape": scrape_figures(args.partners, args.scrapes),
              "middleware": middleware_overhead(args.requests), "machine": machine(),
              "targets": {"scrape_ms": 50, "overhead_ms": 0.2}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
