"""Fuzzing the HTTP surface of an in-process server (login mode, real Valkey), as an admin who
may write (a personal API token for the API, a signed-in session for Dash's endpoints):

0. every route the Flask app serves (`url_map`) is either an operation of the fuzzed OpenAPI
   document or listed in `NOT_IN_OPENAPI` with the test that covers it (a new route that is
   neither fails `test_every_served_route_is_fuzzed_or_covered_elsewhere`); the routes outside
   the document get hostile requests too (`test_routes_outside_the_document_survive_garbage`);
1. schemathesis over every operation of /openapi.json (positive and negative cases): no 5xx. The
   writes reach their actions: ids in paths are often those of seeded alerts and silences,
   numeric silence times often fall in the allowed window (`_reachable`), and
   `test_the_fuzzed_writes_got_past_the_gate` checks that none stopped at the gate and that
   some succeeded;
2. every registered server-side Dash callback, enumerated from `app.callback_map` (every page's,
   the /alerts page and its dialogs included), sent many seeded-random requests — garbage (wrong /
   missing keys, wrong types, wrong ids and properties, huge strings, 10k-item lists, nested dicts,
   "*" as a partner, junk filter sets, non-JSON bodies, wrong content types) and well-formed ones
   with valid values (the seeded alerts' and silences' ids among them): never a 5xx, and the valid
   ones answer 200/204; the dialogs' actions succeed with valid values;
3. cost bombs (huge or odd steps, ranges out of bounds, thousands of partners, a 100 KB URL, a
   callback over 5,000 partners, a silence regex built to backtrack): each a 4xx (or a quick
   answer) within 1 s that does not grow the process' RSS by more than ~50 MB.

A 5xx fails with the request that caused it and the server's traceback (captured from the Flask
and werkzeug loggers of this process)."""
from __future__ import annotations

import collections
import gc
import json
import logging
import random
import re
import string
import threading
import time
import traceback
from urllib.parse import quote

import psutil
import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from app.guard import DASH_UPDATE
from app.openapi import openapi_document
from app.settings import Settings
from services.alerting.silences import Matcher, Silence
from services.timerange import RANGES
from tests.alert_states import alert_state, seed
from services.store.embedded import EmbeddedValkey
from tests.conftest import InProcessServer, free_port, sign_in
from tests.reference import random_events

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]
SEED = 20261201
REQUESTS_PER_CALLBACK = 90
BOMB_SECONDS = 1.0
BOMB_RSS_BYTES = 50 * 1024 * 1024
ADMIN, PASSWORD = "fuzz-admin", "fuzz correct horse battery"
INGEST_TOKEN = "fuzz-ingest-token"

# Alerts and silences the writes act on: (rule, severity, state, partner). Their ids are the
# fingerprints of their labels (known before the server starts, so the callbacks' sample values
# below can name them); the silences' ids are chosen.
SEEDED_ALERTS = [("PartnerFailures", "critical", "firing", "acme-bank"), ("PartnerFailures", "critical", "firing",
                 "zenith-pay"), ("LuluPayDiskFull", "warning", "firing", None),
                 ("LuluPayPartnerBuildSuccessRateLow", "warning", "pending", "orbit-wallet"),
                 ("PartnerQuota", "warning", "resolved", "acme-bank")]
ALERT_IDS = [alert_state(rule, severity, state, partner=partner, started_at=0).id
             for rule, severity, state, partner in SEEDED_ALERTS]
SILENCE_IDS = [f"{n:x}" * 32 for n in range(10, 16)]  # aaaa…, bbbb…, …: 32 hex digits like the store's own


# -- server errors, with their tracebacks ------------------------------------------------------------
class ErrorLog(logging.Handler):
    """Keeps every ERROR record (with its traceback) the server logs while a test runs; attached to
    several loggers, a record that propagates through more than one is kept once."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()  # not `self.lock`: logging.Handler keeps its own lock there

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            if not any(seen is record for seen in self.records):
                self.records.append(record)

    def drain(self) -> str:
        with self.guard:
            records, self.records = self.records, []
        texts = []
        for record in records:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            texts.append(text)
        return "\n".join(texts)


def _csrf_token(session: requests.Session, url: str) -> str:
    """The signed-in session's CSRF token, as the pages hold it (in the layout)."""
    page = session.get(url + "/_dash-layout", headers={"Referer": url + "/alerts"}, timeout=20)
    found = re.search(r'"name":"csrf_token"[^}]*"value":"([^"]+)"|"value":"([^"]+)"[^}]*"name":"csrf_token"', page.text)
    return next(t for t in found.groups() if t)


def _seed_alerting(services, now: float) -> None:
    """The seeded alerts (written like the engine does) and six silences in force."""
    seed(services, [alert_state(rule, severity, state, partner=partner, value=1.0, threshold=0.9,
                                started_at=now - 600 * (i + 1))
                    for i, (rule, severity, state, partner) in enumerate(SEEDED_ALERTS)])
    for i, silence_id in enumerate(SILENCE_IDS):
        services.alert_store.add_silence(Silence(
            id=silence_id, matchers=(Matcher("partner_id", PARTNERS[i % 3]), Matcher("alertname", "PartnerFailures")),
            starts_at=now - 60, ends_at=now + 86400, author=ADMIN, comment="seeded", created_at=now - 60))


@pytest.fixture(scope="module")
def fuzz_valkey_url(tmp_path_factory):
    """A Valkey of this module's own: the session's server process (`live_server`) runs the alert
    engine and the forecast worker on the shared one, and would step the seeded alerts."""
    server = EmbeddedValkey(tmp_path_factory.mktemp("fuzz-valkey"), port=free_port(), persist=True).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def fuzz_server(fuzz_valkey_url, tmp_path_factory):
    """One login-mode server for the module, on a flushed Valkey with some builds of three
    partners, the seeded alerts and silences, and an admin: `token` (a personal API token) and
    `session` (signed in through the form, with the CSRF token in `X-CSRFToken`). Flushed again
    afterwards."""
    client = redis.Redis.from_url(fuzz_valkey_url)
    client.flushall()
    settings = Settings(_env_file=None, redis_url=fuzz_valkey_url, data_dir=tmp_path_factory.mktemp("fuzz") / "data",
                        ingest_tokens=INGEST_TOKEN, auth="login", collector_enabled=False, forecast_wait_s=0.2)
    server = InProcessServer(settings)
    errors = ErrorLog()
    loggers = [server.app.server.logger, logging.getLogger("werkzeug"), logging.getLogger()]
    for logger in loggers:
        logger.addHandler(errors)
    server.errors = errors
    now = time.time()
    server.services.ingest.ingest_batch(random_events(random.Random(SEED), 60, now - 3 * 86400, now - 60, PARTNERS))
    _seed_alerting(server.services, now)
    server.services.users.add(ADMIN, "admin", [], PASSWORD)
    server.token = server.services.users.new_token(ADMIN)
    server.session = sign_in(server.url, ADMIN, PASSWORD)
    server.session.headers["X-CSRFToken"] = _csrf_token(server.session, server.url)
    assert server.session.get(server.url + "/_dash-dependencies", timeout=20).ok  # Dash registers its page router
    try:
        yield server
    finally:
        for logger in loggers:
            logger.removeHandler(errors)
        server.stop()
        client.flushall()
        client.close()


