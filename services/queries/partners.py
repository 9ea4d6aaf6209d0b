"""Partner success (docs/partners.md): each partner's period figures, quota projection, churn
risk and last build; the tier mix and subscription changes per month. Reads the rollups (the
all-partner scope's per-partner counts, and each partner's own rollups for its build times) and the
partner record histories; the arithmetic is `services.analytics.partners`."""
from __future__ import annotations

from services.analytics.partners import (BASELINE_DAYS, PACE_DAYS, bucket_comparison, burn_down, churn_risk,
                                         fleet_standing, hour_of_week, month_starts, monthly_changes,
                                         quota_projection, tier_mix)
from services.queries.anomalies import partner_counts
from services.queries.reader import QueryService, _month_start, status_counts
from services.scope import Scope, system_scope
from services.store import fields as rf
from services.timerange import cover_range

__all__ = ["PartnerService", "LAST_BUILD_DAYS", "COMPARISON_HOURLY_S"]

DAY_S = 86400
LAST_BUILD_DAYS = PACE_DAYS + BASELINE_DAYS  # how far back "last build" is looked for (hourly buckets)
COMPARISON_HOURLY_S = 2 * DAY_S  # periods up to this long are compared hour by hour, longer ones day by day


def _by_partner_and_status(totals) -> dict[str, dict[str, float]]:
    """{partner: {status: finished builds}} from the all-partner scope's `pc:` fields, in one pass."""
    out: dict[str, dict[str, float]] = {}
    prefix = rf.PARTNER_FINISHED
    for field, n in totals.b.items():
        if n and field.startswith(prefix):
            _, pid, status = field.split(":", 2)
            out.setdefault(pid, {})[status] = n
    return out


def _next_month(ts: float) -> int:
    start = _month_start(ts)
    return _month_start(start + 32 * DAY_S)


