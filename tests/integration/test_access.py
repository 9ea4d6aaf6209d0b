"""The access matrix, built from the app itself: every Flask route and every registered server-side
Dash callback is enumerated at test time. For each: anonymous → refused; a partner manager of
alpha-co → nothing of bravo-corp (its name, ids, messages and numbers are unique strings here).
A route or callback added later without a scope, a rule or a sample value fails here by itself."""
from __future__ import annotations

import json
import time

import orjson
import pytest
import requests
import websocket

from app.auth import PUBLIC_PATHS, PUBLIC_PREFIXES, SELF_CHECKED
from app.guard import PROP_RULES
from services.alerting.silences import Matcher, Silence
from services.alerting.state import fingerprint
from services.realtime import publish
from tests.alert_states import alert_state, seed
from tests.conftest import sign_in, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
A, B = "alpha-co", "bravo-corp"
B_STRINGS = ("bravo-corp", "Bravo Zq7 Secret", "bravo-build-", "9.8.7-bravosecret", "bravo-only-failure", "4321.25")

# Routes anyone may call: health, the login form, the API description, static files; ingest and
# /metrics check their own tokens.
OPEN_ROUTES = {"/healthz", "/readyz", "/login", "/openapi.json", "/_favicon.ico", "/favicon.ico", "/assets/<path:filename>",
               "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>", "/api/v1/events",
               "/metrics"}
B_ALERT = fingerprint({"alertname": "PartnerFailures", "severity": "critical", "partner_id": B})
URL_VALUES = {"alert_id": B_ALERT, "silence_id": "bravo-silence", "partner_id": B, "metric": "builds", "path": "operations", "rest": "v1/nothing", "dataset": "builds", "format": "csv",
              "filename": "app.css", "package_name": "dash", "fingerprinted_path": "x.js"}

# A valid value of every (id, property) a server callback takes, asking for bravo-corp wherever a
# partner can be asked for.
SAMPLE_VALUES = {
    ("url", "search"): f"?partner={B}", ("url", "pathname"): "/operations",
    ("_pages_location", "search"): f"?partner={B}", ("_pages_location", "pathname"): "/operations",
    ("filter-range", "value"): "24h", ("filter-dates", "start_date"): None, ("filter-dates", "end_date"): None,
    ("filter-partners", "value"): [B], ("filter-refresh", "value"): "30s",
    ("filters", "data"): {"range": "24h", "from": None, "to": None, "partners": [B], "refresh": "30s"},
    ("refresh-tick", "n_intervals"): 1, ("theme", "data"): "light", ("ops-asset-csv", "n_clicks"): 1,
    ("builds-forecast-poll", "n_intervals"): 1, ("builds-signature-csv", "n_clicks"): 1,
    ("builds-grid-csv", "n_clicks"): 1, ("partners-risk-csv", "n_clicks"): 1, ("partners-table-csv", "n_clicks"): 1,
    ("assets-table-csv", "n_clicks"): 1, ("capacity-sla-csv", "n_clicks"): 1,
    ("partner-id", "data"): B, ("partner-signature-csv", "n_clicks"): 1, ("partner-failed-csv", "n_clicks"): 1,
    ("partner-asset-csv", "n_clicks"): 1, ("partner-history-csv", "n_clicks"): 1,
    ("builds-grid", "getRowsRequest"): {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}},
    ("builds-grid", "filterModel"): {},
    ("builds-signature-grid", "cellClicked"): None,
    ("alerts-ping", "data"): 1, ("alerts-new-silence", "n_clicks"): 1, ("alerts-ack-cancel", "n_clicks"): 1,
    ("alerts-ack-confirm", "n_clicks"): 1, ("alerts-silence-cancel", "n_clicks"): 1,
    ("alerts-silence-create", "n_clicks"): 1, ("alerts-history-csv", "n_clicks"): 1,
    ("alerts-active-grid", "cellRendererData"): {"value": "silence", "colId": "id", "rowIndex": 0, "rowId": B_ALERT,
                                                 "timestamp": 1},
    ("alerts-silences-grid", "cellRendererData"): {"value": "expire", "colId": "id", "rowIndex": 0,
                                                   "rowId": "bravo-silence", "timestamp": 1},
    ("alerts-result", "data"): {"seq": 1, "action": "silence", "ok": False, "message": "refused"},
    ("alerts-ack-target", "data"): B_ALERT, ("alerts-ack-comment", "value"): "on it",
    ("alerts-silence-matchers", "value"): f'partner_id="{B}"', ("alerts-silence-duration", "value"): "2h",
    ("alerts-silence-comment", "value"): "deploy", ("alerts-history-state", "value"): "firing",
    ("alerts-history-severity", "value"): "critical", ("alerts-history-rule", "value"): "PartnerFailures",
}


