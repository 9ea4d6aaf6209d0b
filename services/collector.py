"""The background collector: one leader per deployment samples the host, writes the samples to the
store, refreshes the deployment gauges (the metrics snapshot) and publishes it to the live channel.

Leader election (services/store/leader.py): a Redis key `SET NX PX` with the holder's id, renewed
by the holder every round (compare-and-expire). The lock lives 1.5 intervals; candidates try every quarter interval, so when
a leader dies another takes over within ~1.75 intervals. A leader that cannot renew (store outage,
lock taken over) stops writing at once.

The leader also probes the app's `/readyz` every round (services/probe.py): the availability record.
A leader that loses the store keeps probing at its pace and buffers the outcomes per minute; they
are written to their own minutes as soon as the store answers again (whoever leads by then).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter as Tally
from pathlib import Path

import orjson
import psutil
import redis

from services import metrics, realtime
from services.backoff import Backoff
from services.scope import system_scope
from services.store import STORE_ERRORS, StoreUnavailable
from services.probe import Prober
from services.store.leader import LeaderLock
from services.queries.system import write_probe_counts, write_system_sample

__all__ = ["Collector", "sample_system"]

log = logging.getLogger(__name__)

def sample_system(disk_path: Path, previous_net: tuple[int, int] | None) -> tuple[dict, tuple[int, int]]:
    """One psutil sample of the host (CPU since the previous call), and the network counters."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    net = psutil.net_io_counters()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    counters = (net.bytes_sent, net.bytes_recv) if net else (0, 0)
    sent = recv = 0
    if previous_net is not None:  # counters reset on reboot / interface change: no negative deltas
        sent, recv = max(0, counters[0] - previous_net[0]), max(0, counters[1] - previous_net[1])
    used = memory.total - memory.available
    sample = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": used / memory.total * 100 if memory.total else 0.0,
        "memory_used_bytes": used, "memory_available_bytes": memory.available, "memory_total_bytes": memory.total,
        "disk_percent": disk.used / disk.total * 100 if disk.total else 0.0,
        "disk_used_bytes": disk.used, "disk_free_bytes": disk.free, "disk_total_bytes": disk.total,
        "load_1m": load[0], "load_5m": load[1], "load_15m": load[2],
        "net_sent_bytes": counters[0], "net_recv_bytes": counters[1],
        "net_sent_delta": sent, "net_recv_delta": recv,
    }
    return sample, counters


