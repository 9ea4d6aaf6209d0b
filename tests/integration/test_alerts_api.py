"""The alerts API against a real server (login mode, real Valkey): listing and its filters,
acknowledgements, silences, the rules in force — and the access rules: a partner manager never
sees, acknowledges or silences another partner's alerts or the deployment's, every bad parameter
is a 4xx naming it, and writes from a session carry the CSRF token. (Their operations are fuzzed, as
an admin with a personal token, by test_fuzz.py; their limits are listed in test_limits.py.)"""
from __future__ import annotations

import re
import time

import orjson
import pytest
import redis
import requests

from tests.alert_states import alert_state, seed
from tests.conftest import sign_in, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
A, B = "alpha-co", "bravo-corp"
RULE = "LuluPayPartnerBuildSuccessRateLow"


@pytest.fixture
def world(login_server):
    """Users of every role and five alerts: A critical firing, B critical firing, the deployment's
    warning firing, A warning pending, A resolved."""
    services = login_server.services
    for name, role, partners in (("ada", "admin", []), ("sam", "staff", []), ("pat", "partner_manager", [A])):
        services.users.add(name, role, partners, PASSWORD)
    now = time.time()
    login_server.alerts = seed(services, [
        alert_state("PartnerFailures", "critical", "firing", partner=A, value=25, threshold=20, started_at=now - 900),
        alert_state("PartnerFailures", "critical", "firing", partner=B, value=31, threshold=20, started_at=now - 1200,
                    summary="Bravo Zq7 Secret failures"),
        alert_state("LuluPayDiskFull", "warning", "firing", value=93, threshold=90, started_at=now - 3000),
        alert_state(RULE, "warning", "pending", partner=A, value=0.8, started_at=now - 60),
        alert_state("PartnerQuota", "warning", "resolved", partner=A, value=0.97, started_at=now - 7200),
    ])
    login_server.ids = {(a.rule, a.partner_id, a.state): a.id for a in login_server.alerts.values()}
    return login_server


def _csrf(session: requests.Session, url: str) -> str:
    page = session.get(url + "/_dash-layout", headers={"Referer": url + "/alerts"}, timeout=20)
    found = re.search(r'"name":"csrf_token"[^}]*"value":"([^"]+)"|"value":"([^"]+)"[^}]*"name":"csrf_token"', page.text)
    return next(t for t in found.groups() if t)


def _user(world, name: str) -> requests.Session:
    session = sign_in(world.url, name, PASSWORD)
    session.headers["X-CSRFToken"] = _csrf(session, world.url)
    return session


def _ids(answer) -> list[tuple]:
    assert answer.status_code == 200, answer.text
    return [(a["rule"], a["partner_id"], a["state"]) for a in answer.json()["alerts"]]


def test_listing_and_its_filters(world):
    ada = _user(world, "ada")
    url = world.url + "/api/v1/alerts"
    assert _ids(ada.get(url)) == [("PartnerFailures", B, "firing"), ("PartnerFailures", A, "firing"),
                                  ("LuluPayDiskFull", None, "firing"), (RULE, A, "pending")]
    assert _ids(ada.get(url + "?state=firing&severity=warning")) == [("LuluPayDiskFull", None, "firing")]
    assert _ids(ada.get(url + "?state=pending")) == [(RULE, A, "pending")]
    assert _ids(ada.get(url + "?state=resolved")) == [("PartnerQuota", A, "resolved")]
    assert len(_ids(ada.get(url + "?state=all"))) == 5
    assert _ids(ada.get(url + "?severity=critical,info")) == _ids(ada.get(url + "?severity=critical&severity=info"))
    assert _ids(ada.get(f"{url}?partner={A}&state=all")) == [  # critical first, then the oldest
        ("PartnerFailures", A, "firing"), ("PartnerQuota", A, "resolved"), (RULE, A, "pending")]
    row = ada.get(url + "?severity=critical").json()["alerts"][1]
    assert set(row) >= {"id", "rule", "severity", "state", "partner_id", "labels", "value", "threshold", "summary",
                        "started_at", "firing_at", "resolved_at", "acknowledged", "silenced_by", "escalation_level"}
    assert row["labels"] == {"alertname": "PartnerFailures", "severity": "critical", "partner_id": A}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["started_at"]) and row["resolved_at"] is None
    assert row["value"] == 25 and row["silenced_by"] == [] and row["acknowledged"] is False
    assert _ids(_user(world, "sam").get(url)) == _ids(ada.get(url))  # staff sees every partner too


