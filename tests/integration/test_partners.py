"""Partner success through the real API on a real store: quota use, pace and projected exhaustion,
churn risk and its reasons, last build, the partners table — checked against the ingested events —
and the access boundary (a partner manager sees only their partners)."""
from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import pytest

from services.scope import system_scope
from tests.conftest import sign_in
from tests.integration.test_intelligence import DAY, HOUR, PASSWORD, api, build_events, ingest

QUOTAS = {"acme-bank": 1000, "zenith-pay": 60, "orbit-wallet": 5000, "nova-fin": 500}
# builds per day in the last 7 days / in the 27 days before them
PACE = {"acme-bank": (10, 10), "zenith-pay": (20, 20), "orbit-wallet": (0.5, 30), "nova-fin": (0, 0)}


def _history(now: float) -> tuple[list[dict], dict[str, list[float]]]:
    rng = random.Random(23)
    events, finished = [], {pid: [] for pid in QUOTAS}
    for pid, quota in QUOTAS.items():
        events.append({"id": f"p-{pid}", "type": "partner.upserted", "ts": now - 40 * DAY, "partner_id": pid,
                       "name": pid.title(), "tier": "pro", "monthly_build_quota": quota, "status": "active"})
        recent, before = PACE[pid]
        for days_back, per_day in ((range(1, 8), recent), (range(8, 35), before)):
            for d in days_back:
                count = int(per_day) if per_day >= 1 else (1 if d == 3 and per_day else 0)
                for i in range(count):
                    # inside the first 22 hours of the day slot: clear of the windows' on-the-hour edges
                    ts = now - d * DAY + (i + 0.5) * ((DAY - 2 * HOUR) / max(count, 1))
                    if ts >= now - 60:
                        continue
                    bid = f"{pid}-{d}-{i}"
                    events += build_events(rng, bid, pid, ts, status="success", build_type="release")
                    finished[pid].append(ts)
    # a downgrade of nova-fin ten days ago (and no builds): medium risk for the downgrade alone
    events.append({"id": "p-nova-fin-2", "type": "partner.upserted", "ts": now - 10 * DAY, "partner_id": "nova-fin",
                   "name": "Nova-Fin", "tier": "basic", "monthly_build_quota": 500, "status": "active"})
    return events, finished