class PartnerService:
    """GET /api/v1/partners(/<id>) and the /partners pages."""

    def __init__(self, queries: QueryService):
        self.queries = queries

    # -- what every partner row carries ----------------------------------------------------------
    def activity(self, scope: Scope, records: list[dict] | None = None) -> dict[str, dict]:
        """partner_id → quota projection (this month), churn risk and last build (hour) of every
        partner of the scope (`records`: its `QueryService.partners`, when already read), from
        four reads of the all-partner rollups whatever the partner count."""
        now = self.queries.clock()
        records = {r["partner_id"]: r for r in (self.queries.partners(scope) if records is None else records)}
        if not records:
            return {}
        histories = self.queries.partner_histories(scope)
        q = self.queries
        everyone = system_scope()

        def per_partner(start: float, end: float) -> dict[str, float]:
            return partner_counts(q.totals(cover_range(start, end, now), everyone, kinds=("b",)))

        # the windows start on an hour (the hourly rollups count them exactly): the last 7 days and
        # the current hour so far, and the 28 days before them
        hour = int(now // 3600) * 3600
        recent = per_partner(hour - PACE_DAYS * DAY_S, now)
        baseline = per_partner(hour - LAST_BUILD_DAYS * DAY_S, hour - PACE_DAYS * DAY_S)
        month_start, month_end = _month_start(now), _next_month(now)
        # the month's days (to date an exhaustion) and the last hour with a build of each partner
        _, days = q.windows(everyone.within(month_start, now), DAY_S, ("b",))
        day_counts = [(ts, partner_counts(totals)) for ts, totals in days]
        built = {pid for pid in records if recent.get(pid) or baseline.get(pid)}  # a build in the last 35 days
        last_hour = self._last_hours(built, now)
        out = {}
        for pid, record in records.items():
            recent_n, baseline_n = int(recent.get(pid, 0)), int(baseline.get(pid, 0))
            buckets = [(ts, min(ts + DAY_S, now), int(counts.get(pid, 0))) for ts, counts in day_counts]
            quota = quota_projection(used=record["builds_this_month"], quota=record["monthly_build_quota"],
                                     pace_builds=recent_n, now=now, month_end=month_end, month_buckets=buckets)
            last = last_hour.get(pid)
            last_ts = min(last + 3600, now) if last is not None else None
            risk = churn_risk(status=record["status"], recent_builds=recent_n, baseline_builds=baseline_n,
                              last_build_ts=last_ts, now=now, history=histories.get(pid, []))
            out[pid] = {**quota, "churn_risk": risk, "last_build_at": last_ts,
                        "builds_last_7d": recent_n, "builds_previous_28d": baseline_n}
        return out

    def _last_hours(self, partners: set[str], now: float) -> dict[str, int]:
        """partner → start of the last hour (within LAST_BUILD_DAYS) with a finished build, for
        partners known to have one: the last day's hours first (most partners built in it), then
        the days before, newest first, and only the hours of the day each remaining partner last
        built in."""
        found: dict[str, int] = {}
        everyone = system_scope()
        oldest = now - LAST_BUILD_DAYS * DAY_S
        day_start = int(now // DAY_S) * DAY_S

        def scan_hours(start: float, end: float, wanted: set[str]) -> None:
            _, hours = self.queries.windows(everyone.within(max(start, oldest), end), 3600, ("b",))
            for ts, totals in reversed(hours):
                for pid in wanted & partner_counts(totals).keys():
                    found[pid] = ts
                    wanted.discard(pid)
                if not wanted:
                    return

        missing = set(partners)
        scan_hours(day_start, now, missing)
        if missing and day_start > oldest:
            _, days = self.queries.windows(everyone.within(oldest, day_start), DAY_S, ("b",))
            last_day: dict[int, set[str]] = {}
            for ts, totals in reversed(days):
                for pid in missing & partner_counts(totals).keys():
                    last_day.setdefault(ts, set()).add(pid)
                    missing.discard(pid)
                if not missing:
                    break
            for ts, wanted in last_day.items():
                scan_hours(ts, ts + DAY_S, wanted)
        return found

    def detail(self, scope: Scope, partner_id: str) -> dict | None:
        """GET /api/v1/partners/<id>: the record, its history, quota projection and churn risk;
        None when the scope does not hold the partner."""
        one = scope.narrowed([partner_id])
        if one.is_empty:
            return None
        records = self.queries.partners(one)
        if not records:
            return None
        activity = self.activity(one, records)[partner_id]
        return {**records[0], **activity, "history": self.queries.partner_history(one, partner_id)}

    # -- the period's table ----------------------------------------------------------------------
    def table(self, scope: Scope) -> list[dict]:
        """Every partner of the scope with its period figures (builds, success rate, average build
        time), quota use, tier, status, last build and churn risk; most builds first."""
        now = self.queries.clock()
        records = self.queries.partners(scope)
        if not records:
            return []
        activity = self.activity(scope, records)
        cover = cover_range(scope.start, scope.end, now)
        period = self.queries.totals_by_partner(cover, [r["partner_id"] for r in records], kinds=("b",))
        rows = []
        for record in records:
            pid = record["partner_id"]
            totals = period[pid]
            n = status_counts(totals)
            completed = n["success"] + n["failed"]
            seconds = totals.count("b", rf.FINISHED_SECONDS)
            a = activity[pid]
            rows.append({
                "partner_id": pid, "name": record["name"], "tier": record["tier"], "status": record["status"],
                "builds": int(n["success"] + n["failed"] + n["cancelled"]),
                "success_rate": (n["success"] / completed) if completed else None,
                "duration_avg_s": (seconds / completed) if completed else None,
                "quota_used": a["quota_used"], "monthly_build_quota": record["monthly_build_quota"],
                "quota_used_ratio": a["quota_used_ratio"], "quota_pace_per_day": a["quota_pace_per_day"],
                "quota_projected_exhaustion_at": a["quota_projected_exhaustion_at"],
                "quota_exhausted": a["quota_exhausted"], "last_build_at": a["last_build_at"],
                "churn_score": a["churn_risk"]["score"], "churn_level": a["churn_risk"]["level"],
                "churn_reasons": a["churn_risk"]["reasons"],
                "builds_last_7d": a["builds_last_7d"], "builds_previous_28d": a["builds_previous_28d"]})
        rows.sort(key=lambda r: (-r["builds"], r["partner_id"]))
        return rows

    # -- the fleet over time ---------------------------------------------------------------------
    def subscriptions(self, scope: Scope) -> dict:
        """Tier mix of active partners at each month's end (and now) and the changes per month of
        the period: {"ts", "tiers": {tier: [...]}, "months": [{month, new, upgrades, …}]}."""
        now = self.queries.clock()
        histories = self.queries.partner_histories(scope)
        months = month_starts(scope.start, min(scope.end, now))
        at = [min(_next_month(m), now) - 1 for m in months] or [now]
        mix = tier_mix(histories, at)
        return {**mix, "months": monthly_changes(histories, months)}

    def usage_profile(self, scope: Scope) -> list[list[float | None]]:
        """Mean finished builds per UTC hour of the week over the scope's period, at most its last
        35 days (hourly buckets are kept that long)."""
        now = self.queries.clock()
        start = max(scope.start, now - LAST_BUILD_DAYS * DAY_S)  # hourly buckets are kept 35 days
        if start >= scope.end:
            return hour_of_week([])
        _, hours = self.queries.windows(scope.within(start, scope.end), 3600, ("b",))
        return hour_of_week((ts, sum(status_counts(t).values())) for ts, t in hours)

    # -- one partner against the fleet -----------------------------------------------------------
    def profile(self, fleet: Scope, partner_id: str, rows: list[dict] | None = None) -> dict | None:
        """The /partners/<id> view's figures: the partner's table row, its standing among the fleet
        (`fleet`: every partner the viewer may see, over the period; `rows`: its `table`, when
        already read), builds and success rate per bucket against the fleet's quartiles, the
        month's quota burn-down, its hour-of-week usage and its record history. None when the
        fleet does not hold the partner (unknown and not visible look the same)."""
        one = fleet.narrowed([partner_id])
        if one.is_empty:
            return None
        rows = self.table(fleet) if rows is None else rows
        row = next((r for r in rows if r["partner_id"] == partner_id), None)
        if row is None:
            return None
        now = self.queries.clock()
        compared = sorted(r["partner_id"] for r in rows if r["status"] == "active" or r["partner_id"] == partner_id)
        step = 3600 if fleet.end - fleet.start <= COMPARISON_HOURLY_S else DAY_S
        step, windows = self.queries.windows(system_scope().within(fleet.start, fleet.end), step, ("b",))
        buckets = [(ts, _by_partner_and_status(totals)) for ts, totals in windows]
        month_start = _month_start(now)
        _, days = self.queries.windows(one.within(month_start, now), DAY_S, ("b",))
        burn = burn_down(day_builds=[(ts, int(sum(status_counts(t).values()))) for ts, t in days],
                         quota=row["monthly_build_quota"], pace_per_day=row["quota_pace_per_day"], now=now,
                         month_start=month_start, month_end=_next_month(now))
        return {"partner": row, "standing": fleet_standing(rows, partner_id), "fleet_size": len(compared),
                "comparison": {**bucket_comparison(buckets, partner_id, compared), "step_s": step},
                "burn_down": burn, "usage": self.usage_profile(one),
                "history": self.queries.partner_history(one, partner_id)}
