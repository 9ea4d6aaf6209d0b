"""The alert history on a real store: changes kept per UTC day for the retention window, read back
in order a batch at a time, and scoped (a partner manager sees only their partners' alerts, never
the deployment's own)."""
from __future__ import annotations

import pytest

from services.alerting.history import ALERT_COLUMNS, AlertHistory, alert_row
from services.scope import Principal, scope_for, system_scope

DAY = 86400
NOW = 1_796_000_000.0  # a fixed clock: 2026-11-30


@pytest.fixture
def history(services):
    return AlertHistory(services.store, retention_s=90 * DAY, clock=lambda: NOW)


def test_changes_come_back_in_time_order_across_days_with_their_fields(history):
    history.record(rule="DiskFilling", state="pending", severity="warning", ts=NOW - 2 * DAY, summary="disk 81 %",
                   value=81.0, threshold=80.0)
    history.record(rule="DiskFilling", state="firing", severity="warning", ts=NOW - 2 * DAY + 300,
                   started_at=NOW - 2 * DAY)
    history.record(rule="LowSuccessRate", state="firing", severity="critical", partner_id="acme-bank", ts=NOW - 3600,
                   labels={"team": "payments"})
    history.record(rule="DiskFilling", state="resolved", severity="warning", ts=NOW - 60, started_at=NOW - 2 * DAY,
                   firing_at=NOW - 2 * DAY + 300)
    changes = list(history.changes(system_scope(NOW - 3 * DAY, NOW)))
    assert [(c["rule"], c["state"]) for c in changes] == [("DiskFilling", "pending"), ("DiskFilling", "firing"),
                                                          ("LowSuccessRate", "firing"), ("DiskFilling", "resolved")]
    disk = [c for c in changes if c["rule"] == "DiskFilling"]
    assert len({c["alert_id"] for c in disk}) == 1 and disk[0]["value"] == 81.0 and disk[0]["threshold"] == 80.0
    assert disk[2]["resolved_at"] == NOW - 60 and disk[2]["firing_at"] == NOW - 2 * DAY + 300
    low = changes[2]
    assert low["labels"] == {"alertname": "LowSuccessRate", "severity": "critical", "partner_id": "acme-bank",
                             "team": "payments"}
    row = dict(zip(ALERT_COLUMNS, alert_row(low)))
    assert row["labels"] == "alertname=LowSuccessRate;partner_id=acme-bank;severity=critical;team=payments"
    assert row["acknowledged"] is False and row["firing_at"] == NOW - 3600
    # [from, to): the period's edges cut
    assert [c["state"] for c in history.changes(system_scope(NOW - 2 * DAY + 300, NOW - 60))] == ["firing", "firing"]


def test_a_partner_manager_sees_only_their_partners_alerts_and_never_the_deployments(history):
    history.record(rule="HighCpu", state="firing", severity="warning", ts=NOW - 100)
    history.record(rule="QuotaSoon", state="firing", severity="info", partner_id="acme-bank", ts=NOW - 90)
    history.record(rule="QuotaSoon", state="firing", severity="info", partner_id="zenith-pay", ts=NOW - 80)
    pat = Principal(name="pat", role="partner_manager", partners=frozenset({"acme-bank"}))
    seen = list(history.changes(scope_for(pat, start=NOW - DAY, end=NOW, now=NOW)))
    assert [(c["rule"], c["partner_id"]) for c in seen] == [("QuotaSoon", "acme-bank")]
    staff = list(history.changes(system_scope(NOW - DAY, NOW)))
    assert len(staff) == 3
    # staff who filter to one partner see that partner's alerts only
    assert [c["partner_id"] for c in history.changes(system_scope(NOW - DAY, NOW, ["zenith-pay"]))] == ["zenith-pay"]