def _events(now: float) -> list[dict]:
    events = [
        {"id": "p-a", "type": "partner.upserted", "ts": now - 600, "partner_id": A, "name": "Alpha Co", "tier": "pro",
         "monthly_build_quota": 500, "status": "active"},
        {"id": "p-b", "type": "partner.upserted", "ts": now - 600, "partner_id": B, "name": "Bravo Zq7 Secret",
         "tier": "enterprise", "monthly_build_quota": 900, "status": "active"},
    ]
    for i in range(3):
        for pid, build, version, duration in ((A, f"alpha-build-{i}", "1.0.0", 300.0 + i),
                                              (B, f"bravo-build-{i}", "9.8.7-bravosecret", 4321.25)):
            ts = now - 300 + i
            events.append({"id": f"{build}-s", "type": "build.started", "ts": ts - 5, "partner_id": pid,
                           "build_id": build, "build_type": "release", "app_version": version})
            failed = pid == B and i == 0
            events.append({"id": f"{build}-f", "type": "build.finished", "ts": ts, "partner_id": pid,
                           "build_id": build, "build_type": "release", "status": "failed" if failed else "success",
                           "duration_s": duration, **({"failed_stage": "signing", "error_category": "signing",
                                                       "error_message": "bravo-only-failure"} if failed else {})})
    events.append({"id": "running-b", "type": "build.started", "ts": now - 30, "partner_id": B,
                   "build_id": "bravo-build-running", "build_type": "debug", "app_version": "9.8.7-bravosecret"})
    return events


@pytest.fixture
def world(login_server):
    """alpha-co and bravo-corp with builds, and one user per role."""
    services = login_server.services
    services.ingest.ingest_batch(_events(time.time()))
    services.users.add("ada", "admin", [], PASSWORD)
    services.users.add("sam", "staff", [], PASSWORD)
    services.users.add("pat", "partner_manager", [A], PASSWORD)
    now = time.time()  # an alert and a silence of each partner, and the deployment's own alert
    seed(services, [alert_state("PartnerFailures", "critical", "firing", partner=p, value=v, threshold=20,
                                started_at=now - 600, summary=f"{text} failures")
                    for p, v, text in ((A, 25, "Alpha Co"), (B, 4321.25, "Bravo Zq7 Secret"))]
         + [alert_state("LuluPayDiskFull", "critical", "firing", value=97, started_at=now - 600)])
    services.alert_store.add_silence(Silence("bravo-silence", (Matcher("partner_id", B),), now - 60, now + 3600,
                                             "ada", "bravo-only-failure"))
    return login_server


def _concrete(rule) -> str:
    url = rule.rule
    for name in rule.arguments:
        for conv in ("path:", "string:", ""):
            url = url.replace(f"<{conv}{name}>", URL_VALUES[name])
    return url


def _routes(server):
    for rule in server.app.server.url_map.iter_rules():
        for method in sorted(rule.methods & {"GET", "POST", "PUT", "PATCH", "DELETE"}):
            yield rule, method


def _assert_nothing_of_b(text: str, where: str, echo: str = "") -> None:
    """None of bravo-corp's strings in `text` (the request's own address, `echo`, aside: a page's
    meta tags repeat the URL it was asked with)."""
    if echo:
        text = text.replace(echo, "").replace(echo.replace(",", "%2C"), "")
    for secret in B_STRINGS:
        assert secret not in text, f"{where} shows {secret!r}"


def test_every_route_refuses_anonymous_callers(world):
    checked = 0
    for rule, method in _routes(world):
        if rule.rule in OPEN_ROUTES:
            continue
        answer = requests.request(method, world.url + _concrete(rule), allow_redirects=False, timeout=10)
        if answer.status_code == 302:
            assert answer.headers["Location"].startswith("/login?next="), (rule.rule, method)
        else:
            assert answer.status_code == 401, (rule.rule, method, answer.status_code, answer.text[:200])
            assert answer.json()["field"] == "Authorization"
        _assert_nothing_of_b(answer.text, f"{method} {rule.rule} (anonymous)")
        checked += 1
    assert checked >= 15


def test_the_open_routes_are_exactly_the_declared_ones():
    declared = set(PUBLIC_PATHS) | set(SELF_CHECKED)
    assert {r for r in OPEN_ROUTES if "<" not in r} <= declared | {"/login"}
    assert all(prefix.rstrip("/") in {p.split("/<")[0] for p in OPEN_ROUTES} for prefix in PUBLIC_PREFIXES)