def test_a_partner_manager_sees_only_their_partners_alerts(world):
    pat = _user(world, "pat")
    everything = pat.get(world.url + "/api/v1/alerts?state=all")
    assert _ids(everything) == [("PartnerFailures", A, "firing"), ("PartnerQuota", A, "resolved"), (RULE, A, "pending")]
    assert B not in everything.text and "Bravo" not in everything.text and "LuluPayDiskFull" not in everything.text
    refused = pat.get(f"{world.url}/api/v1/alerts?partner={B}")
    assert refused.status_code == 403 and refused.json()["field"] == "partner"


BAD_PARAMETERS = [
    ("/api/v1/alerts?state=open", "state"), ("/api/v1/alerts?state=ALL", "state"),
    ("/api/v1/alerts?severity=fatal", "severity"), ("/api/v1/alerts?severity=critical,,bad", "severity"),
    ("/api/v1/alerts?partner=Not%20An%20Id", "partner"), ("/api/v1/alerts?partner=*", "partner"),
    ("/api/v1/silences?state=firing", "state"), ("/api/v1/silences?partner=%2A", "partner"),
    ("/api/v1/alert-rules?partner=a%2Fb", "partner"),
]


def test_bad_parameters_are_400_naming_the_field(world):
    ada = _user(world, "ada")
    for path, field in BAD_PARAMETERS:
        answer = ada.get(world.url + path)
        assert answer.status_code == 400 and answer.json()["field"] == field, (path, answer.text)


def test_acknowledge(world):
    ada, pat = _user(world, "ada"), _user(world, "pat")
    ack = lambda session, alert_id, **body: session.post(  # noqa: E731
        f"{world.url}/api/v1/alerts/{alert_id}/ack", json=body or None, timeout=10)
    listener = redis.Redis.from_url(world.services.redis_url).pubsub()
    listener.subscribe(world.services.store.keys.realtime_channel())
    a_firing = world.ids[("PartnerFailures", A, "firing")]
    done = ack(ada, a_firing, comment="on it")
    assert done.status_code == 200, done.text
    row = done.json()
    assert row["acknowledged"] and row["ack_by"] == "ada" and row["ack_comment"] == "on it" and row["state"] == "firing"
    assert world.services.alert_store.alert(a_firing).acknowledged
    [change] = [c for c in world.services.alerts.changes(_all_scope(world)) if c["source"] == "ack"]
    assert change["alert_id"] == a_firing and change["acknowledged"] and change["state"] == "firing"

    def published():
        message = listener.get_message(timeout=0.1)
        while message is not None:
            if message["type"] == "message":
                return orjson.loads(message["data"])
            message = listener.get_message(timeout=0.1)
        return None
    [message] = wait_until(published, message="the acknowledgement on the live channel")
    assert message["stream"] == "alerts" and message["data"]["change"] == "acknowledged"
    assert message["data"]["partner_id"] == A and message["data"]["ack_by"] == "ada"
    listener.close()

    again = ack(ada, a_firing, comment="still")
    assert again.status_code == 200 and again.json()["ack_comment"] == "on it"  # the first one stays
    assert ack(pat, world.ids[(RULE, A, "pending")]).json()["ack_by"] == "pat"  # no body: no comment

    unknown = ack(pat, "0123456789abcdef")
    for hidden in (world.ids[("PartnerFailures", B, "firing")], world.ids[("LuluPayDiskFull", None, "firing")]):
        refused = ack(pat, hidden)
        assert (refused.status_code, refused.json()) == (404, unknown.json()) == (404, {"error": "no such alert",
                                                                                        "field": "alert_id"})
    assert not world.services.alert_store.alert(world.ids[("PartnerFailures", B, "firing")]).acknowledged
    resolved = ack(ada, world.ids[("PartnerQuota", A, "resolved")])
    assert resolved.status_code == 409 and resolved.json()["field"] == "state"
    assert ack(ada, "x" * 65).status_code == 404


def _all_scope(world):
    from services.scope import system_scope
    now = time.time()
    return system_scope(now - 86400, now + 60)


BAD_ACKNOWLEDGEMENTS = [
    (b'{"comment": 5}', "application/json", 400, "comment"),
    (b'{"comment": "' + b"x" * 1025 + b'"}', "application/json", 400, "comment"),
    (b'{"note": "x"}', "application/json", 400, "note"),
    (b"[1]", "application/json", 400, "body"),
    (b"{", "application/json", 400, "body"),
    (b'{"comment": "a\\u0000b"}', "application/json", 400, "comment"),
    (b"comment=x", "application/x-www-form-urlencoded", 415, "Content-Type"),
]


def test_bad_acknowledgements_name_the_field(world):
    alert_id = world.ids[("PartnerFailures", A, "firing")]
    ada = _user(world, "ada")
    for body, content_type, status, field in BAD_ACKNOWLEDGEMENTS:
        answer = ada.post(f"{world.url}/api/v1/alerts/{alert_id}/ack", data=body,
                          headers={"Content-Type": content_type}, timeout=10)
        assert (answer.status_code, answer.json()["field"]) == (status, field), (body[:40], answer.text)
    assert not world.services.alert_store.alert(alert_id).acknowledged


