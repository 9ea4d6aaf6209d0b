"""Data for the dashboard panels: plain dicts and lists from the rollups (no Dash, no figures)."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from services import sketch
from services.analytics.assets import group_combinations, measures_row
from services.store import fields
from services.vocabulary import FINISH_STATUSES, STAGES, TIERS
from services.queries.reader import QueryService, Totals
from services.queries.system import system_summary
from services.scope import Scope, earliest_start
from services.timerange import cover_range

__all__ = ["DashboardData", "DURATION_BANDS", "executive", "monthly_trend", "revenue_by_tier", "TIERS"]

# Duration bands of the heatmap (upper bounds in seconds; the last is open-ended).
DURATION_BANDS = ((60, "< 1 min"), (120, "1–2 min"), (300, "2–5 min"), (600, "5–10 min"),
                  (900, "10–15 min"), (1800, "15–30 min"), (float("inf"), "≥ 30 min"))


_BAND_OF: dict[int, int] = {}  # histogram bucket index → DURATION_BANDS position (memo)


def _band(index: int) -> int:
    value = sketch.bucket_value(index)
    return next(i for i, (upper, _) in enumerate(DURATION_BANDS) if value < upper)


class DashboardData:
    """Panel data over the query service; every method takes a scope."""

    def __init__(self, queries: QueryService):
        self.queries = queries

    def build_rate(self, scope: Scope, step_s: int | None = None) -> dict:
        """Finished builds per window by status."""
        step, windows = self.queries.windows(scope, step_s, ("b",))
        rows = []
        for ts, totals in windows:
            rows.append({"ts": ts, **{status: int(totals.count("b", fields.finished(status)))
                                      for status in FINISH_STATUSES}})
        return {"step_s": step, "rows": rows}

    def duration_heatmap(self, scope: Scope, step_s: int | None = None) -> dict:
        """Completed builds per window and duration band."""
        step, windows = self.queries.windows(scope, step_s, ("bh",))
        bands = [label for _, label in DURATION_BANDS]
        counts = []
        band_of = _BAND_OF
        for _, totals in windows:
            row = [0] * len(DURATION_BANDS)
            for index, count in totals.bh.items():
                band = band_of.get(index)
                if band is None:
                    band = band_of[index] = _band(index)
                row[band] += count
            counts.append(row)
        return {"step_s": step, "ts": [ts for ts, _ in windows], "bands": bands, "counts": counts}

    def stage_durations(self, scope: Scope) -> list[dict]:
        """p50/p95 duration and counts per stage, in pipeline order."""
        totals = self.queries.totals(cover_range(scope.start, scope.end, self.queries.clock()), scope, kinds=("s", "sh"))
        hists: dict[str, dict[int, int]] = defaultdict(dict)
        for field, count in totals.sh.items():
            stage, index = fields.parse_stage_bucket(field)
            hists[stage][index] = count
        rows = []
        for stage in STAGES:
            p50, p95 = sketch.quantiles(hists.get(stage, {}), (0.5, 0.95))
            rows.append({"stage": stage, "p50_s": p50, "p95_s": p95,
                         "runs": int(totals.count("s", fields.stage_count(stage))),
                         "failed": int(totals.s.get(fields.stage_count(stage, "failed"), 0))})
        return rows

    def asset_table(self, scope: Scope) -> list[dict]:
        """One row per asset type × format × density: counts, bytes, compression, quality, time."""
        totals = self.queries.totals(cover_range(scope.start, scope.end, self.queries.clock()), scope, kinds=("a",))
        rows = []
        for (asset_type, fmt, density), sums in sorted(group_combinations(totals.a).items()):
            m = measures_row(sums)
            if not m["assets"]:
                continue
            ratio = m["compression_ratio"]
            rows.append({
                "asset_type": asset_type, "format": fmt, "density": density, "processed": m["assets"],
                "original_bytes": m["original_bytes"], "output_bytes": m["output_bytes"],
                "bytes_saved": m["saved_bytes"], "compression_ratio": None if ratio is None else round(ratio, 4),
                "quality_avg": round(m["quality_avg"], 2), "duration_avg_s": round(m["duration_avg_s"], 3),
            })
        return rows


def revenue_by_tier(history: dict[str, list[dict]], at: float, prices: dict[str, float]) -> dict[str, float]:
    """Monthly recurring revenue by tier at time `at`: each partner's last record at or before `at`,
    counted when active, at its tier's price."""
    out = {tier: 0.0 for tier in TIERS}
    for records in history.values():
        current = None
        for record in records:  # ts order
            if record["ts"] <= at:
                current = record
        if current is not None and current["status"] == "active":
            out[current["tier"]] = out.get(current["tier"], 0.0) + prices.get(current["tier"], 0.0)
    return out