def test_partner_manager_reads_nothing_of_another_partner_on_any_route(world):
    session = sign_in(world.url, "pat", PASSWORD)
    for rule, method in _routes(world):
        # /metrics is Prometheus' (partner ids are label values there): open, or behind
        # LULUPAY_METRICS_TOKEN — never behind a user's session (test_auth.py checks the token)
        if method != "GET" or rule.rule in ("/ws", "/logout", "/metrics"):
            continue
        for query in ("", f"?partner={B}"):
            answer = session.get(world.url + _concrete(rule) + query, allow_redirects=False, timeout=10)
            assert answer.status_code < 500, (rule.rule, query, answer.text[:300])
            _assert_nothing_of_b(answer.text, f"GET {rule.rule}{query}", echo=query.lstrip("?"))


def test_asking_the_api_for_another_partner_is_refused(world):
    session = sign_in(world.url, "pat", PASSWORD)
    for path in ("/api/v1/summary", "/api/v1/series/builds", "/api/v1/partners"):
        answer = session.get(f"{world.url}{path}?partner={A}&partner={B}", timeout=10)
        assert answer.status_code == 403 and answer.json()["field"] == "partner", path
    assert session.get(f"{world.url}/api/v1/partners/{B}", timeout=10).status_code == 404
    mine = session.get(f"{world.url}/api/v1/partners/{A}", timeout=10).json()
    assert mine["partner_id"] == A and mine["name"] == "Alpha Co"
    assert [p["partner_id"] for p in session.get(world.url + "/api/v1/partners", timeout=10).json()["partners"]] == [A]


def test_partner_managers_numbers_are_their_partners_alone(world):
    pat = sign_in(world.url, "pat", PASSWORD)
    ada = sign_in(world.url, "ada", PASSWORD)
    own = pat.get(world.url + "/api/v1/summary", timeout=10).json()
    alpha = ada.get(f"{world.url}/api/v1/summary?partner={A}", timeout=10).json()
    everyone = ada.get(world.url + "/api/v1/summary", timeout=10).json()
    assert own == alpha and own["partners"] == [A]
    assert own["builds_total"] == 3 and everyone["builds_total"] == 6 and own["active_builds"] == 0
    staff = sign_in(world.url, "sam", PASSWORD).get(world.url + "/api/v1/summary", timeout=10).json()
    assert staff == everyone


def test_ingest_tokens_give_no_read_access(world):
    answer = requests.get(world.url + "/api/v1/summary", headers={"Authorization": "Bearer ingest-secret"}, timeout=10)
    assert answer.status_code == 401 and answer.json()["field"] == "Authorization"


def test_personal_tokens_read_with_the_users_scope(world):
    token = world.services.users.new_token("pat")
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{world.url}/api/v1/summary?partner={B}", headers=headers, timeout=10).status_code == 403
    assert requests.get(world.url + "/api/v1/summary", headers=headers, timeout=10).json()["partners"] == [A]
    assert world.services.users.revoke_tokens("pat") == 1
    assert requests.get(world.url + "/api/v1/summary", headers=headers, timeout=10).status_code == 401


def test_first_view_of_every_page_shows_nothing_of_another_partner(world):
    import dash

    session = sign_in(world.url, "pat", PASSWORD)
    pages = [p["path"] for p in dash.page_registry.values()]
    assert {"/", "/operations", "/live"} <= set(pages)
    for path in pages:
        for query in ("", f"?partner={B}", f"?partner={A},{B}&range=7d"):
            answer = session.get(world.url + "/_dash-layout", headers={"Referer": world.url + path + query}, timeout=20)
            assert answer.status_code == 200, (path, query)
            # the page's Locations hold the address it was drawn for (the visitor's own query)
            _assert_nothing_of_b(answer.text, f"first view of {path}{query}", echo=query.lstrip("?"))
            assert "Alpha Co" in answer.text, f"the partner filter of {path} offers alpha-co"


def _outputs(output: str):
    if output.startswith(".."):
        parts = output[2:-2].split("...")
        return [dict(zip(("id", "property"), part.rsplit(".", 1))) for part in parts]
    return dict(zip(("id", "property"), output.rsplit(".", 1)))


