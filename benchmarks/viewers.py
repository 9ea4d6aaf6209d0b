"""Many people watching one dashboard: N simulated viewers of a page refreshing every 5 s.

    python benchmarks/viewers.py [--page /operations] [--query range=24h] [--counts 1,100,300,1000]
                                 [--views 1] [--seconds 40] [--warmup-s 10] [--demo-days 90]

Prints one JSON line. What it does: an embedded Valkey (append-only file on) seeded with the
demo (`--demo-days` of history, 5,000 builds/day, 40 partners), the Procfile's web line on it
(gunicorn with `gunicorn.conf.py`, 2 workers, the collector running inside them). One real
page load per distinct view records what a browser's refresh tick sends: the page, its layout
and the callbacks whose input is the refresh timer, with the input and state values the layout
holds (`benchmarks/soak.py` `Viewer`). `--views K` distinct views: the first with every partner,
the others one demo partner each (`--query` plus `&partner=<id>`).

Then for each N of `--counts`, N viewers (viewer i shows view i mod K) replay their tick's
callbacks every 5 s for `--seconds`, each starting at a random phase, with at most 6 requests in
flight (a browser's connections per host); all of them on one asyncio loop (httpx), so the load
generator costs about one core at 1,000 viewers — on this 2-core machine it shares the cores
with the server and Valkey, as the issue's target says. Refreshes that start in the first
`--warmup-s` are not counted.

Figures per N: a whole refresh (all its callbacks) p50 / p95 / max, the share of refreshes that
finished within their 5 s interval, errors (a non-200 answer, an answer without "response", a
panel drawn in its error state, a timeout) with samples, bytes per refresh, the server's CPU (100 %
= one core) and RSS, the load generator's CPU.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402

from app.settings import Settings  # noqa: E402
from benchmarks._machine import cpu_seconds, machine  # noqa: E402
from benchmarks._server import exit_cleanly_on_sigterm, start_web, stop_web, wait_ready  # noqa: E402
from benchmarks.dashboard import percentile  # noqa: E402
from benchmarks.soak import REFRESH_S, TICK_INPUT, Viewer  # noqa: E402
from services.container import build_services  # noqa: E402
from services.demo.generator import partner_catalogue  # noqa: E402
from services.demo.seeding import seed_store  # noqa: E402
from services.store.embedded import EmbeddedValkey  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MAX_IN_FLIGHT = 6  # per viewer, as a browser per host
PARTNERS = 40
SEED = 42


def log(message: str) -> None:
    print(f"[viewers] {message}", file=sys.stderr, flush=True)


@dataclass
class View:
    """What one distinct view's refresh tick sends: the callback bodies and the page's endId."""

    query: str
    bodies: list[dict]
    params: dict | None

    def payload(self, body: dict, tick: int) -> bytes:
        inputs = [dict(i, value=tick) if f"{i['id']}.{i['property']}" == TICK_INPUT else i for i in body["inputs"]]
        return json.dumps({**body, "inputs": inputs}).encode()


@dataclass
class Tally:
    refresh_s: list[float] = field(default_factory=list)
    callback_s: list[float] = field(default_factory=list)
    refresh_bytes: list[int] = field(default_factory=list)
    refreshes: int = 0
    on_time: int = 0
    failed_refreshes: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])


async def _call(client: httpx.AsyncClient, gate: asyncio.Semaphore, view: View, body: dict, tick: int,
                tally: Tally, counted: bool) -> int | None:
    """One callback request; its answer's size, or None (an error, counted when `counted`)."""
    async with gate:
        started = time.perf_counter()
        try:
            answer = await client.post("/_dash-update-component", params=view.params, content=view.payload(body, tick),
                                       headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            if counted:
                tally.error(f"{body['output'][:60]}: {exc!r}")
            return None
        seconds = time.perf_counter() - started
    content = answer.content
    problem = (f"answered {answer.status_code}" if answer.status_code != 200 else
               "no 'response'" if b'"response"' not in content[:64] else
               "drew an error state" if b"panel-error" in content else None)
    if counted:
        if problem:
            tally.error(f"{body['output'][:60]}: {problem}")
        else:
            tally.callback_s.append(seconds)
    return None if problem else len(content)


async def _viewer(base: str, view: View, first_at: float, end: float, counted_from: float, tally: Tally) -> None:
    # a client of its own, as a browser has its own connections: one pool shared by 1,000 viewers
    # spent the load generator's core on its waiting list and left the server idle
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await _refreshes(client, view, first_at, end, counted_from, tally)


async def _refreshes(client: httpx.AsyncClient, view: View, first_at: float, end: float, counted_from: float,
                     tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    tick, next_at = 0, first_at
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        if loop.time() >= end:
            return
        tick += 1
        started = loop.time()
        counted = started >= counted_from
        sizes = await asyncio.gather(*(_call(client, gate, view, body, tick, tally, counted) for body in view.bodies))
        took = loop.time() - started
        if counted:
            tally.refreshes += 1
            if any(size is None for size in sizes):
                tally.failed_refreshes += 1
            else:
                tally.refresh_s.append(took)
                tally.refresh_bytes.append(sum(sizes))
                tally.on_time += took <= REFRESH_S
        next_at += REFRESH_S
        if next_at < loop.time():  # this refresh overran its interval: the next starts now
            next_at = loop.time()


async def _run(base: str, views: list[View], n: int, seconds: float, warmup_s: float, rng: random.Random) -> Tally:
    tally = Tally()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(*(_viewer(base, views[i % len(views)], t0 + rng.uniform(0, REFRESH_S), t0 + seconds,
                                   t0 + warmup_s, tally) for i in range(n)))
    return tally


def _tree(process: psutil.Process) -> list[psutil.Process]:
    return [process] + process.children(recursive=True)


def _rss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 2**20, 1)


def _ms(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.5) * 1000, 1),
            "p95_ms": round(percentile(samples, 0.95) * 1000, 1), "max_ms": round(max(samples) * 1000, 1)}