def _signed_in(server) -> requests.Session:
    """A new requests session with the admin's session cookie and CSRF token."""
    session = requests.Session()
    session.cookies.update(server.session.cookies)
    session.headers["X-CSRFToken"] = server.session.headers["X-CSRFToken"]
    return session


def _describe(method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> str:
    text = f"{method} {url[:300]}{'…' if len(url) > 300 else ''}"
    if content_type is not None:
        text += f"\nContent-Type: {content_type}"
    if body is not None:
        shown = body[:1500].decode("utf-8", "replace")
        text += f"\n{shown}{'…' if len(body) > 1500 else ''} ({len(body)} bytes)"
    return text


# -- 0. every route is fuzzed here or covered elsewhere ----------------------------------------------
# Routes of `app.server.url_map` (Flask's rule, method) that the OpenAPI document does not describe,
# each with where it is tested. Every one of them also gets the hostile requests of
# test_routes_outside_the_document_survive_garbage. A new route belongs in the document
# (app/openapi.py, app/openapi_alerts.py), where schemathesis fuzzes it, or here.
NOT_IN_OPENAPI: dict[tuple[str, str], str] = {
    ("/", "GET"): "a page: tests/browser/test_pages.py",
    ("/<path:path>", "GET"): "the pages (Dash's catch-all): tests/browser, test_limits (unknown pages are 404)",
    ("/_dash-update-component", "POST"): "every server callback: section 2 below, test_limits, test_access",
    ("/_dash-layout", "GET"): "the first view: test_first_view, test_access",
    ("/_dash-dependencies", "GET"): "Dash's callback list: this module's fixture, tests/browser",
    ("/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>", "GET"):
        "Dash's scripts: test_access, test_gunicorn, tests/browser",
    ("/_favicon.ico", "GET"): "Dash's icon: test_access", ("/favicon.ico", "GET"): "a redirect to Dash's: test_access",
    ("/_reload-hash", "GET"): "Dash's hot reload (off in every mode): only the garbage test below",
    ("/assets/<path:filename>", "GET"): "the CSS and JS of assets/: test_access, test_first_view, tests/browser",
    ("/static/<path:filename>", "GET"): "Flask's static folder (empty): only the garbage test below",
    **{("/api/<path:rest>", m): "unknown API routes are 404 JSON: test_limits"
       for m in ("GET", "POST", "PUT", "PATCH", "DELETE")},
    ("/login", "GET"): "the sign-in form: test_auth", ("/login", "POST"): "signing in (CSRF, rate limit): test_auth",
    ("/logout", "POST"): "signing out: test_auth",
    ("/login/oidc", "GET"): "OpenID Connect (only when configured): test_oidc",
    ("/login/oidc/callback", "GET"): "OpenID Connect (only when configured): test_oidc",
    ("/metrics", "GET"): "the exposition: test_observability, tests/monitoring",
    ("/openapi.json", "GET"): "the document itself: test_the_fuzzed_document_is_the_served_one",
    ("/ws", "GET"): "the live channel: test_realtime, test_access (its messages are checked there)",
}
ONLY_WHEN_CONFIGURED = {("/login/oidc", "GET"), ("/login/oidc/callback", "GET")}


def _served_routes(server) -> set[tuple[str, str]]:
    return {(rule.rule, method) for rule in server.app.server.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def _documented() -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, operations in openapi_document()["paths"].items()
            for method in operations}


def _openapi_path(rule: str) -> str:
    """The OpenAPI path of a Flask rule: /api/v1/series/<metric> → /api/v1/series/{metric}."""
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


def test_every_served_route_is_fuzzed_or_covered_elsewhere(fuzz_server):
    served = _served_routes(fuzz_server)
    documented = _documented()
    in_document = {(rule, method) for rule, method in served if (_openapi_path(rule), method) in documented}
    missing = sorted(served - in_document - set(NOT_IN_OPENAPI))
    assert not missing, (f"routes neither in the OpenAPI document nor in NOT_IN_OPENAPI: {missing}: describe "
                         "them in app/openapi.py (then schemathesis fuzzes them) or list them with their tests")
    assert not documented - {(_openapi_path(rule), method) for rule, method in served}, "documented, not served"
    stale = sorted(set(NOT_IN_OPENAPI) - served - ONLY_WHEN_CONFIGURED)
    assert not stale, f"NOT_IN_OPENAPI lists routes the app no longer serves: {stale}"
    assert not set(NOT_IN_OPENAPI) & in_document, "listed as covered elsewhere but in the document"


# -- 1. the OpenAPI document ----------------------------------------------------------------------------
# The document the server serves (create_app serves openapi_document() as /openapi.json; the test
# below checks they are the same), loaded at collection time so schemathesis makes one test per
# operation; each case is sent to the module's server with the admin's personal token (ingest: the
# ingest token).
schema = schemathesis.openapi.from_dict(openapi_document())
WRITES = {(path, method.upper()) for path, operations in openapi_document()["paths"].items()
          for method in operations if method in ("post", "put", "patch", "delete")}
# operation → answer kind → count; read by test_the_fuzzed_writes_got_past_the_gate
OUTCOMES: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)


def _pick(value: object, choices: list[str]) -> str | object:
    """Three in four generated values replaced by one of `choices` (chosen by the value itself, so
    the same case always makes the same request), the fourth kept."""
    digest = sum(str(value).encode())
    return value if digest % 4 == 3 else choices[digest % len(choices)]


def _reachable(case, now: float) -> None:
    """Make a generated write more often one that gets past validation: ids of seeded alerts and
    silences in its path, numeric event and silence times inside their windows (the document
    cannot say "the last 90 days"; other values stay as made)."""
    params = case.path_parameters or {}
    if "alert_id" in params:
        params["alert_id"] = _pick(params["alert_id"], ALERT_IDS)
    if "silence_id" in params:
        params["silence_id"] = _pick(params["silence_id"], SILENCE_IDS)
    if "partner_id" in params:
        params["partner_id"] = _pick(params["partner_id"], PARTNERS)
    body = case.body
    if case.path == "/api/v1/events" and isinstance(body, dict):
        events = body.get("events") if isinstance(body.get("events"), list) else [body]
        for event in events:
            if isinstance(event, dict) and "ts" in event:
                event["ts"] = _within(event["ts"], now - 80 * 86400, 80 * 86400 - 60)  # the retention window
    if case.path == "/api/v1/silences" and case.method.upper() == "POST" and isinstance(body, dict):
        for name, lo, span in (("starts_at", now, 3600), ("ends_at", now + 4000, 80 * 86400)):
            if name in body:
                body[name] = _within(body[name], lo, span)
        matchers = body.get("matchers")
        first = matchers[0] if isinstance(matchers, list) and matchers else None
        if isinstance(first, dict) and first.get("value") == "" and len(matchers) % 4 != 3:
            first["value"] = "fuzz"  # a silence of everything (every matcher matching "") is refused


