"""Build intelligence reads: failure signatures, stage bottlenecks, duration percentiles per build
type, the builds grid (definitions: docs/intelligence.md). Every public read takes a Scope."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from services import sketch
from services.queries.buildlog import BuildLog
from services.queries.reader import AUTO_STEPS, QueryService, _partners
from services.scope import Scope, earliest_start
from services.store import fields as rf
from services.store.keys import ALL_SCOPE
from services.timerange import cover_range, finest_available
from services.vocabulary import BUILD_TYPES, STAGES

_DAY_S = 86400

__all__ = ["Intelligence", "GRID_FILTERS", "MAX_SIGNATURES", "SLOWEST_SHARE", "describe_bottleneck", "sparkline_step"]

SLOWEST_SHARE = 0.05  # "slow builds" = the slowest 5 % of completed builds of the period
MAX_SIGNATURES = 200  # signatures listed per answer (the most frequent); the rest are counted in `others`
GRID_FILTERS = ("partner_id", "build_type", "status", "failed_stage", "error_category", "error_signature")


def sparkline_step(span_s: float, points: int = 30) -> int:
    """The auto step giving about `points` windows over `span_s` (at most `points`)."""
    return next((s for s in AUTO_STEPS if span_s / s <= points), AUTO_STEPS[-1])


class Intelligence:
    """The /builds page's and the intelligence API's reads."""

    def __init__(self, queries: QueryService, log: BuildLog):
        self.queries = queries
        self.log = log
        self.store = queries.store

    @staticmethod
    def _aligned(scope: Scope, now: float) -> Scope:
        """The scope over the range the rollup reads cover (edges aligned to the finest resolution
        kept there), so raw-event answers count exactly what the summary counts."""
        cover = cover_range(scope.start, scope.end, now)
        return scope.within(cover.start, cover.end)

    # -- failure signatures ------------------------------------------------------------------------
    def failures(self, scope: Scope, *, trend_points: int = 30) -> dict:
        """Failed builds of the period grouped by signature (GET /api/v1/failures)."""
        partners = _partners(scope)
        now = self.queries.clock()
        cover = cover_range(scope.start, scope.end, now)
        totals = self.queries.totals(cover, scope, kinds=("e",))
        sigs: dict[str, dict] = {}
        for field, value in totals.e.items():
            measure, sig, detail = rf.parse_signature_field(field)
            entry = sigs.get(sig)
            if entry is None:
                entry = sigs[sig] = {"count": 0, "partners": defaultdict(int), "stages": defaultdict(int),
                                     "categories": defaultdict(int)}
            if measure == "n":
                entry["count"] += value
            elif measure == "p":
                entry["partners"][detail] += value
            elif measure == "s":
                entry["stages"][detail] += value
            elif measure == "c":
                entry["categories"][detail] += value
        sigs = {s: e for s, e in sigs.items() if e["count"] > 0}
        total = sum(e["count"] for e in sigs.values())
        ranked = sorted(sigs, key=lambda s: (-sigs[s]["count"], s))
        ids, rest = ranked[:MAX_SIGNATURES], ranked[MAX_SIGNATURES:]
        meta = self._signature_meta(ids, partners)
        trend = self._signature_trend(scope, cover, ids[:50], trend_points) if ids else {"step_s": None, "ts": []}
        out = []
        for sig in ids:
            e = sigs[sig]
            first, last, pattern, example = meta[sig]
            out.append({
                "signature": sig, "pattern": pattern, "example": example, "count": int(e["count"]),
                "share": e["count"] / total if total else None,
                "partners": _ranked(e["partners"]), "first_seen": first, "last_seen": last,
                "new": first is not None and first >= cover.start,
                "stages": dict(_ranked(e["stages"], pairs=True)), "categories": dict(_ranked(e["categories"], pairs=True)),
                "trend": trend["series"].get(sig) if "series" in trend else None,
            })
        return {"from": cover.start, "to": cover.end, "failed_with_message": int(total),
                "others": {"signatures": len(rest), "count": int(sum(sigs[s]["count"] for s in rest))},
                "trend_step_s": trend["step_s"], "trend_ts": trend["ts"], "signatures": out}

    def _signature_meta(self, ids: list[str], partners: list[str] | None) -> dict[str, tuple]:
        """(first seen, last seen, pattern, example) of each signature, over the whole history of the
        scope's partners."""
        if not ids:
            return {}
        keys = self.store.keys
        scopes = [ALL_SCOPE] if partners is None else sorted(partners)

        def fetch(client):
            pipe = client.pipeline(transaction=False)
            pipe.hmget(keys.signature_patterns(), ids)
            for scope in scopes:
                pipe.zmscore(keys.signature_first_seen(scope), ids)
                pipe.zmscore(keys.signature_last_seen(scope), ids)
                pipe.hmget(keys.signature_examples(scope), ids)
            return pipe.execute()

        replies = self.store.run(fetch)
        patterns = replies[0]
        out = {}
        for i, sig in enumerate(ids):
            firsts = [r[i] for r in replies[1::3] if r[i] is not None]
            lasts = [r[i] for r in replies[2::3] if r[i] is not None]
            example = next((r[i] for r in replies[3::3] if r[i] is not None), None)
            out[sig] = (min(firsts) if firsts else None, max(lasts) if lasts else None,
                        patterns[i].decode() if patterns[i] else None, example.decode() if example else None)
        return out

    def _signature_trend(self, scope: Scope, cover, ids: list[str], points: int) -> dict:
        """Failed builds of each signature in about `points` windows that tile the period the counts
        cover exactly (edges on the finest resolution kept at its start), so a trend adds up to its
        signature's count."""
        now = self.queries.clock()
        unit = finest_available(cover.start, now).step_s
        span = cover.end - cover.start
        if span >= 86400:  # whole hours (or days) inside: the windows read hour buckets, not minutes
            unit = max(unit, 3600)
        width = max(unit, -(-span // points // unit) * unit) if span > 0 else unit
        # the first window from the period's start to the first multiple of the width, then whole widths
        first = -(-cover.start // width) * width
        edges = [cover.start] + [t for t in range(first, cover.end, width) if t > cover.start] + [cover.end]
        series = {sig: [] for sig in ids}
        windows = self.queries.totals_many([cover_range(lo, hi, now) for lo, hi in zip(edges, edges[1:])], scope,
                                           kinds=("e",))
        for totals in windows:
            e = totals.e
            for sig in ids:
                series[sig].append(int(e.get(rf.signature_count(sig), 0)))
        return {"step_s": width, "ts": edges[:-1], "series": series}

    # -- bottlenecks -------------------------------------------------------------------------------
    def bottlenecks(self, scope: Scope, *, trend_points: int = 60, ready_only: bool = False) -> dict:
        """Each stage's share of build time and of the slowest 5 % of builds, p50/p95 and their
        trend, the stage driving slow builds and its change against the previous period.
        `ready_only`: the slowest builds are looked for only in the days whose build facts are
        ready (`days_pending` says how many are not yet), so a page never waits for them."""
        _partners(scope)
        now = self.queries.clock()
        current = self._stage_shares(scope, now, ready_only)
        span = scope.end - scope.start
        # the previous period of the same length, as far back as the rollups keep
        prev_start = max(scope.start - span, earliest_start(now))
        raw_from = (now - self.log.retention_s) // 86400 * 86400  # the slowest builds need raw events
        prev_start = max(prev_start, min(raw_from, scope.start))
        previous = self._stage_shares(scope.within(prev_start, scope.start), now, ready_only) \
            if prev_start < scope.start else {"stages": [], "driver": None, "days_pending": 0}
        step = sparkline_step(span, trend_points)
        step, windows = self.queries.windows(scope, step, ("sh",))
        trend = {"step_s": step, "ts": [ts for ts, _ in windows], "p50": {s: [] for s in STAGES},
                 "p95": {s: [] for s in STAGES}}
        per_window = [_stage_hists(totals.sh) for _, totals in windows]
        for stage in STAGES:
            values = sketch.quantiles_many([hists.get(stage, {}) for hists in per_window], (0.5, 0.95))
            trend["p50"][stage] = [v[0] for v in values]
            trend["p95"][stage] = [v[1] for v in values]
        cover = cover_range(scope.start, scope.end, now)
        out = {"from": cover.start, "to": cover.end, "stages": current["stages"],
               "days_pending": current["days_pending"] + previous["days_pending"],
               "slow_threshold_s": current["slow_threshold_s"], "slow_builds": current["slow_builds"],
               "driver": current["driver"], "previous": {
                   "from": prev_start, "to": scope.start, "driver": previous["driver"],
                   "stages": previous["stages"]}, "trend": trend}
        out["sentence"] = describe_bottleneck(out)
        return out

    def _stage_shares(self, scope: Scope, now: float, ready_only: bool) -> dict:
        totals = self.queries.totals(cover_range(scope.start, scope.end, now), scope, kinds=("s", "sh"))
        hists = _stage_hists(totals.sh)
        seconds = {stage: float(totals.s.get(rf.stage_seconds(stage), 0)) for stage in STAGES}
        all_seconds = sum(seconds.values())
        profiles, pending = self.log.profiles_ready(self._aligned(scope, now), build=not ready_only)
        durations = np.concatenate([p.durations for p in profiles]) if profiles else np.empty(0)
        slow_share = typical = None
        threshold = None
        slow_n = 0
        if len(durations) >= 20:
            threshold = float(np.quantile(durations, 1 - SLOWEST_SHARE))
            counts = [p.count_at_least(threshold) for p in profiles]
            slow_n = sum(counts)
            slow_stage = np.sum([p.cum_stage[k] for p, k in zip(profiles, counts)], axis=0)
            all_stage = np.sum([p.cum_stage[-1] for p in profiles], axis=0)
            if slow_stage.sum() > 0:
                slow_share = slow_stage / slow_stage.sum()
                # seconds per build a stage adds in slow builds over a typical build
                typical = slow_stage / slow_n - all_stage / len(durations)
        stages = []
        for i, stage in enumerate(STAGES):
            p50, p95 = sketch.quantiles(hists.get(stage, {}), (0.5, 0.95))
            stages.append({
                "stage": stage, "share_of_time": seconds[stage] / all_seconds if all_seconds else None,
                "share_of_slowest": float(slow_share[i]) if slow_share is not None else None,
                "extra_s_in_slowest": float(typical[i]) if typical is not None else None,
                "p50_s": p50, "p95_s": p95,
                "runs": int(totals.count("s", rf.stage_count(stage)))})
        driver = None
        if typical is not None:
            extra = typical.clip(min=0)
            i = int(np.argmax(extra))
            if extra[i] > 0:
                driver = {"stage": STAGES[i], "share_of_slowest": float(slow_share[i]),
                          "share_of_extra": float(extra[i] / extra.sum())}
        return {"stages": stages, "slow_threshold_s": threshold, "slow_builds": slow_n, "driver": driver,
                "days_pending": pending}

    # -- duration percentiles --------------------------------------------------------------------
    def duration_percentiles(self, scope: Scope, step_s: int | None = None) -> dict:
        """p50/p95/p99 of completed builds per window, per build type and for all."""
        step, windows = self.queries.windows(scope, step_s, ("th",))
        types = (*BUILD_TYPES, "all")
        hists: dict[str, list[dict[int, int]]] = {t: [] for t in types}
        for _, totals in windows:
            per_type: dict[str, dict[int, int]] = defaultdict(dict)
            merged: dict[int, int] = defaultdict(int)
            for field, count in totals.th.items():
                build_type, index = rf.parse_type_bucket(field)
                per_type[build_type][index] = count
                merged[index] += count
            per_type["all"] = merged
            for t in types:
                hists[t].append(per_type.get(t, {}))
        out = {}
        for t in types:
            values = sketch.quantiles_many(hists[t], (0.5, 0.95, 0.99))
            out[t] = {q: [v[i] for v in values] for i, q in enumerate(("p50", "p95", "p99"))}
        return {"step_s": step, "ts": [ts for ts, _ in windows], "types": out}

    # -- builds grid -----------------------------------------------------------------------------
    def builds(self, scope: Scope, *, filters: dict | None = None, sort: tuple[str, bool] = ("finished_at", True),
               start_row: int = 0, end_row: int = 100, ready_only: bool = False) -> dict:
        """One page of finished builds (newest first unless sorted by duration) and the row count
        under `filters` ({column: value or [values]}, equality on the facts' text columns);
        `ready_only`: of the days whose facts are ready (`days_pending` the others)."""
        table, pending = self.log.table_ready(self._aligned(scope, self.queries.clock()), build=not ready_only)
        if len(table) and filters:
            mask = np.ones(len(table), dtype=bool)
            for column, wanted in filters.items():
                if column not in GRID_FILTERS:
                    raise ValueError(f"filter: no filter on {column}")
                wanted = wanted if isinstance(wanted, (list, tuple)) else [wanted]
                mask &= np.isin(getattr(table, column), np.array(list(wanted), dtype=object))
            table = table.take(mask)
        column, descending = sort
        if column not in ("finished_at", "duration_s"):
            raise ValueError(f"sort: by finished_at or duration_s, not {column}")
        keys = getattr(table, column)
        order = np.argsort(-keys if descending else keys, kind="stable")
        page = table.take(order[start_row:end_row]) if len(table) else table
        return {"rows": self.log.rows(page), "total": len(table), "days_pending": pending}

    def recent_builds(self, scope: Scope, *, filters: dict | None = None, limit: int = 50,
                      ready_only: bool = False) -> dict:
        """The newest `limit` finished builds of the scope under `filters`, read from the period's
        end in runs of UTC days that double (1, 2, 4, … days): a long period costs what its last
        days hold, not all of it, and a rare match (one partner's failures) costs a handful of round
        trips, not one per day. {"rows", "days_pending"} (the days read whose facts were not ready,
        with `ready_only`)."""
        aligned = self._aligned(scope, self.queries.clock())
        rows: list[dict] = []
        pending = 0
        end, days = aligned.end, 1
        while end > aligned.start and len(rows) < limit:
            # the `days` UTC days ending with the one holding the instant before `end`
            start = max(aligned.start, (-(-end // _DAY_S) - days) * _DAY_S)
            page = self.builds(aligned.within(start, end), filters=filters, end_row=limit - len(rows),
                               ready_only=ready_only)
            rows += page["rows"]
            pending += page["days_pending"]
            end, days = start, 2 * days
        return {"rows": rows, "days_pending": pending}


def _stage_hists(sh: dict) -> dict[str, dict[int, int]]:
    hists: dict[str, dict[int, int]] = defaultdict(dict)
    for field, count in sh.items():
        stage, index = rf.parse_stage_bucket(field)
        hists[stage][index] = count
    return hists


def _ranked(counts: dict, pairs: bool = False):
    items = sorted(((k, int(v)) for k, v in counts.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    return items if pairs else [k for k, _ in items]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _pct(share: float) -> str:
    return f"{round(100 * share)} %"


def describe_bottleneck(result: dict) -> str:
    """One plain sentence: the stage driving slow builds and how that changed."""
    driver = result.get("driver")
    if driver is None:
        return "Not enough completed builds with stage timings in this period to say which stage slows builds."
    name = driver["stage"].replace("_", " ")
    text = (f"{name.capitalize()} drives slow builds: it takes {_pct(driver['share_of_slowest'])} of the time of the "
            f"slowest 5 % ({result['slow_builds']:,} builds over {_duration(result['slow_threshold_s'])}) and "
            f"{_pct(driver['share_of_extra'])} of the extra time they take over a typical build")
    before = result["previous"]["driver"]
    prev_share = next((s["share_of_slowest"] for s in result["previous"]["stages"] if s["stage"] == driver["stage"]),
                      None)
    if before is None or prev_share is None:
        return text + "; the previous period has too few builds to compare."
    if before["stage"] == driver["stage"]:
        return text + f"; in the previous period it was the same stage, at {_pct(prev_share)}."
    return text + (f"; in the previous period it was {before['stage'].replace('_', ' ')} "
                   f"({name} was {_pct(prev_share)}).")