def test_writes_need_the_session_csrf_token_or_a_personal_token(world):
    alert_id = world.ids[("PartnerFailures", A, "firing")]
    url = f"{world.url}/api/v1/alerts/{alert_id}/ack"
    assert requests.post(url, json={}, timeout=10).status_code == 401
    session = sign_in(world.url, "ada", PASSWORD)
    for answer in (session.post(url, json={}, timeout=10), session.post(world.url + "/api/v1/silences", json={}),
                   session.delete(world.url + "/api/v1/silences/abc", timeout=10)):
        assert answer.status_code == 400 and answer.json()["field"] == "csrf_token", answer.text
    assert not world.services.alert_store.alert(alert_id).acknowledged
    token = world.services.users.new_token("ada")
    answer = requests.post(url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["ack_by"] == "ada"


def _silence(session, world, matchers, **fields):
    body = {"matchers": matchers, "ends_at": fields.pop("ends_at", time.time() + 3600), **fields}
    return session.post(world.url + "/api/v1/silences", json=body, timeout=10)


def test_silences_create_list_match_and_expire(world):
    ada = _user(world, "ada")
    made = _silence(ada, world, [{"name": "alertname", "value": "PartnerFailures"},
                                 {"name": "partner_id", "value": "alpha.*", "is_regex": True}],
                    starts_at=time.time() - 60, ends_at="2999-01-01T00:00:00Z", comment="deploy")
    assert made.status_code == 400 and made.json()["field"] == "ends_at"  # more than 90 days
    made = _silence(ada, world, [{"name": "alertname", "value": "PartnerFailures"},
                                 {"name": "partner_id", "value": "alpha.*", "is_regex": True}], comment="deploy")
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["state"] == "active" and silence["author"] == "ada" and silence["comment"] == "deploy"
    assert re.fullmatch(r"[0-9a-f]{32}", silence["id"])
    alerts = {a["partner_id"]: a for a in ada.get(world.url + "/api/v1/alerts?severity=critical").json()["alerts"]}
    assert alerts[A]["silenced_by"] == [silence["id"]] and alerts[B]["silenced_by"] == []
    later = _silence(ada, world, [{"name": "severity", "value": "info"}], starts_at=time.time() + 600,
                     ends_at=time.time() + 1200)
    assert later.json()["state"] == "pending"
    listed = ada.get(world.url + "/api/v1/silences").json()["silences"]
    assert [s["state"] for s in listed] == ["active", "pending"]
    ended = ada.delete(f"{world.url}/api/v1/silences/{silence['id']}", timeout=10)
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert [s["id"] for s in ada.get(world.url + "/api/v1/silences?state=expired").json()["silences"]] == [silence["id"]]
    assert ada.get(world.url + "/api/v1/alerts?severity=critical").json()["alerts"][1]["silenced_by"] == []
    assert ada.delete(world.url + "/api/v1/silences/nope", timeout=10).status_code == 404


def test_a_partner_manager_silences_only_their_partners(world):
    pat, ada = _user(world, "pat"), _user(world, "ada")
    for matchers in ([{"name": "alertname", "value": "PartnerFailures"}],
                     [{"name": "partner_id", "value": B}],
                     [{"name": "partner_id", "value": A, "is_regex": True}],
                     [{"name": "alertname", "value": "PartnerFailures"},
                      {"name": "partner_id", "value": A, "is_equal": False}]):
        refused = _silence(pat, world, matchers)
        assert refused.status_code == 403 and refused.json()["field"] == "matchers", matchers
    mine = _silence(pat, world, [{"name": "partner_id", "value": A}, {"name": "alertname", "value": "PartnerFailures"}])
    assert mine.status_code == 201 and mine.json()["author"] == "pat"
    theirs = _silence(ada, world, [{"name": "partner_id", "value": B}]).json()
    global_one = _silence(ada, world, [{"name": "alertname", "value": "PartnerFailures"}]).json()
    assert [s["id"] for s in pat.get(world.url + "/api/v1/silences").json()["silences"]] == [mine.json()["id"]]
    assert {s["id"] for s in ada.get(world.url + "/api/v1/silences").json()["silences"]} == {
        mine.json()["id"], theirs["id"], global_one["id"]}
    assert [s["id"] for s in ada.get(f"{world.url}/api/v1/silences?partner={B}").json()["silences"]] == [theirs["id"]]
    # the deployment-wide silence matches pat's alert: it is silenced, by nothing pat may see
    row = next(a for a in pat.get(world.url + "/api/v1/alerts").json()["alerts"] if a["rule"] == "PartnerFailures")
    assert row["silenced"] and row["silenced_by"] == [mine.json()["id"]]
    assert B not in pat.get(world.url + "/api/v1/silences?state=all").text
    for other in (theirs["id"], global_one["id"]):
        assert pat.delete(f"{world.url}/api/v1/silences/{other}", timeout=10).json() == {
            "error": "no such silence", "field": "silence_id"}
    assert world.services.alert_store.silence(theirs["id"]).state(time.time()) == "active"


BAD_SILENCES = [
    ({"ends_at": "+1h"}, "matchers"),
    ({"matchers": [], "ends_at": "+1h"}, "matchers"),
    ({"matchers": "alertname=x", "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "1bad", "value": "x"}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "(x+)+", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "[", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": ".*", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "x", "op": "="}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "x"}] * 33, "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "x"}]}, "ends_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "tomorrow"}, "ends_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": 1000}, "ends_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": True}, "ends_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "starts_at": "soon"}, "starts_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "comment": ["x"]}, "comment"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "comment": False}, "comment"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "comment": "x" * 1025}, "comment"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "createdBy": "me"}, "createdBy"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "starts_at": "2900-01-01T00:00:00Z"}, "starts_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "starts_at": 1000}, "starts_at"),
    ({"matchers": [{"name": "a", "value": "x"}], "ends_at": "+1h", "comment": "\x00"}, "comment"),
    ({"matchers": [{"name": "a", "value": "(x)\\1", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "(?i)x", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
    ({"matchers": [{"name": "a", "value": "x(?!y)", "is_regex": True}], "ends_at": "+1h"}, "matchers"),
]  # "+1h": an hour from now


def test_bad_silences_are_400_naming_the_field(world):
    ada = _user(world, "ada")
    for body, field in BAD_SILENCES:
        if body.get("ends_at") == "+1h":
            body = {**body, "ends_at": time.time() + 3600}
        answer = ada.post(world.url + "/api/v1/silences", json=body, timeout=10)
        assert (answer.status_code, answer.json()["field"]) == (400, field), (body, answer.text)
    assert world.services.alert_store.silences() == []


def test_silence_bodies_must_be_json_objects(world):
    ada = _user(world, "ada")
    for data, content_type, status, field in ((b"", "application/json", 400, "body"), (b"[]", "application/json", 400,
                                              "body"), (b"{]", "application/json", 400, "body"),
                                              (b"matchers=x", "text/plain", 415, "Content-Type")):
        answer = ada.post(world.url + "/api/v1/silences", data=data, headers={"Content-Type": content_type})
        assert (answer.status_code, answer.json()["field"]) == (status, field)


def test_rules_in_force_with_scoped_evaluations(world):
    now = time.time()
    values = [{"partner_id": B, "value": 0.5, "condition": True}, {"partner_id": A, "value": 0.8, "condition": True}]
    world.services.alert_store.save_evaluations({
        f"{RULE}|warning": {"rule": RULE, "evaluated_at": now - 5, "values": values, "error": None,
                            "values_total": 2, "conditions_true": 2},
        "LuluPayBuildSuccessRateLow|critical": {"evaluated_at": now - 5, "error": "TimeoutError: at bravo-corp",
                                                "values": [{"partner_id": None, "value": 0.42, "condition": True}]},
    }, keep=[f"{RULE}|warning", "LuluPayBuildSuccessRateLow|critical"])
    ada = _user(world, "ada").get(world.url + "/api/v1/alert-rules").json()
    assert ada["enabled"] and {r["name"] for r in ada["rules"]} >= {RULE, "LuluPayBuildSuccessRateLow"}
    rules = {(r["name"], r["severity"]): r for r in ada["rules"]}
    partner_rule, fleet = rules[(RULE, "warning")], rules[("LuluPayBuildSuccessRateLow", "critical")]
    assert [v["partner_id"] for v in partner_rule["evaluation"]["values"]] == [B, A]
    assert partner_rule["alerts"] == {"pending": 1, "firing": 0} and partner_rule["per_partner"]
    assert fleet["evaluation"]["values"][0]["value"] == 0.42 and fleet["evaluation"]["error"].startswith("Timeout")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fleet["evaluation"]["evaluated_at"])

    answer = _user(world, "pat").get(world.url + "/api/v1/alert-rules")
    pat = {(r["name"], r["severity"]): r for r in answer.json()["rules"]}
    assert pat[(RULE, "warning")]["evaluation"]["values"] == [{"partner_id": A, "value": 0.8, "condition": True}]
    assert pat[(RULE, "warning")]["evaluation"]["conditions_true"] == 1
    fleet = pat[("LuluPayBuildSuccessRateLow", "critical")]["evaluation"]
    assert fleet["values"] == [] and fleet["error"] == "the last evaluation failed"
    assert B not in answer.text and "0.42" not in answer.text