def executive(queries: QueryService, scope: Scope, prices: dict[str, float]) -> dict:
    """Executive KPIs for the scope's [start, end) with the previous period of the same length."""
    start, end = scope.start, scope.end
    span = end - start
    current = queries.summary(scope)
    # the previous period of the same length, as far back as the rollups keep it (a long custom
    # range's previous period may reach past them: it is compared over the days that are kept)
    previous_start = min(max(start - span, earliest_start(queries.clock())), start)
    previous = queries.summary(scope.within(previous_start, start))
    days = span / 86400
    previous_days = (start - previous_start) / 86400
    # the days of the previous period that hold builds at all (a young store's previous period is
    # mostly before its first build: its builds per day are over the recorded days, and a period
    # recorded for less than a tenth of its length is not compared — executive tiles)
    covered_from = _first_day_with_builds(queries, scope, previous_start, start) if previous["builds_total"] else start
    previous_covered_days = max(0.0, (start - max(previous_start, covered_from)) / 86400)
    history = queries.partner_histories(scope)
    now = queries.clock()
    # uptime: the deployment's /readyz probe record (not per partner), both periods
    uptime = system_summary(queries.store, start, end, now)["availability"]
    uptime_before = system_summary(queries.store, previous_start, start, now)["availability"] if start > previous_start \
        else None
    return {
        "days": days,
        "current": {**current, "builds_per_day": current["builds_total"] / days,
                    "revenue": revenue_by_tier(history, end, prices), "availability": uptime},
        "previous_days": previous_days, "previous_covered_days": previous_covered_days,
        "previous": {**previous, "builds_per_day": previous["builds_total"] / previous_covered_days
                     if previous_covered_days else 0.0,
                     "revenue": revenue_by_tier(history, start, prices), "availability": uptime_before},
    }


def monthly_trend(queries: QueryService, scope: Scope, months: int = 12) -> list[dict]:
    """Builds, builds per day, success rate and average build time per UTC calendar month up to the
    scope's end, oldest first (the scope's start is not used); each month says how many of its days
    it covers (`days`, `partial`): the current one up to the end, the first one with builds from the
    day of its first build."""
    end = scope.end
    last = datetime.fromtimestamp(end, tz=timezone.utc)
    year, month = last.year, last.month - (months - 1)
    while month <= 0:
        year, month = year - 1, month + 12
    # One cover per month: past months are whole days, summed once and then reused from the query
    # service's group sums while none of their days changes.
    now = queries.clock()
    by_month: dict[str, Totals] = {}
    for _ in range(months):
        start = datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        stop = min(datetime(year, month, 1, tzinfo=timezone.utc).timestamp(), end)
        label = datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m")
        by_month[label] = queries.totals(cover_range(start, stop, now), scope, kinds=("b",)) if stop > start else Totals()
    # Like with like: builds per day over the days each month covers. The current month covers the
    # days up to the period's end, the first month with builds the days from its first build's day.
    first_month = next((label for label, t in by_month.items() if t.summary()["builds_total"]), None)
    rows = []
    for label, totals in by_month.items():
        s = totals.summary()
        start = datetime.strptime(label, "%Y-%m").replace(tzinfo=timezone.utc).timestamp()
        month_end = datetime.strptime(_next_label(label), "%Y-%m").replace(tzinfo=timezone.utc).timestamp()
        covered_from = _first_day_with_builds(queries, scope, start, min(month_end, end)) if label == first_month else start
        days = max(0.0, (min(month_end, end) - covered_from) / 86400)
        whole = (month_end - start) / 86400
        rows.append({"month": label, "builds": s["builds_total"], "success_rate": s["success_rate"],
                     "duration_avg_s": s["duration_avg_s"], "days": round(days, 2), "month_days": round(whole),
                     "builds_per_day": (s["builds_total"] / days) if days >= 1 / 24 else None,
                     "partial": days < whole - 1e-6})
    return rows


def _next_label(label: str) -> str:
    year, month = map(int, label.split("-"))
    return f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"


def _first_day_with_builds(queries: QueryService, scope: Scope, start: float, end: float) -> float:
    """Start of the first UTC day in [start, end) with a finished build (start when none)."""
    _, days = queries.windows(scope.within(start, end), 86400, ("b",))
    return next((ts for ts, totals in days if totals.summary()["builds_total"]), start)
