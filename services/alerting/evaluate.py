"""The values alert rules watch (docs/alerting.md#metric-catalogue), read from the store with the
same definitions the pages use: build figures from the rollups over the rule's window (exact
minutes: the window ends now and starts on a minute), host and HTTP figures from the collector's
and the request statistics' buckets, quota figures from the partner records and the Partners
page's projection, the time since ingest last accepted a batch from its marker.

One `Evaluation` per engine round: rules that share a metric, window and partner set read once."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from services import sketch
from services.alerting.rules import Rule
from services.queries.anomalies import partner_counts
from services.queries.partners import PartnerService
from services.queries.reader import QueryService, Totals
from services.queries.system import http_histogram, http_requests, read_buckets, system_summary
from services.scope import system_scope
from services.store import fields as rf
from services.timerange import cover_range
from services.vocabulary import STAGES

__all__ = ["Evaluation", "Reading", "METRIC_READERS"]

_BUILD_METRICS = ("success_rate", "build_p95_s", "failed_builds")


@dataclass(frozen=True)
class Reading:
    """One value of a rule's metric: about `partner_id` (None: the deployment, or all partners),
    with the completed builds behind it (for `min_builds`; None when not build-based)."""

    partner_id: str | None
    value: float | None
    builds: int | None = None


def _build_value(metric: str, totals: Totals) -> tuple[float | None, int]:
    summary = totals.summary()
    completed = summary["builds_succeeded"] + summary["builds_failed"]
    if metric == "success_rate":
        return summary["success_rate"], completed
    if metric == "build_p95_s":
        return summary["duration_p95_s"], completed
    return float(summary["builds_failed"]), completed


def _events(totals: Totals) -> int:
    """The events the rollups count in `totals` (build started/finished, stages, assets)."""
    return int(totals.count("b", rf.STARTED) + totals.count("b", rf.FINISHED)
               + sum(totals.count("s", rf.stage_count(stage)) for stage in STAGES)
               + totals.count("a", rf.asset("n", "")))


class Evaluation:
    """The metric values of one round at `now` (memoised per metric, window and partner set)."""

    def __init__(self, queries: QueryService, partners: PartnerService, *, now: float,
                 last_ingest_at: Callable[[], float | None]):
        self.queries = queries
        self.store = queries.store
        self.partner_service = partners
        self.now = now
        self.last_ingest_at = last_ingest_at
        self._memo: dict[tuple, list[Reading]] = {}
        self._records: list[dict] | None = None

    def partner_ids(self) -> list[str]:
        """Every partner with a record (a per-partner rule's alerts are about these)."""
        return [r["partner_id"] for r in self.records()]

    def records(self) -> list[dict]:
        if self._records is None:
            self._records = self.queries.partners(system_scope())
        return self._records

    def readings(self, rule: Rule) -> list[Reading]:
        """The rule's values: one per partner (per_partner), the one partner's (partner), or one
        about the deployment (partner_id None)."""
        if rule.per_partner:
            who: tuple | None = ("each",)
        elif rule.partner:
            who = ("one", rule.partner)
        else:
            who = None
        key = (rule.metric, rule.window_s, who)
        if key not in self._memo:
            self._memo[key] = METRIC_READERS[rule.metric](self, rule.window_s or 0, who)
        return self._memo[key]

    # -- readers (see METRIC_READERS) ------------------------------------------------------------
    def _cover(self, window_s: int):
        return cover_range(self.now - window_s, self.now, self.now)

    def _targets(self, who) -> list[str] | None:
        """None: all partners together; else the partner ids each reading is about."""
        if who is None:
            return None
        return self.partner_ids() if who[0] == "each" else [who[1]]

    def _with_builds(self, cover, targets: list[str] | None, who) -> list[str] | None:
        """A per-partner rule's partners: those with a record and those with builds in the window."""
        if who is None or who[0] != "each":
            return targets
        everyone = self.queries.totals(cover, system_scope(), kinds=("b",))
        return sorted(set(targets) | set(partner_counts(everyone)))

    def builds(self, metric: str, window_s: int, who) -> list[Reading]:
        cover = self._cover(window_s)
        targets = self._with_builds(cover, self._targets(who), who)
        if targets is None:
            value, builds = _build_value(metric, self.queries.totals(cover, system_scope(), kinds=("b", "bh")))
            return [Reading(None, value, builds)]
        per = self.queries.totals_by_partner(cover, targets, kinds=("b", "bh")) if targets else {}
        return [Reading(pid, *_build_value(metric, per[pid])) for pid in targets]

    def active_builds(self, window_s: int, who) -> list[Reading]:
        targets = self._targets(who)
        if targets is None:
            return [Reading(None, float(self.queries.active_builds(system_scope())))]
        since = self.now - self.queries.live_window_s
        keys = self.store.keys

        def count(client):
            pipe = client.pipeline(transaction=False)
            for pid in targets:
                pipe.zcount(keys.live_active(pid), since, "+inf")
            return pipe.execute()
        counts = self.store.run(count) if targets else []
        return [Reading(pid, float(n)) for pid, n in zip(targets, counts)]

    def ingest_rate(self, window_s: int, who) -> list[Reading]:
        cover = self._cover(window_s)
        seconds = max(1.0, min(cover.end, self.now) - cover.start)
        targets = self._with_builds(cover, self._targets(who), who)
        if targets is None:
            totals = self.queries.totals(cover, system_scope(), kinds=("b", "s", "a"))
            return [Reading(None, _events(totals) / seconds)]
        per = self.queries.totals_by_partner(cover, targets, kinds=("b", "s", "a")) if targets else {}
        return [Reading(pid, _events(per[pid]) / seconds) for pid in targets]

    def host(self, metric: str, window_s: int, who) -> list[Reading]:
        summary = system_summary(self.store, self.now - window_s, self.now, self.now)
        return [Reading(None, summary[f"{metric}_avg"])]

    def http(self, metric: str, window_s: int, who) -> list[Reading]:
        cover = self._cover(window_s)
        requests = errors = 0
        hist: dict[int, int] = defaultdict(int)
        for fields in read_buckets(self.store, "http", cover.buckets):
            requests += http_requests(fields)
            errors += int(fields.get("n:5xx", 0))
            for index, n in http_histogram(fields).items():
                hist[index] += n
        if metric == "http_error_rate":
            return [Reading(None, errors / requests if requests else None)]
        (p95_s,) = sketch.quantiles(hist, (0.95,))
        return [Reading(None, None if p95_s is None else p95_s * 1000)]

    def quota(self, metric: str, window_s: int, who) -> list[Reading]:
        wanted = set(self._targets(who) or ())
        records = [r for r in self.records() if r["partner_id"] in wanted and r["status"] == "active"]
        if metric == "quota_use":
            return [Reading(r["partner_id"], r["quota_used_ratio"]) for r in records]
        if not records:
            return []
        scope = system_scope(partners=[r["partner_id"] for r in records])
        activity = self.partner_service.activity(scope, records)
        out = []
        for r in records:
            a = activity.get(r["partner_id"], {})
            if a.get("quota_exhausted"):
                days = 0.0
            elif a.get("quota_projected_exhaustion_at") is not None:
                days = max(0.0, (a["quota_projected_exhaustion_at"] - self.now) / 86400)
            else:
                days = None
            out.append(Reading(r["partner_id"], days))
        return out

    def no_events(self, window_s: int, who) -> list[Reading]:
        last = self.last_ingest_at()
        return [Reading(None, None if last is None else max(0.0, (self.now - last) / 60))]


METRIC_READERS: dict[str, Callable[[Evaluation, int, tuple | None], list[Reading]]] = {
    **{m: (lambda metric: lambda ev, w, who: ev.builds(metric, w, who))(m) for m in _BUILD_METRICS},
    "active_builds": lambda ev, w, who: ev.active_builds(w, who),
    "ingest_rate": lambda ev, w, who: ev.ingest_rate(w, who),
    **{m: (lambda metric: lambda ev, w, who: ev.host(metric, w, who))(m)
       for m in ("cpu_percent", "memory_percent", "disk_percent")},
    **{m: (lambda metric: lambda ev, w, who: ev.http(metric, w, who))(m) for m in ("http_error_rate", "http_p95_ms")},
    **{m: (lambda metric: lambda ev, w, who: ev.quota(metric, w, who))(m) for m in ("quota_use", "quota_days_left")},
    "no_events_minutes": lambda ev, w, who: ev.no_events(w, who),
}


def finite(value: float | None) -> float | None:
    """`value`, or None when it is not a finite number."""
    return value if value is not None and math.isfinite(value) else None