def _expected_quota(finished: list[float], quota: int, now: float) -> dict:
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    month_start = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc).timestamp()
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    month_end = datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
    this_month = sorted(ts for ts in finished if ts >= month_start)
    pace = sum(1 for ts in finished if ts >= now // HOUR * HOUR - 7 * DAY) / 7  # the window starts on an hour
    if len(this_month) >= quota:
        return {"used": len(this_month), "pace": pace, "exhausted": True, "at": this_month[quota - 1]}
    at = now + (quota - len(this_month)) / pace * DAY if pace else None
    return {"used": len(this_month), "pace": pace, "exhausted": False, "at": at if at and at < month_end else None}


@pytest.fixture
def partner_world(login_server):
    now = time.time()
    events, finished = _history(now)
    ingest(login_server.services, events)
    login_server.services.users.add("pat", "partner_manager", ["acme-bank", "nova-fin"], PASSWORD)
    login_server.services.users.add("ada", "admin", [], PASSWORD)
    return now, finished


def _iso(ts: float) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_partner_detail_carries_quota_projection_and_churn_risk(login_server, partner_world):
    now, finished = partner_world
    ada = sign_in(login_server.url, "ada", PASSWORD)
    for pid, quota in QUOTAS.items():
        body = api(login_server, f"/api/v1/partners/{pid}", ada).json()
        want = _expected_quota(finished[pid], quota, now)
        assert body["quota_used"] == want["used"], pid
        assert body["quota_pace_per_day"] == pytest.approx(want["pace"]), pid
        assert body["quota_exhausted"] is want["exhausted"], pid
        if want["at"] is None:
            assert body["quota_projected_exhaustion_at"] is None, pid
        else:  # dated from the rollups: the projection exactly, an exhaustion within its day
            assert _iso(body["quota_projected_exhaustion_at"]) == pytest.approx(want["at"], abs=DAY if want["exhausted"]
                                                                               else 30), pid
            assert body["quota_projected_exhaustion_at"].endswith("Z")
        if finished[pid]:  # the hour of the last build
            assert 0 <= _iso(body["last_build_at"]) - max(finished[pid]) <= HOUR, pid
        else:
            assert body["last_build_at"] is None
        risk = body["churn_risk"]
        assert set(risk) >= {"score", "level", "reasons"} and 0 <= risk["score"] <= 1 and risk["reasons"]
        assert [h["change"] for h in body["history"]][0] == "created"
    steady = api(login_server, "/api/v1/partners/acme-bank", ada).json()["churn_risk"]
    assert steady["level"] == "low"
    fallen = api(login_server, "/api/v1/partners/orbit-wallet", ada).json()["churn_risk"]
    # 1 build in the last 7 days against 30 a day on 27 of the 28 days before: 202.5 a week
    assert fallen["level"] == "high" and fallen["reasons"][0] == \
        "builds fell 100 % in the last 7 days (1 against 202 a week before)"
    nova = api(login_server, "/api/v1/partners/nova-fin", ada).json()
    assert nova["churn_risk"]["level"] == "medium" and nova["tier"] == "basic"
    assert nova["churn_risk"]["reasons"][0].startswith("downgraded from pro to basic on ")
    assert [h["change"] for h in nova["history"]] == ["created", "downgrade"]


def test_partner_manager_sees_only_their_partners(login_server, partner_world):
    pat = sign_in(login_server.url, "pat", PASSWORD)
    assert api(login_server, "/api/v1/partners/acme-bank", pat).status_code == 200
    for other in ("zenith-pay", "orbit-wallet", "no-such-partner"):
        answer = api(login_server, f"/api/v1/partners/{other}", pat)
        assert answer.status_code == 404 and answer.json()["field"] == "partner_id"
        assert "zenith" not in answer.text.replace(other, "")
    listed = api(login_server, "/api/v1/partners", pat).json()["partners"]
    assert sorted(p["partner_id"] for p in listed) == ["acme-bank", "nova-fin"]
    assert all("quota_used" in p and "monthly_build_quota" in p for p in listed)
    assert api(login_server, "/api/v1/partners/Bad!", pat).status_code == 400


def test_partners_table_counts_equal_the_ingested_builds(login_server, partner_world):
    now, finished = partner_world
    services = login_server.services
    start = now - 14 * DAY
    rows = {r["partner_id"]: r for r in services.partners.table(system_scope(start, now))}
    for pid in QUOTAS:
        exact = sum(1 for ts in finished[pid] if start <= ts < now)
        assert abs(rows[pid]["builds"] - exact) <= (1 if exact else 0), pid  # the cover's edge minute
        assert rows[pid]["success_rate"] == (1.0 if exact else None)
    assert rows["orbit-wallet"]["churn_level"] == "high"
    table = services.partners.table(system_scope(start, now, ["acme-bank"]))
    assert [r["partner_id"] for r in table] == ["acme-bank"]
    subscriptions = services.partners.subscriptions(system_scope(now - 40 * DAY, now))
    assert sum(len(m["downgrades"]) for m in subscriptions["months"]) == 1
    assert subscriptions["tiers"]["basic"][-1] == 1 and subscriptions["tiers"]["pro"][-1] == 3


def test_one_partner_profile_against_the_fleet_equals_the_ingested_builds(login_server, partner_world):
    from services.analytics.partners import median

    now, finished = partner_world
    services = login_server.services
    start = now - 14 * DAY
    fleet = system_scope(start, now)
    profile = services.partners.profile(fleet, "acme-bank")
    exact = {pid: sum(1 for ts in finished[pid] if start <= ts < now) for pid in QUOTAS}
    assert abs(profile["partner"]["builds"] - exact["acme-bank"]) <= 1
    standing = profile["standing"]["builds"]
    assert standing["of"] == 4 and standing["median"] == pytest.approx(median(exact.values()), abs=1)
    assert standing["rank"] == 1 + sum(1 for pid, n in exact.items() if n > exact["acme-bank"])
    # per day: the partner's count and the fleet's median of the per-partner counts
    comparison = profile["comparison"]
    assert comparison["step_s"] == DAY
    for ts, builds, quartiles in zip(comparison["ts"], comparison["builds"], comparison["fleet_builds"]):
        per = {pid: sum(1 for t in finished[pid] if ts <= t < ts + DAY) for pid in QUOTAS}
        assert builds == per["acme-bank"], ts
        assert quartiles[1] == pytest.approx(median(per.values())), ts
    # the burn-down ends at this month's use, and the projection starts from what is left
    burn = profile["burn_down"]
    want = _expected_quota(finished["acme-bank"], QUOTAS["acme-bank"], now)
    assert burn["used"][-1][1] == want["used"] and burn["left"][-1][1] == QUOTAS["acme-bank"] - want["used"]
    assert burn["projection"][0] == (pytest.approx(now, abs=60), QUOTAS["acme-bank"] - want["used"])
    assert [h["change"] for h in profile["history"]] == ["created"]
    assert sum(v for row in profile["usage"] for v in row if v) > 0


def test_one_partner_profile_compares_only_with_partners_the_viewer_may_see(login_server, partner_world):
    from services.scope import Principal, scope_for

    now, _ = partner_world
    pat = Principal(name="pat", role="partner_manager", partners=frozenset({"acme-bank", "nova-fin"}))
    fleet = scope_for(pat, requested=[], start=now - 7 * DAY, end=now, now=now, explicit="drop")
    services = login_server.services
    profile = services.partners.profile(fleet, "acme-bank")
    assert profile["fleet_size"] == 2 and profile["standing"]["builds"]["of"] == 2
    for quartiles in profile["comparison"]["fleet_builds"]:
        assert quartiles[2] <= 12  # acme-bank builds ~10 a UTC day, nova-fin none: zenith-pay's 20 never show
    assert services.partners.profile(fleet, "zenith-pay") is None
    assert services.partners.profile(fleet, "no-such-partner") is None
