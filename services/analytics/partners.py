"""Partner success analytics, pure functions of numbers the query layer reads (docs/partners.md):
quota projection, churn risk, the hour-of-week usage profile, and the tier mix and subscription
changes per month from the partners' record histories.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

from services.vocabulary import TIER_RANK, TIERS

__all__ = ["PACE_DAYS", "BASELINE_DAYS", "quota_projection", "churn_risk", "hour_of_week", "month_starts",
           "tier_mix", "monthly_changes", "RISK_LEVELS", "median", "fleet_standing", "bucket_comparison",
           "burn_down"]

DAY_S = 86400
PACE_DAYS = 7  # the quota pace: builds per day over the last 7 × 24 h
BASELINE_DAYS = 28  # the activity a partner is compared with: the 28 × 24 h before the last 7
MIN_BASELINE_WEEK = 5.0  # fewer builds a week than this: too little activity to call a drop
RISK_LEVELS = ((0.6, "high"), (0.3, "medium"), (0.0, "low"))
DOWNGRADE_WEIGHT = 0.3  # a downgrade within the baseline window
SUSPENDED_SCORE = 0.7


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def quota_projection(*, used: int, quota: int | None, pace_builds: int, now: float, month_end: float,
                     month_buckets: Sequence[tuple[float, float, int]] = ()) -> dict:
    """When the month's quota runs out at the pace of the last PACE_DAYS.

    `used`: builds finished this calendar month (UTC) so far; `quota`: the monthly quota (None or
    0: no quota); `pace_builds`: builds finished in the last PACE_DAYS days (the query layer starts the
    window on the hour); `month_end`: start of
    the next month; `month_buckets`: (start, end, builds) of this month in time order, to date an
    exhaustion that already happened (interpolated inside the bucket where the running count
    reaches the quota)."""
    pace = pace_builds / PACE_DAYS
    out = {"quota_used": int(used), "monthly_build_quota": quota, "quota_pace_per_day": pace,
           "quota_used_ratio": (used / quota) if quota else None, "quota_exhausted": False,
           "quota_projected_exhaustion_at": None, "quota_left": (max(0, quota - used) if quota else None)}
    if not quota:
        return out
    if used >= quota:
        out["quota_exhausted"] = True
        seen, at = 0, None
        for start, end, count in month_buckets:
            if count > 0 and seen + count >= quota:
                at = start + (end - start) * (quota - seen) / count
                break
            seen += count
        out["quota_projected_exhaustion_at"] = min(at, now) if at is not None else now
        return out
    if pace > 0:
        at = now + (quota - used) / pace * DAY_S
        if at < month_end:
            out["quota_projected_exhaustion_at"] = at
    return out


def _level(score: float) -> str:
    return next(name for floor, name in RISK_LEVELS if score >= floor)


def churn_risk(*, status: str, recent_builds: int, baseline_builds: int, last_build_ts: float | None,
               now: float, history: Sequence[dict] = ()) -> dict:
    """{"score": 0–1, "level", "reasons": [...], "components": {...}} of one partner.

    `recent_builds`: builds finished in the last PACE_DAYS × 24 h; `baseline_builds`: in the
    BASELINE_DAYS × 24 h before them; `last_build_ts`: the partner's last finished build (None:
    none in the window read); `history`: its record changes (ts, tier, status, change), oldest first.
    The components (docs/partners.md): activity drop, inactivity against the partner's own rhythm,
    a recent downgrade; combined as 1 − Π(1 − component), so each one alone can make the level."""
    changes = list(history)
    since = next((c["ts"] for c in reversed(changes) if c.get("status") == status), None)
    if status == "churned":
        reason = f"the partner has churned (since {_day(since)})" if since else "the partner has churned"
        return {"score": 1.0, "level": "high", "reasons": [reason], "components": {"status": 1.0}}
    baseline_week = baseline_builds * 7 / BASELINE_DAYS
    recent_week = recent_builds * 7 / PACE_DAYS
    reasons: list[tuple[float, str]] = []
    components: dict[str, float] = {}
    if status == "suspended":
        components["status"] = SUSPENDED_SCORE
        reasons.append((2.0, f"the account is suspended{f' (since {_day(since)})' if since else ''}"))
    # activity drop: the last 7 days against the weekly average of the 28 before
    drop = 0.0
    if baseline_week >= MIN_BASELINE_WEEK:
        fall = 1 - recent_week / baseline_week
        drop = min(1.0, max(0.0, (fall - 0.2) / 0.6))  # a fall of 20 % or less: 0; of 80 % or more: 1
        if drop > 0:
            reasons.append((drop, f"builds fell {round(100 * fall)} % in the last 7 days ({recent_builds:,} against "
                                  f"{baseline_week:,.0f} a week before)"))
    components["activity_drop"] = drop
    # inactivity: days without a build beyond what the partner's own rhythm makes normal
    usual_week = max(baseline_week, recent_week)
    idle_days = (now - last_build_ts) / DAY_S if last_build_ts is not None else float(PACE_DAYS + BASELINE_DAYS)
    inactivity = 0.0
    if usual_week > 0:
        allowed = max(2.0, 3 * 7 / usual_week)  # three usual gaps between builds, at least two days
        inactivity = min(1.0, max(0.0, (idle_days - allowed) / 7))
        if inactivity > 0:
            when = f"last on {_day(last_build_ts)}" if last_build_ts is not None else \
                f"none in {PACE_DAYS + BASELINE_DAYS} days"
            reasons.append((inactivity, f"no build for {math.floor(idle_days)} days ({when})"))
    components["inactivity"] = inactivity
    # a downgrade within the window compared
    downgrade = 0.0
    window_start = now - (PACE_DAYS + BASELINE_DAYS) * DAY_S
    for i, change in enumerate(changes):
        if change.get("change") == "downgrade" and change["ts"] >= window_start:
            before = changes[i - 1]["tier"] if i > 0 else None
            downgrade = DOWNGRADE_WEIGHT
            reasons.append((downgrade, f"downgraded{f' from {before}' if before else ''} to {change['tier']} on "
                                       f"{_day(change['ts'])}"))
    components["downgrade"] = downgrade
    score = 1.0
    for value in components.values():
        score *= 1 - value
    score = round(1 - score, 4)
    ordered = [text for _, text in sorted(reasons, key=lambda r: -r[0])]
    if not ordered:
        ordered = ["activity steady: no drop, no unusual gap, no downgrade" if usual_week > 0
                   else f"no builds in the last {PACE_DAYS + BASELINE_DAYS} days to judge by"]
    return {"score": score, "level": _level(score), "reasons": ordered, "components": components}


def hour_of_week(buckets: Iterable[tuple[float, int]]) -> list[list[float | None]]:
    """Mean builds per hour of the week (7 rows Monday..Sunday × 24 UTC hours) of hourly buckets
    (start ts, builds); None where the period holds no such hour."""
    total = [[0.0] * 24 for _ in range(7)]
    seen = [[0] * 24 for _ in range(7)]
    for ts, count in buckets:
        moment = datetime.fromtimestamp(ts, tz=timezone.utc)
        total[moment.weekday()][moment.hour] += count
        seen[moment.weekday()][moment.hour] += 1
    return [[(total[d][h] / seen[d][h]) if seen[d][h] else None for h in range(24)] for d in range(7)]


def month_starts(start: float, end: float) -> list[int]:
    """Epoch starts of the UTC months overlapping [start, end)."""
    moment = datetime.fromtimestamp(start, tz=timezone.utc)
    year, month = moment.year, moment.month
    out = []
    while True:
        first = int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp())
        if first >= end:
            break
        out.append(first)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _state_at(changes: Sequence[dict], ts: float) -> dict | None:
    state = None
    for change in changes:
        if change["ts"] > ts:
            break
        state = change
    return state


def tier_mix(histories: dict[str, Sequence[dict]], at: Sequence[float]) -> dict:
    """Active partners per tier at each moment of `at` (the record in force then):
    {"ts": [...], "tiers": {tier: [...]}}."""
    out = {"ts": [int(t) for t in at], "tiers": {tier: [0] * len(at) for tier in TIERS}}
    for changes in histories.values():
        for i, ts in enumerate(at):
            state = _state_at(changes, ts)
            if state is not None and state.get("status") == "active" and state.get("tier") in TIER_RANK:
                out["tiers"][state["tier"]][i] += 1
    return out


def monthly_changes(histories: dict[str, Sequence[dict]], months: Sequence[int]) -> list[dict]:
    """Per month of `months` (epoch starts, ascending): new partners, upgrades, downgrades, churned,
    suspended and reactivated, each with the partner ids."""
    ends = list(months[1:]) + [math.inf]
    rows = [{"month": m, "new": [], "upgrades": [], "downgrades": [], "churned": [], "suspended": [],
             "reactivated": []} for m in months]
    kinds = {"created": "new", "upgrade": "upgrades", "downgrade": "downgrades", "churned": "churned",
             "suspended": "suspended", "active": "reactivated"}
    for pid, changes in histories.items():
        for change in changes:
            kind = kinds.get(change.get("change"))
            if kind is None:
                continue
            for row, end in zip(rows, ends):
                if row["month"] <= change["ts"] < end:
                    row[kind].append(pid)
                    break
    for row in rows:
        for key in ("new", "upgrades", "downgrades", "churned", "suspended", "reactivated"):
            row[key] = sorted(set(row[key]))
    return rows


# -- one partner against the fleet (the /partners/<id> view) -------------------------------------
def median(values: Iterable[float]) -> float | None:
    """The median of the values (None when there is none)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return None
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def fleet_standing(rows: Sequence[dict], partner_id: str,
                   metrics: Sequence[tuple[str, bool]] = (("builds", True), ("success_rate", True),
                                                          ("duration_avg_s", False))) -> dict:
    """metric → {"value", "median", "rank", "of"} of one partner among the fleet's active partners
    (plus itself whatever its status). `rows`: the partners table; a metric that is None for a
    partner (no completed build) leaves that partner out of its median and rank. `rank` 1 = best:
    most builds, highest success rate, shortest build time (the bool says whether higher is
    better)."""
    fleet = [r for r in rows if r["status"] == "active" or r["partner_id"] == partner_id]
    own = next((r for r in rows if r["partner_id"] == partner_id), None)
    out = {}
    for metric, higher_is_better in metrics:
        values = [r[metric] for r in fleet if r.get(metric) is not None]
        value = own.get(metric) if own else None
        rank = None
        if value is not None:
            rank = 1 + sum(1 for v in values if (v > value if higher_is_better else v < value))
        out[metric] = {"value": value, "median": median(values), "rank": rank, "of": len(values)}
    return out