def _within(value: object, lo: float, span: float) -> object:
    """A generated time (epoch seconds, or an RFC 3339 string: three in four) moved into [lo, lo + span)."""
    if type(value) in (int, float) and value == value and abs(value) < 1e300:
        return lo + abs(value) % span
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT.+", value) and sum(value.encode()) % 4 != 3:
        moved = lo + sum(value.encode()) * 7919 % span
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moved))
    return value


def _outcome(response, token: str) -> str:
    """unauthenticated (schemathesis's own cases without our credentials), gate (refused before
    the route: sign-in, CSRF), done (2xx), or refused (the route's own 4xx)."""
    if response.request.headers.get("Authorization") != f"Bearer {token}":
        return "unauthenticated"
    if response.status_code == 401 and "Authorization" in response.text:
        return "gate"
    if response.status_code == 400 and "csrf" in response.text.lower():
        return "gate"
    return "done" if response.status_code < 300 else "refused"


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_openapi_operations_never_answer_a_server_error(case, fuzz_server):
    fuzz_server.errors.drain()
    _reachable(case, time.time())
    token = INGEST_TOKEN if case.path == "/api/v1/events" else fuzz_server.token
    response = case.call(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    mode = case._meta.generation.mode.value if case._meta else "explicit"  # positive or negative
    OUTCOMES[(case.path, case.method.upper())][f"{mode} {_outcome(response, token)}"] += 1
    if response.status_code >= 500:
        pytest.fail(f"{response.status_code} for:\n{case.as_curl_command()}\n\nserver log:\n"
                    f"{fuzz_server.errors.drain() or '(nothing logged)'}\n\nresponse: {response.text[:500]}")
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzzed_writes_got_past_the_gate(fuzz_server):
    if not OUTCOMES:
        pytest.skip("run with the schemathesis tests above (this one reads what they sent)")
    report = {f"{method} {path}": dict(OUTCOMES[(path, method)]) for path, method in sorted(WRITES)}
    print("answers of the fuzzed writes:", report)  # shown with -s
    for path, method in WRITES:
        outcomes = OUTCOMES[(path, method)]
        assert outcomes, f"{method} {path} was not fuzzed: {report}"
        assert not [k for k in outcomes if k.endswith(" gate")], f"{method} {path} stopped at the gate: {report}"
        positive = {k: n for k, n in outcomes.items() if k.startswith("positive ") and not k.endswith("unauthenticated")}
        assert positive.get("positive done", 0) >= 0.25 * sum(positive.values()), \
            f"fewer than a quarter of the valid {method} {path} succeeded: {report}"
    # and the session way: a write with the session cookie and its CSRF token, refused without it
    session = _signed_in(fuzz_server)
    answer = session.post(f"{fuzz_server.url}/api/v1/alerts/{ALERT_IDS[0]}/ack", json={"comment": "fuzz"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["acknowledged"], answer.text
    del session.headers["X-CSRFToken"]
    answer = session.post(f"{fuzz_server.url}/api/v1/alerts/{ALERT_IDS[1]}/ack", json={}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "csrf_token", answer.text


def test_the_fuzzed_document_is_the_served_one(fuzz_server):
    served = requests.get(fuzz_server.url + "/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(openapi_document()))
    assert {"/api/v1/events", "/api/v1/summary", "/api/v1/series/{metric}", "/api/v1/partners"} <= set(served["paths"])


# -- 2. every server-side Dash callback -----------------------------------------------------------------
def _outputs(output: str):
    """The `outputs` Dash sends for a callback map key ("a.b" or "..a.b...c.d..")."""
    def one(part: str) -> dict:
        component, prop = part.rsplit(".", 1)
        return {"id": component, "property": prop.split("@")[0]}

    if output.startswith(".."):
        return [one(part) for part in output[2:-2].split("...")]
    return one(output)


def _server_callbacks(server) -> dict[str, dict]:
    return {key: entry for key, entry in server.app.callback_map.items() if "callback" in entry}


def _filters(rng="24h", partners=(), start=None, end=None, refresh="30s") -> dict:
    return {"range": rng, "from": start, "to": end, "partners": list(partners), "refresh": refresh}


# Values each (component id, property) takes: what the page sends (VALID), and what a client may
# send that passes — or should be refused by — the edge's rules (ODD: reaches the callbacks).
VALID: dict[tuple[str, str], list] = {
    ("url", "search"): ["", None, "?range=7d", "?partner=acme-bank,zenith-pay&range=30d&refresh=1m",
                        "?range=custom&from=2026-01-01&to=2026-01-31", "?refresh=off"],
    ("url", "pathname"): ["/", "/operations", "/live", None],
    ("_pages_location", "search"): ["", None, "?range=7d&partner=acme-bank", "?range=custom&from=2026-01-01&to=2026-01-02"],
    ("_pages_location", "pathname"): ["/", "/operations", "/live", "/partners/acme-bank", "/assets", "/capacity",
                                     "/alerts"],
    ("filter-range", "value"): list(RANGES),
    ("filter-dates", "start_date"): [None, "2026-01-01"],
    ("filter-dates", "end_date"): [None, "2026-01-31"],
    ("filter-partners", "value"): [None, [], ["acme-bank"], PARTNERS, "acme-bank"],
    ("filter-refresh", "value"): ["30s", "off", "5s", "1m"],
    ("filters", "data"): [_filters(), _filters(), _filters("7d", ["acme-bank"]), _filters("90d", PARTNERS, refresh="off"),
                          _filters("custom", [], "2026-01-01", "2026-01-31"), _filters("1h", refresh="5s")],
    ("refresh-tick", "n_intervals"): [None, 0, 1, 12345],
    ("theme", "data"): [None, "light", "dark"],
    ("ops-asset-csv", "n_clicks"): [None, 0, 1, 7],
    ("builds-forecast-poll", "n_intervals"): [0, 1, 59],
    ("builds-signature-csv", "n_clicks"): [None, 1],
    ("builds-grid-csv", "n_clicks"): [None, 1],
    ("partners-risk-csv", "n_clicks"): [None, 1],
    ("partners-table-csv", "n_clicks"): [None, 1],
    ("assets-table-csv", "n_clicks"): [None, 1],
    ("capacity-sla-csv", "n_clicks"): [None, 1],
    ("partner-id", "data"): [None, "acme-bank", "zenith-pay"],
    ("partner-signature-csv", "n_clicks"): [None, 1],
    ("partner-failed-csv", "n_clicks"): [None, 1],
    ("partner-asset-csv", "n_clicks"): [None, 1],
    ("partner-history-csv", "n_clicks"): [None, 1],
    ("builds-grid", "getRowsRequest"): [
        {"startRow": 0, "endRow": 100, "sortModel": [{"sort": "desc", "type": "default", "colId": "finished_at"}],
         "filterModel": {}, "api": {}},
        {"startRow": 100, "endRow": 200, "sortModel": [{"sort": "asc", "colId": "duration_s"}], "filterModel": {
            "status": {"filterType": "text", "type": "equals", "filter": "failed"},
            "error_signature": {"filterType": "text", "type": "equals", "filter": "0123456789abcdef"}}},
        {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {
            "partner_id": {"filterType": "text", "type": "equals", "filter": "acme-bank"}}}],
    ("builds-grid", "filterModel"): [None, {}, {"build_type": {"filterType": "text", "type": "equals",
                                                               "filter": "store"}}],
    ("builds-signature-grid", "cellClicked"): [None, {"rowId": "0123456789abcdef", "colId": "pattern",
                                                      "value": "x", "rowIndex": 0, "timestamp": 1}],
    ("alerts-ping", "data"): [None, 1, 77],
    ("alerts-new-silence", "n_clicks"): [None, 1],
    ("alerts-ack-cancel", "n_clicks"): [None, 1],
    ("alerts-ack-confirm", "n_clicks"): [None, 1, 3],
    ("alerts-silence-cancel", "n_clicks"): [None, 1],
    ("alerts-silence-create", "n_clicks"): [None, 1, 2],
    ("alerts-history-csv", "n_clicks"): [None, 1],
    ("alerts-active-grid", "cellRendererData"): [
        None, {"value": "ack", "colId": "id", "rowIndex": 0, "rowId": ALERT_IDS[0], "timestamp": 1764576000000},
        {"value": "silence", "colId": "id", "rowIndex": 3, "rowId": ALERT_IDS[2], "timestamp": 1},
        {"value": "ack", "colId": "id", "rowIndex": 1, "rowId": ALERT_IDS[3], "timestamp": 1},
        {"value": "ack", "colId": "id", "rowIndex": 0, "rowId": "0123456789abcdef", "timestamp": 1764576000000}],
    ("alerts-silences-grid", "cellRendererData"): [
        None, *({"value": "expire", "colId": "id", "rowIndex": 0, "rowId": silence_id, "timestamp": 1764576000000}
                for silence_id in SILENCE_IDS),
        {"value": "expire", "colId": "id", "rowIndex": 0, "rowId": "0123456789abcdef0123456789abcdef",
         "timestamp": 1764576000000}],
    ("alerts-result", "data"): [None, {"seq": 1, "action": "acknowledge", "ok": True, "message": "Acknowledged X."},
                                {"seq": 2, "action": "silence", "ok": False, "message": "matchers: bad"}],
    ("alerts-ack-target", "data"): [None, *ALERT_IDS, "0123456789abcdef"],
    ("alerts-ack-comment", "value"): [None, "", "on it"],
    ("alerts-silence-matchers", "value"): [None, "", 'alertname="LuluPayBuildsSlow"\npartner_id="acme-bank"',
                                           'severity=~"crit.*"', 'team!="ops"\nalertname="X"'],
    ("alerts-silence-duration", "value"): [None, "1h", "2h", "7d"],
    ("alerts-silence-comment", "value"): [None, "", "deploy"],
    ("alerts-history-state", "value"): [None, "firing", "resolved"],
    ("alerts-history-severity", "value"): [None, "critical", "info"],
    ("alerts-history-rule", "value"): [None, "LuluPayBuildsSlow", "no such rule"],
}

_IDS_100 = [f"p-{i:03d}" for i in range(100)]
ODD: dict[tuple[str, str], list] = {
    ("url", "search"): ["?partner=*", "?partner=%2A", "?range=custom", "?range=custom&from=2026-02-30&to=2026-03-01",
                        "?range=custom&from=9999-12-31&to=0001-01-01", "?%ZZ%zz", "?&&&&=&=", "?" + "&" * 4000,
                        "?partner=" + ",".join(_IDS_100 * 3), "?range=7d&range=1h&refresh=5s&refresh=x",
                        "?partner=" + "a" * 8000, "?from=\x00&to=\ufffd", "?partner=A B,ünïcode,<script>",
                        "?range=custom&from=2026-01-01T99:99&to=2026-01-01Tzz", "no question mark"],
    ("url", "pathname"): ["", "//", "/../..", "/operations/", "/nope", "/" + "a" * 2000, "/é", "/%2e%2e",
                          "/live?x=1", "/\x00", "http://evil.example/"],
    ("_pages_location", "pathname"): [None, "", "partners", "/partners/" + "x" * 3000, "/partners/A B"],
    ("filter-range", "value"): [None, "custom"],
    ("filter-dates", "start_date"): ["", "2026-02-30", "garbage", "0001-01-01", "9999-12-31", "2026-01-01T25:61",
                                     "-1", "١٢٣٤-٠١-٠١", "2026-W01-1", "20260101", "2026-01-01" + "x" * 30],
    ("filter-dates", "end_date"): ["", "2025-01-01", "nope", "0001-01-01", "9999-12-31", "2026-13-01", "2026-01-01Z"],
    ("filter-partners", "value"): ["*", "", ["*"], [""], ["A B"], ["acme-bank", "acme-bank"], _IDS_100,
                                   ["x" * 64] * 100, "x" * 64, ["../../etc"], ["acme-bank*"]],
    ("filter-refresh", "value"): [None, "", "x" * 16, "0", "-5s", "off "],
    ("filters", "data"): [
        None, {}, {"range": None}, {"range": ""}, {"range": "custom"}, {"refresh": None}, {"refresh": "x"},
        {"refresh": [1, 2]}, {"refresh": {"a": 1}}, {"refresh": 10**18}, {"refresh": True},
        {"partners": None}, {"partners": ["*"]}, {"partners": [1, None, {"a": 1}]}, {"partners": [["nested"]]},
        {"partners": _IDS_100}, {"partners": 0}, {"partners": {}}, {"partners": ""},
        _filters("custom", [], "2026-01-31", "2026-01-01"), _filters("custom", [], "0001-01-01", "9999-12-31"),
        _filters("custom", [], "2026-01-01xyz", "2026-01-02"), _filters("custom", ["*"], "2026-01-01", "2026-01-02"),
        _filters("custom", [], "2026-01-01", "2026-01-01", refresh="5s"), _filters("24h", ["A B"]),
        _filters("7d", ["x" * 64] * 100), _filters("24h", PARTNERS, "not a date", 5),
        {"range": ["x"]}, {"range": {"a": 1}}, {"range": 7}, {"range": "custom", "from": 1, "to": 2},
        {"range": "custom", "from": [], "to": {}},
    ],
    ("refresh-tick", "n_intervals"): [2**53 - 1],
    ("theme", "data"): [],
    ("ops-asset-csv", "n_clicks"): [2**53 - 1],
    ("builds-forecast-poll", "n_intervals"): [2**53 - 1],
    ("builds-signature-csv", "n_clicks"): [0],
    ("builds-grid-csv", "n_clicks"): [0],
    ("partners-risk-csv", "n_clicks"): [2**53 - 1],
    ("partners-table-csv", "n_clicks"): [0],
    ("assets-table-csv", "n_clicks"): [2**53 - 1],
    ("capacity-sla-csv", "n_clicks"): [0, 2**53 - 1],
    ("partner-id", "data"): ["*", "", "A B", "x" * 65, "../../etc", 5, ["acme-bank"], {"a": 1}],
    ("partner-signature-csv", "n_clicks"): [0],
    ("partner-failed-csv", "n_clicks"): [2**53 - 1],
    ("partner-asset-csv", "n_clicks"): [0],
    ("partner-history-csv", "n_clicks"): [0],
    ("builds-grid", "getRowsRequest"): [
        {"startRow": 10**9, "endRow": 10**9 + 1000, "sortModel": [], "filterModel": {}},
        {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "build_id", "sort": "asc"}], "filterModel": {}},
        {"startRow": 0, "endRow": 100, "filterModel": {"error_message": {"filterType": "text", "type": "equals",
                                                                          "filter": "x" * 500}}},
        {"startRow": 0, "endRow": 100, "filterModel": {"duration_s": {"filterType": "text", "type": "equals",
                                                                       "filter": "5"}}}],
    ("builds-grid", "filterModel"): [{"partner_id": {"filterType": "text", "type": "equals", "filter": ""}}],
    ("builds-signature-grid", "cellClicked"): [{"rowId": None}, {"rowId": ""}, {}],
    ("alerts-ping", "data"): [0, 2**53 - 1],
    ("alerts-new-silence", "n_clicks"): [0],
    ("alerts-ack-cancel", "n_clicks"): [0],
    ("alerts-ack-confirm", "n_clicks"): [0, 2**53 - 1],
    ("alerts-silence-cancel", "n_clicks"): [0],
    ("alerts-silence-create", "n_clicks"): [0, 2**53 - 1],
    ("alerts-history-csv", "n_clicks"): [0],
    ("alerts-active-grid", "cellRendererData"): [
        {"value": "ack"}, {"value": "silence", "rowId": ""}, {"value": "ack", "rowId": "../../etc"},
        {"value": "silence", "rowId": "x" * 64}, {"value": "ack", "rowId": "*", "rowIndex": 10**9}],
    ("alerts-silences-grid", "cellRendererData"): [{"value": "expire"}, {"value": "expire", "rowId": ""},
                                                   {"value": "expire", "rowId": "*"}],
    ("alerts-result", "data"): [{}, {"seq": 0}, {"action": "expire"}, {"ok": False, "message": ""}],
    ("alerts-ack-target", "data"): ["", "*", "x" * 64, "../../etc"],
    ("alerts-ack-comment", "value"): ["x" * 1024, "\x00", "<script>"],
    ("alerts-silence-matchers", "value"): ["garbage", "a=", '=""', 'a=~"(x+)+"', 'a=~"["', 'a=~".*"',
                                           "\n".join(f'l{i}="v"' for i in range(40)), 'partner_id="*"',
                                           'a="' + "x" * 2000 + '"', "\x00=\"\"", "x" * 16384],
    ("alerts-silence-duration", "value"): ["12h", "3d"],
    ("alerts-silence-comment", "value"): ["x" * 1024, "\ud7ff"],
    ("alerts-history-state", "value"): ["pending"],
    ("alerts-history-severity", "value"): ["warning"],
    ("alerts-history-rule", "value"): ["", "x" * 128, "*"],
}


def _junk(rng: random.Random, depth: int = 0):
    """Any JSON value, often a nasty one."""
    choice = rng.randrange(22)
    if choice == 0:
        return rng.choice([0, -1, 1, 2**31, 2**53, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30)])
    if choice == 1:
        return rng.choice([0.5, -1.5, 1e308, -1e308, 5e-324])
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return rng.choice(["*", "**", "?", "%", "", " ", "\x00", "\ud7ff\ue000", "acme-bank", "../../", "$ne", "null"])
    if choice == 4:
        return "x" * rng.choice([65, 300, 8193, 100_000, 1_000_000])
    if choice == 5:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 60)))
    if choice == 6:
        return [rng.choice([1, "*", None, "acme-bank"])] * 10_000
    if choice == 7:
        return list(range(10_000))
    if choice == 8:
        nested: object = "bottom"
        for _ in range(rng.choice([10, 100, 500])):
            nested = {"a": nested}
        return nested
    if choice == 9:
        return [[[["deep"]]]]
    if choice == 10:
        return {"range": _junk(rng, depth + 1) if depth < 2 else "7d", "partners": "*"}
    if choice == 11:
        return {"range": "24h", "partners": ["*"] * rng.choice([1, 100, 101, 5000])}
    if choice == 12:
        return {"junk": 1, "range": "24h"}
    if choice == 13:
        return {"$where": "1", "__proto__": {"x": 1}}
    if choice == 14:
        return {}
    if choice == 15:
        return []
    if choice == 16:
        return ["acme-bank"] * rng.choice([1, 101, 5000])
    if choice == 17:
        return {"id": "url", "property": "search", "value": "?x"}
    if choice == 18:
        return {str(i): i for i in range(rng.choice([10, 1000]))}
    if choice == 19:
        return {"range": "custom", "from": _junk(rng, depth + 1) if depth < 2 else 1, "to": "2026-01-01"}
    if choice == 20:
        return [_junk(rng, depth + 1) for _ in range(3)] if depth < 3 else [1]
    return {"range": rng.choice(list(RANGES)), "partners": rng.choice([[], ["acme-bank"], ["A"], [1]]),
            "refresh": _junk(rng, depth + 1) if depth < 2 else "30s"}