def test_days_expire_with_the_retention_and_large_days_are_read_in_batches(history, redis_client, services):
    for i in range(4500):
        history.record(rule="Flappy", state="firing" if i % 2 else "resolved", severity="info", ts=NOW - 3000 + i * 0.5)
    changes = list(history.changes(system_scope(NOW - DAY, NOW)))
    assert len(changes) == 4500 and [c["ts"] for c in changes] == sorted(c["ts"] for c in changes)
    key = services.store.keys.alert_history("20261130")
    day_end = (NOW // DAY + 1) * DAY
    assert redis_client.expiretime(key) == day_end + 90 * DAY  # the day's end plus the retention
    with pytest.raises(ValueError):
        history.record(rule="x", state="open", severity="info")
    with pytest.raises(ValueError):
        history.record(rule="x", state="firing", severity="fatal")


def test_alerts_export_in_every_format_scoped_and_formula_safe(login_server):
    import time

    from tests.conftest import sign_in
    from tests.integration.test_intelligence import PASSWORD, api, export_rows

    services = login_server.services
    now = time.time()
    history = services.alerts
    history.record(rule="HighCpu", state="firing", severity="critical", ts=now - 900, value=93.5, threshold=90.0,
                   summary="=HYPERLINK(\"http://evil.example\")")
    history.record(rule="QuotaSoon", state="pending", severity="info", partner_id="acme-bank", ts=now - 600,
                   value=-3.5, summary="-3 days left")
    history.record(rule="QuotaSoon", state="firing", severity="warning", partner_id="zenith-pay", ts=now - 300)
    history.record(rule="HighCpu", state="resolved", severity="critical", ts=now - 60, started_at=now - 900,
                   firing_at=now - 900)
    services.users.add("pat", "partner_manager", ["acme-bank"], PASSWORD)
    services.users.add("ada", "admin", [], PASSWORD)
    pat, ada = sign_in(login_server.url, "pat", PASSWORD), sign_in(login_server.url, "ada", PASSWORD)
    params = {"from": int(now) - 3600, "to": int(now) + 60}
    by_format = {}
    for fmt in ("csv", "json", "ndjson"):
        answer = api(login_server, f"/api/v1/export/alerts.{fmt}", ada, **params)
        assert answer.status_code == 200 and "lulupay-alerts-" in answer.headers["Content-Disposition"]
        by_format[fmt] = export_rows(fmt, answer.text)
    rows = by_format["json"]
    assert [(r["rule"], r["state"]) for r in rows] == [("HighCpu", "firing"), ("QuotaSoon", "pending"),
                                                       ("QuotaSoon", "firing"), ("HighCpu", "resolved")]
    assert list(rows[0]) == list(ALERT_COLUMNS) and rows[0]["value"] == 93.5 and rows[0]["ts"].endswith("Z")
    assert rows[3]["firing_at"] == rows[0]["ts"] and rows[3]["resolved_at"] == rows[3]["ts"]
    assert [r["change_id"] for r in by_format["ndjson"]] == [r["change_id"] for r in rows]
    csv_rows = by_format["csv"]
    assert [r["change_id"] for r in csv_rows] == [r["change_id"] for r in rows]
    assert csv_rows[0]["summary"].startswith("'=HYPERLINK") and csv_rows[1]["summary"] == "'-3 days left"
    assert csv_rows[1]["value"] == "-3.5"  # a number is never altered
    # a partner manager: only their partner's alert, never the deployment's or another partner's
    mine = export_rows("json", api(login_server, "/api/v1/export/alerts.json", pat, **params).text)
    assert [(r["rule"], r["partner_id"]) for r in mine] == [("QuotaSoon", "acme-bank")]
    assert api(login_server, "/api/v1/export/alerts.csv", pat, partner="zenith-pay", **params).status_code == 403
    assert api(login_server, "/api/v1/export/alerts.csv", ada, **{"from": "yesterday"}).json()["field"] == "from"
    assert api(login_server, "/api/v1/export/alerts.xml", ada, **params).json()["field"] == "format"
