"""Notification bodies (Alertmanager webhook v4, Slack, Alertmanager API v2) and the idempotency key."""
import json
from datetime import datetime

import pytest

from services.alerting.notify import (ZERO_TIME, alertmanager_alerts, notification_id, rfc3339, slack_body,
                                      webhook_body)
from services.alerting.routes import Receiver
from services.alerting.rules import parse_rules
from services.alerting.state import acknowledge, escalate, step

T0 = 1_796_117_400.0  # 2026-12-01T09:30:00Z
EXTERNAL = "https://analytics.example"
RULE = parse_rules({
    "receivers": [{"name": "ops", "webhook_url": "http://127.0.0.1:9/hook", "max_alerts": 2}],
    "route": {"receiver": "ops"},
    "rules": [{"name": "LowSuccessRate", "metric": "success_rate", "window": "30m", "op": "<", "threshold": 0.9,
               "per_partner": True, "labels": {"team": "builds"}, "keep_firing_for": "0s",
               "summary": "Success rate {{ value }} for {{ partner_id }}",
               "description": "Below {{ threshold }}", "escalate": [{"after": "5m", "severity": "critical"}]}],
}).rules[0]
OPS = Receiver(name="ops", webhook_url="http://127.0.0.1:9/hook", max_alerts=2)
KEY = '{}:{alertname="LowSuccessRate"}'
GROUP = {"alertname": "LowSuccessRate"}


def alert(partner, value=0.5, at=T0):
    state, _ = step(RULE, None, True, value, at, partner_id=partner)
    return state


def resolved(state, at):
    state, changes = step(RULE, state, False, 0.99, at)
    assert changes[0].kind == "resolved"
    return state


def test_webhook_body_is_alertmanager_v4():
    acme, ivory = alert("acme-bank"), alert("ivory-remit", 0.6, T0 + 60)
    body = webhook_body(OPS, KEY, GROUP, [ivory, acme], EXTERNAL)
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert (body["version"], body["groupKey"], body["status"], body["receiver"]) == ("4", KEY, "firing", "ops")
    assert body["groupLabels"] == GROUP and body["externalURL"] == EXTERNAL and body["truncatedAlerts"] == 0
    assert body["commonLabels"] == {"alertname": "LowSuccessRate", "severity": "warning", "team": "builds"}
    assert body["commonAnnotations"] == {"description": "Below 90 %"}  # the summaries differ
    first = body["alerts"][0]
    assert set(first) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert [a["labels"]["partner_id"] for a in body["alerts"]] == ["acme-bank", "ivory-remit"]  # by firing time
    assert first["startsAt"] == "2026-12-01T09:30:00Z" and first["endsAt"] == ZERO_TIME
    assert first["fingerprint"] == acme.id and first["generatorURL"] == f"{EXTERNAL}/alerts?alert={acme.id}"
    assert first["annotations"]["summary"] == "Success rate 50 % for acme-bank"
    json.dumps(body)  # JSON-able as it is


def test_webhook_status_resolved_only_when_nothing_fires_and_endsat_is_the_resolution():
    acme = resolved(alert("acme-bank"), T0 + 600.25)
    ivory = alert("ivory-remit")
    assert webhook_body(OPS, KEY, GROUP, [acme, ivory], EXTERNAL)["status"] == "firing"
    body = webhook_body(OPS, KEY, GROUP, [acme], EXTERNAL)
    assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2026-12-01T09:40:00.250Z"
    assert body["commonAnnotations"] == {"description": "Below 90 %", "summary": "Success rate 50 % for acme-bank"}


def test_max_alerts_truncates_and_pending_alerts_are_left_out():
    alerts = [alert(p, at=T0 + i) for i, p in enumerate(["a1", "a2", "a3", "a4"])]
    pending_rule = RULE.model_copy(update={"for_s": 600})
    pending, _ = step(pending_rule, None, True, 0.5, T0, partner_id="p1")
    body = webhook_body(OPS, KEY, GROUP, [*alerts, pending], EXTERNAL)
    assert body["truncatedAlerts"] == 2 and [a["labels"]["partner_id"] for a in body["alerts"]] == ["a1", "a2"]
    assert len(webhook_body("ops", KEY, GROUP, alerts, EXTERNAL)["alerts"]) == 4  # a name: no limit