def bucket_comparison(buckets: Sequence[tuple[float, dict[str, dict[str, float]]]], partner_id: str,
                      fleet: Iterable[str]) -> dict:
    """Per bucket: the partner's finished builds and success rate, and the fleet's median, 25th and
    75th percentile of the same per-partner figures. `buckets`: (ts, {partner: {status: count}});
    `fleet`: the partner ids compared with (the partner's own counts are among them). A partner
    with no completed build in a bucket has no success rate there (left out of that bucket's
    success-rate quantiles); every fleet partner counts in the builds quantiles, with 0 builds."""
    fleet = sorted(set(fleet) | {partner_id})
    out = {"ts": [], "builds": [], "success_rate": [], "fleet_builds": [], "fleet_success_rate": []}
    for ts, by_partner in buckets:
        builds, rates = [], []
        for pid in fleet:
            c = by_partner.get(pid, {})
            builds.append(sum(c.values()))
            completed = c.get("success", 0) + c.get("failed", 0)
            if completed:
                rates.append(c.get("success", 0) / completed)
        own = by_partner.get(partner_id, {})
        completed = own.get("success", 0) + own.get("failed", 0)
        out["ts"].append(ts)
        out["builds"].append(int(sum(own.values())))
        out["success_rate"].append(own.get("success", 0) / completed if completed else None)
        out["fleet_builds"].append(_quartiles(builds))
        out["fleet_success_rate"].append(_quartiles(rates))
    return out