def _value(rng: random.Random, key: tuple[str, str], kind: str):
    if kind == "valid" or (kind == "odd" and not ODD.get(key)):
        return rng.choice(VALID[key])
    if kind == "odd":
        return rng.choice(ODD[key])
    return _junk(rng)


def _body(entry: dict, output: str, rng: random.Random, kind: str) -> dict:
    body = {"output": output, "outputs": _outputs(output), "changedPropIds": []}
    for part in ("inputs", "state"):
        body[part] = [{"id": dep["id"], "property": dep["property"],
                       "value": _value(rng, (dep["id"], dep["property"]), kind if rng.random() < 0.7 else "valid")}
                      for dep in entry.get(part, [])]
    if body["inputs"]:
        changed = rng.choice(body["inputs"])
        body["changedPropIds"] = [f"{changed['id']}.{changed['property']}"]
    return body


def _dumps(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _mangle(body: dict, output: str, rng: random.Random) -> tuple[bytes, str, str]:
    """A malformed request: (body bytes, Content-Type, what is wrong)."""
    ct = "application/json"
    doc = json.loads(json.dumps(body))
    choice = rng.randrange(26)
    if choice == 0:
        key = rng.choice(["output", "outputs", "inputs", "state", "changedPropIds"])
        doc.pop(key, None)
        what = f"without {key}"
    elif choice == 1:
        key = rng.choice(["output", "outputs", "inputs", "state", "changedPropIds"])
        doc[key] = _junk(rng)
        what = f"{key} replaced by junk"
    elif choice == 2:
        doc[rng.choice(["junk", "__proto__", "inputs_extra", "signal"])] = _junk(rng)
        what = "an extra key"
    elif choice == 3 and doc["inputs"]:
        doc["inputs"][rng.randrange(len(doc["inputs"]))] = _junk(rng)
        what = "an input item replaced by junk"
    elif choice == 4 and doc["inputs"]:
        item = doc["inputs"][rng.randrange(len(doc["inputs"]))]
        item["id"] = rng.choice(["nope", "", None, 1, {"type": "x", "index": 0}, {"type": "x", "index": ["ALL"]},
                                 "filters", "url", "*"])
        what = "a wrong input id"
    elif choice == 5 and doc["inputs"]:
        item = doc["inputs"][rng.randrange(len(doc["inputs"]))]
        item["property"] = rng.choice(["nope", "", None, 1, "value", "data", "search", "children", "id"])
        what = "a wrong input property"
    elif choice == 6 and doc["inputs"]:
        doc["inputs"][rng.randrange(len(doc["inputs"]))].pop(rng.choice(["id", "property", "value"]))
        what = "an input item missing a key"
    elif choice == 7:
        doc["inputs"] = doc["inputs"] + [{"id": "url", "property": "search", "value": "?"}]
        what = "one input too many"
    elif choice == 8:
        doc["inputs"] = doc["inputs"][:-1]
        what = "one input too few"
    elif choice == 9:
        doc["state"] = doc.get("state", []) + [{"id": "filters", "property": "data", "value": None}]
        what = "one state too many"
    elif choice == 10:
        doc["output"] = rng.choice(["nope.children", "", "..a.b...c.d..", output + "x", output.upper(),
                                    "live-state.data", "rt-toasts.children", "theme.data", "*"])
        what = "an unknown or clientside output"
    elif choice == 11:
        doc["outputs"] = rng.choice([{"id": "nope", "property": "children"}, [], [{}], {}, [1, 2],
                                     [{"id": "x", "property": "y"}] * 1000, {"id": None, "property": None}])
        what = "wrong outputs"
    elif choice == 12:
        doc["changedPropIds"] = rng.choice([[1], ["x" * 301], ["nope.prop"], "url.search", [None], ["."],
                                            ["url.search"] * 10_000, [{"a": 1}]])
        what = "wrong changedPropIds"
    elif choice == 13:
        return rng.choice([b"", b"{", b"not json", b"\xff\xfe\x00", b"[]", b"null", b"1", b'"str"', b"{}",
                           b"\xef\xbb\xbf" + _dumps(doc), "\ufeff".encode("utf-16") + json.dumps(doc).encode("utf-16"),
                           b'{"output": NaN}', b'{"output": Infinity, "inputs": -Infinity}',
                           b'{"output":"\\ud800"}', b"{'output': 'x'}"]), ct, "not JSON, or no object"
    elif choice == 14:
        depth = rng.choice([600, 2000, 100_000])
        return b"[" * depth + b"]" * depth, ct, f"nested {depth} deep"
    elif choice == 15:
        return _dumps(doc), rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                        "application/json-patch+json", "", "*/*", "application/xml",
                                        "application/jsonx", "APPLICATION/JSON", "application/json; charset=utf-16",
                                        "application/json; charset=latin-1", "application/json;;;"]), "a Content-Type"
    elif choice == 16:
        return _dumps(doc) + rng.choice([b"garbage", b"}", b"\x00", b" " * 1000, b",{}"]), ct, "trailing bytes"
    elif choice == 17:
        return b'{"x": "' + b"y" * (3 * 1024 * 1024) + b'"}', ct, "a 3 MB body"
    elif choice == 18:
        doc["inputs"] = doc["inputs"] + [{"id": "url", "property": "search", "value": "?partner=é-ü"}]
        return (json.dumps(doc, ensure_ascii=False).encode("latin-1", "replace"), "application/json; charset=latin-1",
                "a latin-1 body")
    elif choice == 19:
        doc["state"] = _junk(rng)
        what = "state replaced by junk"
    elif choice == 20:
        doc = [doc]
        what = "the body in a list"
    elif choice == 21 and doc["inputs"]:
        item = doc["inputs"][rng.randrange(len(doc["inputs"]))]
        item.update({"value": _junk(rng), "extra": _junk(rng)})
        what = "an input value and an extra key of junk"
    elif choice == 22:
        doc["inputs"] = list(reversed(doc["inputs"]))
        doc["state"] = list(reversed(doc.get("state", [])))
        what = "inputs and state reversed"
    elif choice == 23:
        doc["inputs"], doc["state"] = doc.get("state", []), doc["inputs"]
        what = "inputs and state swapped"
    elif choice == 24:
        doc["outputs"] = json.dumps(doc["outputs"])
        what = "outputs as a string"
    else:
        for part in ("inputs", "state"):
            for item in doc.get(part, []):
                if isinstance(item, dict):
                    item["value"] = _junk(rng)
        what = "every value junk"
    return _dumps(doc), ct, what