def test_notifications_carry_the_escalated_severity_and_keep_the_fingerprint():
    state, _ = escalate(RULE, alert("acme-bank"), T0 + 300)
    item = webhook_body(OPS, KEY, GROUP, [state], EXTERNAL)["alerts"][0]
    assert item["labels"]["severity"] == "critical" and item["fingerprint"] == alert("acme-bank").id


def test_slack_body_is_readable_and_escaped():
    weird = alert("acme-bank")
    weird = weird.__class__(**{**weird.to_dict(), "annotations": {"summary": "p95 <10 min> & more"}})
    body = slack_body(OPS, KEY, GROUP, [weird, alert("ivory-remit")], EXTERNAL)
    assert body["text"] == "[FIRING:2] LowSuccessRate"
    attachment = body["attachments"][0]
    assert attachment["color"] == "warning" and attachment["title_link"] == f"{EXTERNAL}/alerts"
    lines = attachment["text"].splitlines()
    assert "• *warning* · partner acme-bank: p95 &lt;10 min&gt; &amp; more (firing since " \
           "2026-12-01T09:30:00Z)" in lines and len(lines) == 2
    done = slack_body(OPS, KEY, GROUP, [resolved(alert("acme-bank"), T0 + 60)], EXTERNAL)
    assert done["text"] == "[RESOLVED] LowSuccessRate" and done["attachments"][0]["color"] == "good"
    many = slack_body(OPS, KEY, GROUP, [alert(f"p{i}") for i in range(25)], EXTERNAL)
    assert many["attachments"][0]["text"].splitlines()[-1] == "… and 5 more"


def test_alertmanager_api_body_is_what_prometheus_sends():
    firing, gone = alert("acme-bank"), resolved(alert("ivory-remit"), T0 + 120)
    body = alertmanager_alerts([gone, firing], EXTERNAL)
    assert [set(a) for a in body] == [{"labels", "annotations", "startsAt", "generatorURL"},
                                      {"labels", "annotations", "startsAt", "generatorURL", "endsAt"}]
    assert body[1]["endsAt"] == "2026-12-01T09:32:00Z"
    valid = alertmanager_alerts([firing], EXTERNAL, now=T0 + 60, valid_for_s=240)
    assert valid[0]["endsAt"] == "2026-12-01T09:35:00Z"  # in the future: re-send before it passes


def test_notification_id_is_stable_and_differs_per_state_change():
    acme, ivory = alert("acme-bank"), alert("ivory-remit")
    key = notification_id(OPS, KEY, "firing", [acme, ivory])
    assert key == notification_id("ops", KEY, "firing", [ivory, acme])  # order and receiver form do not matter
    restored = [acme.__class__.from_dict(json.loads(json.dumps(a.to_dict()))) for a in (acme, ivory)]
    assert key == notification_id(OPS, KEY, "firing", restored)  # a restarted process builds the same key
    acked, _ = acknowledge(acme, "ada", "", T0 + 10)
    assert key == notification_id(OPS, KEY, "firing", [acked, ivory])  # acknowledging notifies nothing
    others = {
        "another receiver": notification_id("oncall", KEY, "firing", [acme, ivory]),
        "another group": notification_id(OPS, KEY + "x", "firing", [acme, ivory]),
        "one alert fewer": notification_id(OPS, KEY, "firing", [acme]),
        "one resolved": notification_id(OPS, KEY, "firing", [acme, resolved(ivory, T0 + 60)]),
        "escalated": notification_id(OPS, KEY, "firing", [escalate(RULE, acme, T0 + 300)[0], ivory]),
        "a new alert of the same partner": notification_id(OPS, KEY, "firing", [alert("acme-bank", at=T0 + 1), ivory]),
        "a repeat": notification_id(OPS, KEY, "firing", [acme, ivory], repeat=1),
    }
    assert key not in others.values() and len(set(others.values())) == len(others)
    assert len(key) == 32 and key.isalnum()


@pytest.mark.parametrize("ts, text", [(T0, "2026-12-01T09:30:00Z"), (T0 + 0.5, "2026-12-01T09:30:00.500Z"),
                                      (T0 + 1.9996, "2026-12-01T09:30:02Z"), (None, ZERO_TIME)])
def test_rfc3339(ts, text):
    assert rfc3339(ts) == text
    if ts is not None:
        assert abs(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - ts) < 0.001