def _quartiles(values: list[float]) -> tuple[float, float, float] | None:
    """(25th percentile, median, 75th percentile), linear between order statistics."""
    if not values:
        return None
    ordered = sorted(values)

    def q(p: float) -> float:
        pos = p * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return q(0.25), q(0.5), q(0.75)


def burn_down(*, day_builds: Sequence[tuple[float, int]], quota: int | None, pace_per_day: float, now: float,
              month_start: float, month_end: float) -> dict:
    """The month's quota burn-down: quota left at the end of each day so far (the last point: now),
    and the projection from now at `pace_per_day` until the month ends or the quota runs out.
    `day_builds`: (day start, finished builds) of this month's days in time order. Without a quota:
    the cumulative builds only (`left` None)."""
    used, actual = 0, [(month_start, 0)]
    for start, count in day_builds:
        used += int(count)
        actual.append((min(start + DAY_S, now), used))
    left = [(ts, max(0, quota - n)) for ts, n in actual] if quota else None
    projection: list[tuple[float, float]] = []
    if quota and used < quota:
        projection = [(now, float(quota - used))]
        if pace_per_day > 0:
            out_at = now + (quota - used) / pace_per_day * DAY_S
            end = min(out_at, month_end)
            projection.append((end, max(0.0, quota - used - pace_per_day * (end - now) / DAY_S)))
        else:
            projection.append((month_end, float(quota - used)))
    return {"used": [(ts, n) for ts, n in actual], "left": left, "projection": projection, "quota": quota,
            "month_start": month_start, "month_end": month_end}