def measure(base: str, server: psutil.Process, views: list[View], n: int, seconds: float, warmup_s: float,
            rng: random.Random) -> dict:
    tree, me = _tree(server), psutil.Process()
    server_cpu, my_cpu, started = cpu_seconds(tree), cpu_seconds([me]), time.monotonic()
    tally = asyncio.run(_run(base, views, n, seconds, warmup_s, rng))
    wall = time.monotonic() - started
    figures = {"viewers": n, "refreshes": tally.refreshes, "refresh": _ms(tally.refresh_s),
               "callback": _ms(tally.callback_s),
               "on_time_share": round(tally.on_time / tally.refreshes, 3) if tally.refreshes else None,
               "failed_refreshes": tally.failed_refreshes, "errors": tally.errors, "error_samples": tally.error_samples,
               "kib_per_refresh": round(sum(tally.refresh_bytes) / len(tally.refresh_bytes) / 1024, 1)
               if tally.refresh_bytes else None,
               "server_cpu_pct": round(100 * (cpu_seconds(_tree(server)) - server_cpu) / wall, 1),
               "server_rss_mib": _rss_mib(_tree(server)),
               "load_generator_cpu_pct": round(100 * (cpu_seconds([me]) - my_cpu) / wall, 1)}
    log(f"{n} viewers: refresh p95 {figures['refresh'].get('p95_ms')} ms, on time {figures['on_time_share']}, "
        f"errors {tally.errors}, server CPU {figures['server_cpu_pct']} %")
    return figures


def main() -> int:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", default="/operations")
    parser.add_argument("--query", default="range=24h")
    parser.add_argument("--counts", default="1,100,300,1000", help="viewer counts, measured in this order")
    parser.add_argument("--views", type=int, default=1, help="distinct views (1: every partner; more: one partner each)")
    parser.add_argument("--seconds", type=float, default=40.0, help="per count, warm-up included")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--demo-days", type=int, default=90)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if not 1 <= args.views <= PARTNERS + 1 or args.warmup_s >= args.seconds or min(counts) < 1:
        parser.error(f"--views 1..{PARTNERS + 1}, --warmup-s below --seconds, counts ≥ 1")
    rng = random.Random(SEED)
    figures: dict = {"benchmark": "viewers", "machine": machine(), "load_average_1m_start": round(psutil.getloadavg()[0], 2),
                     "page": args.page, "query": args.query, "views": args.views, "seconds": args.seconds,
                     "warmup_s": args.warmup_s, "demo_days": args.demo_days, "workers": 2}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp) / "valkey", port=free_port()) as store:
        services = build_services(Settings(_env_file=None, redis_url=store.url, data_dir=Path(tmp) / "seed"))
        report = seed_store(services.store, services.ingest, days=args.demo_days, partners=PARTNERS, seed=SEED,
                            now=time.time())
        figures["seeded_events"] = report.accepted
        log(f"seeded {report.accepted:,} events in {report.seconds:.0f} s")
        port = free_port()
        web = start_web(store.url, port, str(Path(tmp) / "web"), log_path=str(Path(tmp) / "web.log"))
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, web)
            partner_ids = [p["partner_id"] for p in partner_catalogue(PARTNERS, SEED)]
            views = []
            for k in range(args.views):
                query = args.query + (f"&partner={partner_ids[k - 1]}" if k else "")
                page = Viewer(base, query, page=args.page)
                page.load()
                page.session.close()
                views.append(View(query, page.bodies, page.params))
            figures["callbacks_per_refresh"] = len(views[0].bodies)
            figures["results"] = [measure(base, psutil.Process(web.pid), views, n, args.seconds, args.warmup_s, rng)
                                  for n in counts]
        finally:
            figures["server_stop_s"] = round(stop_web(web), 1)
    figures["load_average_1m_end"] = round(psutil.getloadavg()[0], 2)
    figures["targets"] = {"viewers": 1000, "refresh_p95_ms_max": 1000, "errors": 0, "on_time_share_min": 0.95}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