def test_every_callback_answers_nothing_of_another_partner(world):
    session = sign_in(world.url, "pat", PASSWORD)
    session.get(world.url + "/_dash-dependencies", timeout=10)  # Dash sets up its routing callback
    callbacks = {k: v for k, v in world.app.callback_map.items() if "callback" in v}
    assert len(callbacks) >= 12
    for output, entry in callbacks.items():
        body = {"output": output, "outputs": _outputs(output), "changedPropIds": []}
        for kind in ("inputs", "state"):
            body[kind] = []
            for dep in entry.get(kind, []):
                key = (dep["id"], dep["property"])
                assert key in PROP_RULES, f"{output} takes {key} without a validation rule (app/guard.py)"
                assert key in SAMPLE_VALUES, f"{output} takes {key}: add a sample value to this test"
                body[kind].append({"id": dep["id"], "property": dep["property"], "value": SAMPLE_VALUES[key]})
        if body["inputs"]:
            body["changedPropIds"] = [f"{body['inputs'][0]['id']}.{body['inputs'][0]['property']}"]
        answer = session.post(world.url + "/_dash-update-component", data=orjson.dumps(body), timeout=20,
                              headers={"Content-Type": "application/json", "Referer": world.url + "/operations"})
        assert answer.status_code in (200, 204), (output, answer.status_code, answer.text[:300])
        _assert_nothing_of_b(answer.text, f"callback {output}", echo=f"partner={B}")


def _ws(world, session: requests.Session):
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return websocket.create_connection(world.url.replace("http", "ws") + "/ws", header=[f"Cookie: {cookie}"],
                                       timeout=10)


def test_live_channel_refuses_another_partner_and_sends_nothing_of_it(world):
    session = sign_in(world.url, "pat", PASSWORD)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(world.url.replace("http", "ws") + "/ws", timeout=10)
    assert refused.value.status_code == 401
    ws = _ws(world, session)
    try:
        ws.send(json.dumps({"subscribe": ["builds"], "partners": [B]}))
        error = json.loads(ws.recv())
        assert error["stream"] == "error" and "not among the partners" in error["data"]["error"]
        ws.send(json.dumps({"subscribe": ["builds"]}))
        subscribed = json.loads(ws.recv())
        assert subscribed["data"]["partners"] == [A]
        hub = world.services.hub
        wait_until(lambda: hub.subscribed.is_set(), message="hub subscribed")
        now = time.time()
        world.services.ingest.ingest_batch([
            {"id": "live-b", "type": "build.started", "ts": now, "partner_id": B, "build_id": "bravo-build-live",
             "build_type": "debug", "app_version": "9.8.7-bravosecret"},
            {"id": "live-a", "type": "build.started", "ts": now, "partner_id": A, "build_id": "alpha-build-live",
             "build_type": "debug", "app_version": "1.0.0"}])
        message = ws.recv()
        assert json.loads(message)["data"]["build_id"] == "alpha-build-live"
        _assert_nothing_of_b(message, "/ws")
        # the collector's snapshot names many partners at once: a partner manager gets its own part
        ws.send(json.dumps({"subscribe": ["metrics"]}))
        assert json.loads(ws.recv())["stream"] == "subscribed"
        publish(world.services.store, "metrics", {
            "system": {"cpu_percent": 12.0}, "active_builds": {A: 2, B: 4321, "other": 7},
            "active_builds_total": 4330, "partners": [["pro", "active", 1], ["enterprise", "active", 1]],
            "quota_used_ratio": {A: 0.5, B: 0.25}, "builds_this_month": {A: 3, B: 4321}})
        snapshot = ws.recv()
        data = json.loads(snapshot)["data"]
        assert data["active_builds"] == {A: 2} and data["active_builds_total"] == 2
        assert data["quota_used_ratio"] == {A: 0.5} and "partners" not in data and data["system"]["cpu_percent"] == 12
        _assert_nothing_of_b(snapshot, "/ws metrics")
    finally:
        ws.close()


def test_a_read_without_a_scope_cannot_be_called(services):
    """Every public read of the query and dashboard services refuses a call without a Scope."""
    import inspect

    from services.scope import Scope

    checked = 0
    for target in (services.queries, services.dashboards, services.intelligence, services.anomalies,
                   services.forecasts):
        for name, method in inspect.getmembers(target, inspect.ismethod):
            if name.startswith("_"):
                continue
            params = inspect.signature(method).parameters
            if "scope" not in params:
                continue
            assert params["scope"].annotation in (Scope, "Scope"), f"{name}: scope must be a Scope"
            assert params["scope"].default is inspect.Parameter.empty, f"{name}: a scope has no default"
            samples = {"metric": "builds", "step": "1d", "horizon": 7}
            args = {p: samples.get(p) for p in params if params[p].default is inspect.Parameter.empty}
            args["scope"] = (0.0, 1.0, None)  # what an unscoped caller would pass: a range and "all"
            with pytest.raises((TypeError, AttributeError)):
                method(**args)
            checked += 1
    assert checked >= 20