class Collector:
    """`start()` / `stop()` a daemon thread that competes for the collector lock and, while it holds
    it, samples every `interval_s`. `run_once()` is one round (for tests and the CLI)."""

    def __init__(self, services, *, interval_s: float = 5.0, disk_path: Path | None = None,
                 labels: metrics.PartnerLabels | None = None, owner: str | None = None,
                 prober: Prober | None = None, engine=None, alert_interval_s: float = 15.0):
        self.services = services
        self.store = services.store
        self.keys = services.store.keys
        self.interval_s = interval_s
        self.lock_ms = int(interval_s * 1500)
        self.disk_path = disk_path or Path(".")
        self.labels = labels
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.is_leader = False
        self.samples = 0
        self._net: tuple[int, int] | None = None
        self._net_ts: float | None = None
        self.prober = prober
        self.engine = engine  # the alert engine (services/alerting/engine.py): its rounds run on the leader
        self.alert_interval_s = alert_interval_s
        self._next_alert_round = 0.0
        self._probing = False  # leader in the last round, or its successor in spirit through an outage
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self.backoff = Backoff(base_s=interval_s * 2, cap_s=min(interval_s * 16, 60.0))
        self.lock = LeaderLock(self.store.client, self.keys.collector_lock(), self.owner, self.lock_ms)
        psutil.cpu_percent(interval=None)  # prime: the first reading covers the time since here

    # -- election ------------------------------------------------------------------------------
    def _elect(self) -> bool:
        was_leader = self.lock.held
        leader = self.lock.acquire_or_renew()
        if leader and not was_leader:
            self._net = self._net_ts = None  # network deltas start afresh with a new leader
        return leader

    def _set_leader(self, leader: bool) -> None:
        self.is_leader = leader
        metrics.COLLECTOR_LEADER.set(1 if leader else 0)

    def run_once(self) -> bool:
        """One round: elect or renew, then probe, sample and publish when leader. True when it sampled.
        A leader that finds the store unreachable keeps probing (buffered) in the rounds that follow."""
        probed = False
        try:
            self._set_leader(self._elect())
            if not self.is_leader:
                self._failures = 0
                self._probing = False
                self._write_probes()  # what a former leader buffered through an outage
                return False
            self._probing = True
            if self.prober is not None:
                self.prober.probe()
                probed = True
            self._sample_and_write()
            self._alert_round()
            self._failures = 0
            return True
        except (StoreUnavailable, redis.RedisError, *STORE_ERRORS) as exc:
            self._set_leader(False)
            if self._probing and self.prober is not None and not probed:
                self.prober.probe()  # kept in the buffer until the store is back
            self._failures += 1
            metrics.COLLECTOR_ERRORS.inc()
            if self._failures == 1:
                log.warning("collector: store unreachable (%s); retrying with back-off", exc)
            return False

    def _sample_and_write(self) -> None:
        now = self.services.clock()
        previous_ts = self._net_ts if self._net is not None else None
        sample, self._net = sample_system(self.disk_path, self._net)
        self._net_ts = now
        if previous_ts is not None and now > previous_ts:
            sample["net_seconds_delta"] = now - previous_ts  # the time the byte deltas cover
        write_system_sample(self.store, sample, now)
        self._write_probes()
        snapshot = self.snapshot(sample, now)
        self.store.run(lambda c: c.set(self.keys.metrics_snapshot(), orjson.dumps(snapshot),
                                       px=int(self.interval_s * 3000)))
        realtime.publish(self.store, "metrics", snapshot)
        self.samples += 1
        metrics.COLLECTOR_SAMPLES.inc()

    def _alert_round(self) -> None:
        """The alert engine's round, when one is due (every `alert_interval_s` on the leader; a new
        leader's first round comes at once). A failing rule never stops the collector."""
        if self.engine is None:
            return
        now = self.services.clock()
        if now < self._next_alert_round:
            return
        self._next_alert_round = now + self.alert_interval_s
        try:
            self.engine.run_once()
        except (StoreUnavailable, redis.RedisError, *STORE_ERRORS):
            raise
        except Exception:
            log.exception("alert engine round failed")

    def _write_probes(self) -> None:
        """Write the buffered probe counts to their minutes; on a store error they stay buffered."""
        if self.prober is None:
            return
        taken = self.prober.take()
        try:
            write_probe_counts(self.store, taken)
        except BaseException:
            self.prober.restore(taken)
            raise

    def snapshot(self, sample: dict, now: float) -> dict:
        """The deployment gauges: the system sample, active builds and partner figures."""
        queries = self.services.queries
        everyone = system_scope()  # the deployment's own gauges: every partner, no request behind it
        records = queries.partners(everyone)
        labelled = self.labels.labelled() if self.labels else {r["partner_id"] for r in records}
        active = {"*": queries.active_builds(everyone)}
        by_partner = {pid: queries.active_builds(system_scope(partners=[pid])) for pid in sorted(labelled)}
        active_builds = dict(by_partner)
        active_builds[metrics.OTHER] = max(0, active["*"] - sum(by_partner.values()))
        tally = Tally((r["tier"], r["status"]) for r in records)
        return {
            "ts": now,
            "system": {k: v for k, v in sample.items() if not k.endswith("_delta")},
            "active_builds": active_builds,
            "active_builds_total": active["*"],
            "partners": [[tier, status, n] for (tier, status), n in sorted(tally.items())],
            "quota_used_ratio": {r["partner_id"]: r["quota_used_ratio"] for r in records
                                 if r["partner_id"] in labelled and r["quota_used_ratio"] is not None},
            "builds_this_month": {r["partner_id"]: r["builds_this_month"] for r in records
                                  if r["partner_id"] in labelled},
            "alerts": self._alert_counts(),
        }

    def _alert_counts(self) -> list[list]:
        """[state, severity, alerts] of the engine's pending and firing alerts (every combination)."""
        alerts = self.services.alert_store.alerts().values()
        return [[state, severity, sum(1 for a in alerts if a.state == state and a.severity == severity)]
                for state in ("pending", "firing") for severity in ("info", "warning", "critical")]

    # -- thread --------------------------------------------------------------------------------
    def _wait_s(self) -> float:
        if self._failures and not (self._probing and self.prober is not None):
            return self.backoff.delay(self._failures - 1)
        # a leader, and a former leader probing through an outage, keep the probe's pace
        return self.interval_s if self.is_leader or self._probing else self.interval_s / 4

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # never let one bad round end the collector
                metrics.COLLECTOR_ERRORS.inc()
                log.exception("collector round failed")
            self._stop.wait(max(0.0, self._wait_s() - (time.monotonic() - started)))

    def start(self) -> "Collector":
        """Run in a daemon thread until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and give up the lock (another collector takes over at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.lock.release()
        self._set_leader(False)
        if self.prober is not None:
            try:
                self._write_probes()
            except (StoreUnavailable, redis.RedisError, *STORE_ERRORS) as exc:
                log.warning("collector: %d buffered probe minutes not written (%s)", len(self.prober.pending()), exc)
            self.prober.close()