ACT_OUTPUT = "alerts-result.data"  # the /alerts page's actions (callbacks/alert_dialogs.py: act)


def _post(session: requests.Session, url: str, body: bytes, content_type: str | None):
    headers = {"Referer": url + "/operations"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return session.post(url + DASH_UPDATE, data=body, headers=headers, timeout=20)


def test_every_server_callback_survives_garbage(fuzz_server):
    callbacks = _server_callbacks(fuzz_server)
    assert len(callbacks) >= 12, sorted(callbacks)
    for entry in callbacks.values():
        for dep in entry.get("inputs", []) + entry.get("state", []):
            assert (dep["id"], dep["property"]) in VALID, f"add sample values of {dep} to this test"
    session = _signed_in(fuzz_server)
    failures: list[str] = []
    invalid_valid: list[str] = []
    acted: collections.Counter = collections.Counter()  # the dialogs' actions of valid requests: ok or not
    sent = 0
    started = time.monotonic()
    for n, (output, entry) in enumerate(sorted(callbacks.items())):
        rng = random.Random(SEED + n)
        for i in range(REQUESTS_PER_CALLBACK):
            roll = i % 10
            if roll < 2:
                kind, body = "valid", _dumps(_body(entry, output, rng, "valid"))
                ct, what = "application/json", "well-formed, valid values"
            elif roll < 5:
                kind, body = "odd", _dumps(_body(entry, output, rng, "odd"))
                ct, what = "application/json", "well-formed, odd values"
            elif roll < 7:
                kind, body = "junk", _dumps(_body(entry, output, rng, "junk"))
                ct, what = "application/json", "well-formed, junk values"
            else:
                kind = "mangled"
                body, ct, what = _mangle(_body(entry, output, rng, "valid"), output, rng)
            fuzz_server.errors.drain()
            answer = _post(session, fuzz_server.url, body, ct)
            sent += 1
            if answer.status_code >= 500:
                failures.append(f"[{output} #{i}: {what}] {answer.status_code}\n"
                                f"{_describe('POST', DASH_UPDATE, body, ct)}\n--- server log:\n"
                                f"{fuzz_server.errors.drain() or '(nothing logged)'}\n--- answer: {answer.text[:300]}")
            elif kind == "valid" and answer.status_code not in (200, 204):
                invalid_valid.append(f"[{output} #{i}] {answer.status_code} {answer.text[:200]}\n"
                                     f"{_describe('POST', DASH_UPDATE, body, ct)}")
            elif kind == "valid" and ACT_OUTPUT in output and answer.status_code == 200:
                acted[answer.json()["response"]["alerts-result"]["data"]["ok"]] += 1
    # chunked bodies (no Content-Length) and a request without a Content-Type
    output, entry = sorted(callbacks.items())[0]
    valid = _dumps(_body(entry, output, random.Random(SEED), "valid"))
    for body, ct in ((iter([valid[:10], valid[10:]]), "application/json"), (iter([b"{" * 5000]), "application/json"),
                     (valid, None)):
        answer = _post(session, fuzz_server.url, body, ct)
        sent += 1
        if answer.status_code >= 500:
            failures.append(f"[chunked / no Content-Type] {answer.status_code}\n--- server log:\n"
                            f"{fuzz_server.errors.drain()}")
    elapsed = time.monotonic() - started
    summary = f"{len(failures)} server errors in {sent} callback requests ({elapsed:.1f} s)"
    report = []
    if failures:
        report.append(summary + "\n\n" + "\n\n".join(_dedupe(failures)))
    if invalid_valid:
        report.append(f"{len(invalid_valid)} valid requests not answered 200/204:\n\n" + "\n\n".join(invalid_valid[:10]))
    assert not report, "\n\n".join(report)
    assert acted[True] >= 1, f"no valid request of the /alerts page's actions succeeded: {dict(acted)}"


def _dedupe(failures: list[str]) -> list[str]:
    """One failure per distinct exception (its last line and innermost frame), with a count."""
    groups: dict[str, list[str]] = {}
    for failure in failures:
        log = failure.split("--- server log:")[-1].split("--- answer:")[0]
        lines = [line for line in log.splitlines() if line.strip()]
        frames = [line for line in lines if line.lstrip().startswith("File ")]
        key = (frames[-1].strip() if frames else "") + " " + (lines[-1] if lines else failure)
        groups.setdefault(key, []).append(failure)
    return [f"({len(items)}×) {items[0]}" for items in groups.values()]


def test_every_server_callback_answers_valid_requests(fuzz_server):
    session = _signed_in(fuzz_server)
    for output, entry in sorted(_server_callbacks(fuzz_server).items()):
        body = {"output": output, "outputs": _outputs(output), "changedPropIds": []}
        for part in ("inputs", "state"):
            body[part] = [{"id": dep["id"], "property": dep["property"], "value": VALID[(dep["id"], dep["property"])][1]}
                          for dep in entry.get(part, [])]
        if body["inputs"]:
            body["changedPropIds"] = [f"{body['inputs'][0]['id']}.{body['inputs'][0]['property']}"]
        fuzz_server.errors.drain()
        answer = _post(session, fuzz_server.url, _dumps(body), "application/json")
        assert answer.status_code in (200, 204), (output, answer.status_code, answer.text[:300],
                                                  fuzz_server.errors.drain())


def _act(fuzz_server, changed: str, **values) -> dict:
    """Send the /alerts page's action callback (as its dialogs do) and return its outcome."""
    [(output, entry)] = [(o, e) for o, e in _server_callbacks(fuzz_server).items() if ACT_OUTPUT in o]
    body = {"output": output, "outputs": _outputs(output), "changedPropIds": [changed]}
    for part in ("inputs", "state"):
        body[part] = [{"id": d["id"], "property": d["property"], "value": values.get(d["id"])}
                      for d in entry.get(part, [])]
    answer = _post(_signed_in(fuzz_server), fuzz_server.url, _dumps(body), "application/json")
    assert answer.status_code == 200, (answer.status_code, answer.text[:300], fuzz_server.errors.drain())
    return answer.json()["response"]["alerts-result"]["data"]


def test_the_alert_dialogs_act_for_a_user_who_may_write(fuzz_server):
    store = fuzz_server.services.alert_store
    done = _act(fuzz_server, "alerts-ack-confirm.n_clicks", **{"alerts-ack-confirm": 1, "alerts-ack-target": ALERT_IDS[3],
                                                             "alerts-ack-comment": "looking"})
    assert done["ok"], done
    assert store.alert(ALERT_IDS[3]).acknowledged and store.alert(ALERT_IDS[3]).ack_by == ADMIN
    before = len(store.silences())
    done = _act(fuzz_server, "alerts-silence-create.n_clicks", **{
        "alerts-silence-create": 1, "alerts-silence-matchers": 'alertname="PartnerQuota"\npartner_id=~"acme.*"',
        "alerts-silence-duration": "2h", "alerts-silence-comment": "fuzz"})
    assert done["ok"] and len(store.silences()) == before + 1, done
    done = _act(fuzz_server, "alerts-silences-grid.cellRendererData", **{"alerts-silences-grid": {
        "value": "expire", "colId": "id", "rowIndex": 0, "rowId": SILENCE_IDS[-1], "timestamp": 1}})
    assert done["ok"] and store.silence(SILENCE_IDS[-1]).state(time.time()) == "expired", done
    refused = _act(fuzz_server, "alerts-silence-create.n_clicks", **{
        "alerts-silence-create": 1, "alerts-silence-matchers": 'alertname=~"(?=x)"', "alerts-silence-duration": "2h"})
    assert not refused["ok"] and "look-arounds" in refused["message"], refused


# -- 3. cost bombs ----------------------------------------------------------------------------------------
def _bombs(now: int) -> dict[str, tuple[str, str, bytes | None]]:
    """name → (method, path and query, callback body)."""
    day = 86400
    many = "&".join(f"partner=p-{i:04d}" for i in range(3000))
    filters_5000 = {"range": "24h", "from": None, "to": None, "partners": [f"p-{i:04d}" for i in range(5000)],
                    "refresh": "30s"}
    kpis = "..ops-kpis.children...ops-success-gauge.children...ops-build-time-gauge.children.."
    callback = {"output": kpis, "outputs": _outputs(kpis), "changedPropIds": ["refresh-tick.n_intervals"],
                "inputs": [{"id": "refresh-tick", "property": "n_intervals", "value": 1},
                           {"id": "theme", "property": "data", "value": "light"}],
                "state": [{"id": "filters", "property": "data", "value": filters_5000}]}
    sync = "..url.search...filters.data...filter-range.value...filter-dates.start_date...filter-dates.end_date" \
           "...filter-partners.value...filter-refresh.value...filter-partners.options.."
    sync_body = {"output": sync, "outputs": _outputs(sync), "changedPropIds": ["filter-partners.value"],
                 "inputs": [{"id": "url", "property": "search", "value": ""},
                            {"id": "filter-range", "property": "value", "value": "24h"},
                            {"id": "filter-dates", "property": "start_date", "value": None},
                            {"id": "filter-dates", "property": "end_date", "value": None},
                            {"id": "filter-partners", "property": "value", "value": filters_5000["partners"]},
                            {"id": "filter-refresh", "property": "value", "value": "30s"}],
                 "state": [{"id": "filters", "property": "data", "value": filters_5000}]}
    return {
        "step 99999999999w": ("GET", "/api/v1/series/builds?step=99999999999w", None),
        "step 10081m over 2 days": ("GET", f"/api/v1/series/builds?step=10081m&from={now - 2 * day}", None),
        "step 10081m over 2 days, 100 partners": (
            "GET", f"/api/v1/series/builds?step=10081m&from={now - 2 * day}&partner={','.join(_IDS_100)}", None),
        "summary over 731 days": ("GET", f"/api/v1/summary?from={now - 731 * day}&to={now}", None),
        "series over 731 days": ("GET", f"/api/v1/series/builds?from={now - 731 * day}&to={now}&step=1h", None),
        "from in 2900": ("GET", "/api/v1/summary?from=2900-01-01T00:00:00Z", None),
        "from and to in 2900": ("GET", "/api/v1/series/builds?from=2900-01-01T00:00:00Z&to=2900-01-02T00:00:00Z",
                                None),
        "3000 partner arguments": ("GET", "/api/v1/summary?" + many, None),
        "3000 partners in one argument": ("GET", "/api/v1/summary?partner=" + quote(",".join(
            f"p-{i:04d}" for i in range(3000)), safe=","), None),
        "100 KB URL": ("GET", "/api/v1/summary?partner=" + "a" * 100_000, None),
        "100 KB path": ("GET", "/api/v1/series/" + "b" * 100_000, None),
        "callback filters of 5000 partners": ("POST", DASH_UPDATE, json.dumps(callback).encode()),
        "callback partner picker of 5000 partners": ("POST", DASH_UPDATE, json.dumps(sync_body).encode()),
        "forecast horizon of a million days": ("GET", "/api/v1/forecast/builds?horizon=999999d", None),
        "hourly forecast horizon of ten years": ("GET", "/api/v1/forecast/builds?step=1h&horizon=87600h", None),
        "export over 731 days": ("GET", f"/api/v1/export/stages.ndjson?from={now - 731 * day}", None),
        "export format of 5000 characters": ("GET", "/api/v1/export/builds." + "x" * 5000, None),
        "silence starting in 2900": ("POST", "/api/v1/silences", json.dumps({
            "matchers": [{"name": "alertname", "value": "X"}], "starts_at": "2900-01-01T00:00:00Z",
            "ends_at": "2900-01-02T00:00:00Z"}).encode()),
        "acknowledgement comment of 2 MB": ("POST", f"/api/v1/alerts/{ALERT_IDS[0]}/ack",
                                            json.dumps({"comment": "x" * 2_000_000}).encode()),
        # `re` would take minutes to match these against the labels; they are matched in linear time
        "silence of 32 backtracking regexes": ("POST", "/api/v1/silences", json.dumps({
            "matchers": [{"name": name, "value": ".*" * 12 + "!", "is_regex": True}
                         for name in ("alertname", "partner_id", "severity", "team") * 8],
            "ends_at": now + 3600}).encode()),
        "alert list under backtracking silences": ("GET", "/api/v1/alerts?state=all", None),
    }


# answers other than a 4xx that a bomb may get (still quick and cheap)
BOMB_ALLOWED = {
    "step 10081m over 2 days": (200,),  # a step longer than a short range: only the range is read, one point
    "silence of 32 backtracking regexes": (201,),
    "alert list under backtracking silences": (200,),
}


BOMB_NAMES = list(_bombs(0))


@pytest.mark.parametrize("name", BOMB_NAMES)
def test_cost_bomb_is_quick_and_cheap(fuzz_server, name):
    now = int(time.time())
    method, target, body = _bombs(now)[name]
    session = _signed_in(fuzz_server)
    # warm up the route with a cheap request, so first-use costs (imports, caches) are not counted
    session.get(fuzz_server.url + "/api/v1/summary", timeout=20)
    session.get(fuzz_server.url + "/api/v1/series/builds", timeout=20)
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    fuzz_server.errors.drain()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    started = time.monotonic()
    answer = session.request(method, fuzz_server.url + target, data=body, headers=headers, timeout=60)
    elapsed = time.monotonic() - started
    gc.collect()
    grown = process.memory_info().rss - rss_before
    request = _describe(method, target, body, headers.get("Content-Type"))
    assert answer.status_code < 500, (f"{answer.status_code} for {request}\n--- server log:\n"
                                      f"{fuzz_server.errors.drain()}")
    allowed = BOMB_ALLOWED.get(name, ())
    assert 400 <= answer.status_code < 500 or answer.status_code in allowed, \
        f"{answer.status_code} (not a 4xx) in {elapsed:.2f} s for {request}: {answer.text[:300]}"
    assert elapsed < BOMB_SECONDS, f"{elapsed:.2f} s for {request} ({answer.status_code})"
    assert grown < BOMB_RSS_BYTES, f"RSS grew {grown / 2**20:.0f} MB for {request}"


# -- 0 (continued). the routes outside the document get hostile requests too -----------------------
_PATH_SAMPLES = {"path": ["operations", "no/such/page", "%2e%2e/%2e%2e", "a" * 300, "é"],
                 "rest": ["v2/x", "v1/" + "z" * 300, "v1/summary/%00", "v1/events/../summary"],
                 "filename": ["../../etc/passwd", "bootstrap.min.css", "x" * 300, "%00.css"],
                 "package_name": ["dash", "nope", "../.."], "fingerprinted_path": ["dash_renderer.v9.js", "x.js", ".."]}
_JUNK_QUERIES = ["", "?next=//evil.example", "?x=" + "\x00", "?" + "&" * 500, "?next=" + "a" * 3000,
                 "?partner=*&from=garbage"]
_JUNK_BODIES = [(b"", None), (b"username=a&password=b", "application/x-www-form-urlencoded"), (b"{", "application/json"),
                (b"\xff\xfe", "text/plain"), (b"x" * 100_000, "application/octet-stream")]


def _concrete(rule: str, rng: random.Random) -> str:
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", lambda m: quote(rng.choice(_PATH_SAMPLES[m.group(1)]), safe="/%"), rule)


def test_routes_outside_the_document_survive_garbage(fuzz_server):
    """Every route of NOT_IN_OPENAPI that this server serves (Dash's callback endpoint has section 2),
    with junk paths, queries, bodies and methods, signed in and not: never a 5xx. Last in the
    module: it signs out (a session of its own) and fails sign-ins."""
    rng = random.Random(SEED)
    served = _served_routes(fuzz_server)
    signed_in = sign_in(fuzz_server.url, ADMIN, PASSWORD)
    anonymous = requests.Session()
    failures, sent = [], 0
    for rule, method in sorted(set(NOT_IN_OPENAPI) & served):
        if rule == DASH_UPDATE:
            continue
        for attempt in range(6):
            session = signed_in if attempt % 2 else anonymous
            url = fuzz_server.url + _concrete(rule, rng) + rng.choice(_JUNK_QUERIES)
            body, content_type = rng.choice(_JUNK_BODIES) if method != "GET" else (None, None)
            verb = method if attempt < 5 else rng.choice(["PUT", "PATCH", "DELETE", "TRACE"])
            if rule == "/login" and verb == "POST" and attempt % 2:
                continue  # failed sign-ins of the signed-in client would count against it
            fuzz_server.errors.drain()
            headers = {"Content-Type": content_type} if content_type else {}
            answer = session.request(verb, url, data=body, headers=headers, allow_redirects=False, timeout=20)
            sent += 1
            if answer.status_code >= 500:
                failures.append(f"{answer.status_code} for {_describe(verb, url, body, content_type)}\n--- server log:\n"
                                f"{fuzz_server.errors.drain() or '(nothing logged)'}")
    assert sent >= 5 * (len(set(NOT_IN_OPENAPI) & served) - 1)
    assert not failures, f"{len(failures)} server errors in {sent} requests:\n\n" + "\n\n".join(failures[:10])
