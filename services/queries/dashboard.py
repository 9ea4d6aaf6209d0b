"""Data for the dashboard panels: plain dicts and lists from the rollups (no Dash, no figures)."""
from __future__ import annotations

from collections import defaultdict

from services import sketch
from services.store import fields
from services.vocabulary import FINISH_STATUSES, STAGES, TIERS
from services.queries.reader import QueryService, Totals
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
        groups: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        for field, value in totals.a.items():
            measure, dims = fields.parse_asset(field)
            groups[dims][measure] = value
        rows = []
        for (asset_type, fmt, density), m in sorted(groups.items()):
            n, original, output = m.get("n", 0), m.get("ob", 0), m.get("wb", 0)
            if not n:
                continue
            rows.append({
                "asset_type": asset_type, "format": fmt, "density": density, "processed": int(n),
                "original_bytes": int(original), "output_bytes": int(output),
                "bytes_saved": int(original - output),
                "compression_ratio": round(1 - output / original, 4) if original else None,
                "quality_avg": round(m.get("q", 0) / n, 2),
                "duration_avg_s": round(m.get("ds", 0) / n, 3),
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
    history = queries.partner_histories(scope)
    return {
        "days": days,
        "current": {**current, "builds_per_day": current["builds_total"] / days,
                    "revenue": revenue_by_tier(history, end, prices)},
        "previous_days": previous_days,
        "previous": {**previous, "builds_per_day": previous["builds_total"] / previous_days if previous_days else 0.0,
                     "revenue": revenue_by_tier(history, start, prices)},
    }


def monthly_trend(queries: QueryService, scope: Scope, months: int = 12) -> list[dict]:
    """Builds, success rate and average build time per UTC calendar month up to the scope's end,
    oldest first (the scope's start is not used)."""
    end = scope.end
    from datetime import datetime, timezone
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
    rows = []
    for label, totals in by_month.items():
        s = totals.summary()
        rows.append({"month": label, "builds": s["builds_total"], "success_rate": s["success_rate"],
                     "duration_avg_s": s["duration_avg_s"]})
    return rows
