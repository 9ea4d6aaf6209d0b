"""Honest HTTP: strict ingest, 404 for unknown routes, malformed callbacks and over-long URLs are
4xx naming the field, and nothing of a refused request is stored — and the limits of every
parameter (docs/alerting.md#api-and-page, docs/exports.md#errors, docs/intelligence.md): forecast
horizons and steps, exports (datasets, formats, periods, partners; streamed, flat memory), the
alerts API (acknowledgement and silence comments, matchers and their regexes, silence times,
silences kept, list filters), each a 4xx naming the field, answered at once, nothing written."""
from __future__ import annotations

import gc
import random
import threading
import time

import orjson
import psutil
import pytest
import requests

from app.settings import Settings
from services.alerting.actions import MAX_SILENCES_KEPT
from services.alerting.silences import Matcher, Silence
from tests.alert_states import alert_state, seed
from tests.conftest import InProcessServer, stored_keys
from tests.reference import random_events

pytestmark = pytest.mark.integration


@pytest.fixture
def server(settings, redis_client):
    server = InProcessServer(settings)
    yield server
    server.stop()


def _event(**fields) -> dict:
    return {"id": "e-1", "type": "build.finished", "ts": time.time() - 60, "partner_id": "acme", "build_id": "b-1",
            "build_type": "release", "status": "success", "duration_s": 312.5, **fields}


@pytest.mark.parametrize("fields, field", [
    ({"duration_s": "312.5"}, "duration_s"),          # a number sent as a string
    ({"build_id": "b\x00-1"}, "build_id"),            # a NUL in a string
    ({"error_message": "bad\x00"}, "error_message"),
])
def test_ingest_is_strict(server, redis_client, fields, field):
    answer = requests.post(server.url + "/api/v1/events", data=orjson.dumps(_event(**fields)),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == [field]
    assert stored_keys(redis_client) == []


def test_ingest_needs_a_json_body(server, redis_client):
    answer = requests.post(server.url + "/api/v1/events", data=orjson.dumps(_event()),
                           headers={"Content-Type": "text/plain"}, timeout=10)
    assert answer.status_code == 415 and answer.json()["field"] == "Content-Type"
    assert stored_keys(redis_client) == []
    ok = requests.post(server.url + "/api/v1/events", json=_event(), timeout=10)
    assert ok.status_code == 202 and ok.json()["accepted"] == 1


def test_unknown_api_paths_are_404_json_and_unknown_pages_404_pages(server):
    api = requests.get(server.url + "/api/v2/whatever", timeout=10)
    assert api.status_code == 404 and api.json()["field"] == "path"
    page = requests.get(server.url + "/no-such-page", timeout=10)
    assert page.status_code == 404 and "text/html" in page.headers["Content-Type"]
    assert requests.get(server.url + "/operations", timeout=10).status_code == 200


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"output": "nope.children"}', b'{"output": "ops-stages.children", "outputs": {}}',
    b'{"output": "ops-stages.children", "outputs": {}, "inputs": [1, 2], "state": []}',
    b'{"output": "rt-toasts.children", "outputs": {}, "inputs": [], "state": []}',
])
def test_malformed_callback_requests_are_400(server, body):
    answer = requests.post(server.url + "/_dash-update-component", data=body,
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"]


def test_star_is_not_a_partner_in_callbacks(server):
    body = {"output": "ops-stages.children", "outputs": {"id": "ops-stages", "property": "children"},
            "inputs": [{"id": "refresh-tick", "property": "n_intervals", "value": 1},
                       {"id": "theme", "property": "data", "value": "light"}],
            "state": [{"id": "filters", "property": "data", "value": {"range": "24h", "partners": ["*"]}}],
            "changedPropIds": ["refresh-tick.n_intervals"]}
    answer = requests.post(server.url + "/_dash-update-component", data=orjson.dumps(body),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "partner"


def test_overlong_urls_are_414(server):
    answer = requests.get(server.url + "/api/v1/summary?partner=" + "a" * 9000, timeout=10)
    assert answer.status_code == 414 and answer.json()["field"] == "url"


@pytest.mark.parametrize("query, field", [
    ("/api/v1/series/builds?step=99999999999w", "step"),
    ("/api/v1/summary?from={two_years_ago}", "from"),
    ("/api/v1/summary?from=2900-01-01T00:00:00Z&to=2900-02-01T00:00:00Z", "to"),
    ("/api/v1/summary?" + "&".join(f"partner=p{i}" for i in range(3000)), "partner"),
])
def test_cost_bombs_answer_4xx_at_once(server, query, field):
    now = time.time()
    url = server.url + query.format(two_days_ago=int(now - 2 * 86400), two_years_ago=int(now - 731 * 86400))
    started = time.monotonic()
    answer = requests.get(url, timeout=30)
    assert answer.status_code in (400, 414), answer.text
    assert time.monotonic() - started < 1.0
    if answer.status_code == 400:
        assert answer.json()["field"] == field


def test_a_step_longer_than_the_range_reads_only_the_range(server):
    # a week and a minute: no multiple of the hour, so minute buckets; the one window is read up to
    # the range's end, not for the whole step
    started = time.monotonic()
    answer = requests.get(f"{server.url}/api/v1/series/builds?step=10081m&from={int(time.time() - 2 * 86400)}",
                          timeout=30)
    assert answer.status_code == 200 and len(answer.json()["points"]) == 1
    assert time.monotonic() - started < 1.0


def test_openapi_lists_every_api_route(server):
    spec = requests.get(server.url + "/openapi.json", timeout=10).json()
    routes = {rule.rule.replace("<", "{").replace(">", "}").replace("{path:", "{").replace("{string:", "{")
              for rule in server.app.server.url_map.iter_rules() if rule.rule.startswith("/api/v1/")}
    assert routes <= set(spec["paths"]), routes - set(spec["paths"])


def test_two_years_of_a_hundred_partners_is_refused_before_reading(server):
    ids = ",".join(f"p{i}" for i in range(100))
    started = time.monotonic()
    answer = requests.get(f"{server.url}/api/v1/summary?partner={ids}&from={int(time.time() - 729 * 86400)}",
                          timeout=30)
    assert answer.status_code == 400 and answer.json()["field"] == "partner"
    assert time.monotonic() - started < 1.0
    # the same range for a few partners is fine
    assert requests.get(f"{server.url}/api/v1/summary?partner=p1,p2&from={int(time.time() - 729 * 86400)}",
                        timeout=30).status_code == 200


@pytest.mark.parametrize("pathname", ["operations", "", "\\\\operations"])
def test_a_router_request_with_a_relative_path_is_400(server, pathname):
    body = {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "state": [{"id": "theme", "property": "data", "value": "light"}],
            "changedPropIds": ["_pages_location.pathname"]}
    requests.get(server.url + "/_dash-dependencies", timeout=10)  # Dash registers its router callback
    answer = requests.post(server.url + "/_dash-update-component", data=orjson.dumps(body),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "_pages_location.pathname"


def test_changed_props_must_be_the_callbacks_own_inputs(server):
    body = {"output": "nav-links.children", "outputs": {"id": "nav-links", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": "/"},
                       {"id": "url", "property": "search", "value": ""}],
            "state": [], "changedPropIds": ["{bad.value"]}
    answer = requests.post(server.url + "/_dash-update-component", data=orjson.dumps(body),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["field"] == "changedPropIds"
    body["changedPropIds"] = ["url.pathname"]
    assert requests.post(server.url + "/_dash-update-component", data=orjson.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=10).status_code == 200



# -- the limits of the newer parameters -----------------------------------------------------------------
DAY = 86400


@pytest.fixture(scope="module")
def open_server(valkey_url, tmp_path_factory):
    """One open-access server for the parameter tables below (they refuse before reading anything)."""
    server = InProcessServer(Settings(_env_file=None, redis_url=valkey_url, ingest_tokens="", collector_enabled=False,
                                      data_dir=tmp_path_factory.mktemp("limits") / "data", forecast_wait_s=0.2))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_login_server(valkey_url, tmp_path_factory):
    server = InProcessServer(Settings(_env_file=None, redis_url=valkey_url, ingest_tokens="x", auth="login",
                                      collector_enabled=False, data_dir=tmp_path_factory.mktemp("limits-login") / "d",
                                      forecast_wait_s=0.2))
    yield server
    server.stop()


@pytest.mark.parametrize("query, field", [
    ("/api/v1/forecast/builds?horizon=31d", "horizon"),               # daily: 1 to 30 days
    ("/api/v1/forecast/builds?horizon=0", "horizon"),
    ("/api/v1/forecast/builds?horizon=-1d", "horizon"),
    ("/api/v1/forecast/builds?horizon=1.5d", "horizon"),
    ("/api/v1/forecast/builds?horizon=12h", "horizon"),               # not a whole number of days
    ("/api/v1/forecast/builds?horizon=9999999d", "horizon"),
    ("/api/v1/forecast/builds?horizon=2w", "horizon"),
    ("/api/v1/forecast/builds?horizon=%D9%A1%D9%A4d", "horizon"),     # Arabic-Indic digits
    ("/api/v1/forecast/builds?step=1h&horizon=73h", "horizon"),       # hourly: 1 to 72 hours
    ("/api/v1/forecast/builds?step=1h&horizon=4d", "horizon"),
    ("/api/v1/forecast/builds?step=1w", "step"),
    ("/api/v1/forecast/builds?step=5m", "step"),
    ("/api/v1/forecast/builds?partner=" + ",".join(f"p{i}" for i in range(101)), "partner"),
    ("/api/v1/anomalies?step=1w", "step"),
    ("/api/v1/anomalies?step=1h&from={two_months_ago}", "step"),       # hourly rollups are kept 35 days
    ("/api/v1/anomalies?metric=cpu", "metric"),
    ("/api/v1/failures?from={two_years_ago}", "from"),
    ("/api/v1/bottlenecks?to={in_two_days}", "to"),
])
def test_intelligence_parameters_are_bounded(open_server, query, field):
    now = time.time()
    url = open_server.url + query.format(two_months_ago=int(now - 60 * DAY), two_years_ago=int(now - 731 * DAY),
                                    in_two_days=int(now + 2 * DAY))
    started = time.monotonic()
    answer = requests.get(url, timeout=30)
    assert (answer.status_code, answer.json().get("field")) == (400, field), answer.text
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path, field", [
    ("/api/v1/export/raw.csv", "dataset"),
    ("/api/v1/export/builds.xlsx", "format"),
    ("/api/v1/export/builds.CSV", "format"),
    ("/api/v1/export/builds." + "x" * 5000, "format"),
    ("/api/v1/export/builds.csv?from={two_years_ago}", "from"),       # the day rollups keep 730 days
    ("/api/v1/export/stages.ndjson?from={now}&to={day_ago}", "from"),  # from after to
    ("/api/v1/export/assets.json?to={in_two_days}", "to"),            # at most a day ahead
    ("/api/v1/export/builds.csv?from=yesterday", "from"),
    ("/api/v1/export/builds.csv?partner=" + ",".join(f"p{i}" for i in range(101)), "partner"),
    ("/api/v1/export/alerts.csv?partner=*", "partner"),
])
def test_export_parameters_are_bounded(open_server, path, field):
    now = time.time()
    url = open_server.url + path.format(two_years_ago=int(now - 731 * DAY), now=int(now), day_ago=int(now - DAY),
                                   in_two_days=int(now + 2 * DAY))
    started = time.monotonic()
    answer = requests.get(url, timeout=30)
    assert (answer.status_code, answer.json().get("field")) == (400, field), answer.text[:300]
    assert time.monotonic() - started < 1.0


def test_a_big_export_is_streamed_in_flat_memory(server):
    """~20,000 stage rows leave in chunks of about 64 KiB as they are read (no Content-Length, no
    body built whole), and the server's memory does not grow with them."""
    now = time.time()
    events = random_events(random.Random(7), 3500, now - 20 * 3600, now - 60, ["acme", "zenith"])
    for first in range(0, len(events), 5000):
        server.services.ingest.ingest_batch(events[first:first + 5000])
    url = f"{server.url}/api/v1/export/stages.csv?from={int(now - DAY)}"
    requests.get(url, timeout=60).close()  # first use (imports, caches) not counted
    process, peak, done = psutil.Process(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    gc.collect()
    before = process.memory_info().rss
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with requests.get(url, stream=True, timeout=60) as answer:
        assert answer.status_code == 200 and "Content-Length" not in answer.headers
        assert answer.headers.get("Transfer-Encoding") == "chunked"
        sizes = [len(chunk) for chunk in answer.raw.stream(1 << 20, decode_content=False)]
    done.set()
    watcher.join()
    rows = sum(sizes) // 60  # about 60 bytes a row
    assert sum(sizes) > 1_000_000 and len(sizes) >= 10 and max(sizes) <= 256 * 1024, (rows, len(sizes), max(sizes))
    assert peak[0] - before < 40 * 2**20, f"RSS grew {(peak[0] - before) / 2**20:.0f} MB streaming {sum(sizes)} bytes"


# The alerts API as an admin with a personal token (no CSRF needed): (method, path, body, status, field).
@pytest.fixture
def admin(module_login_server, redis_client):
    """The (flushed) login server with an admin's token, a firing and a resolved alert."""
    login_server = module_login_server
    services = login_server.services
    services.users.add("ada", "admin", [], "correct horse battery")
    login_server.headers = {"Authorization": f"Bearer {services.users.new_token('ada')}"}
    now = time.time()
    login_server.alerts = [alert_state("PartnerFailures", "critical", "firing", partner="acme", started_at=now - 600),
                           alert_state("PartnerQuota", "warning", "resolved", partner="acme", started_at=now - 7200)]
    seed(services, login_server.alerts)
    return login_server


def _matchers(*pairs, regex=False) -> list[dict]:
    return [{"name": name, "value": value, "is_regex": regex} for name, value in pairs]


_ONE = _matchers(("alertname", "PartnerFailures"))
ALERT_LIMITS = [
    # acknowledgement comments: at most 1024 characters, no NUL
    ("ack", {"comment": "x" * 1025}, 400, "comment"),
    ("ack", {"comment": "a\x00b"}, 400, "comment"),
    ("ack", {"comment": 7}, 400, "comment"),
    # silence comments: the same
    ("silence", {"matchers": _ONE, "comment": "x" * 1025}, 400, "comment"),
    ("silence", {"matchers": _ONE, "comment": "\x00"}, 400, "comment"),
    # matchers: 1 to 32; names label names; values at most 1024, regexes at most 256 and RE2's syntax
    ("silence", {"matchers": []}, 400, "matchers"),
    ("silence", {"matchers": _matchers(*[(f"l{i}", "v") for i in range(33)])}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("a" * 129, "v"))}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "x" * 1025))}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "x" * 257), regex=True)}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "(a)\\1"), regex=True)}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "a(?=b)"), regex=True)}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "(?i)a"), regex=True)}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", "a{9999}"), regex=True)}, 400, "matchers"),
    ("silence", {"matchers": _matchers(("team", ".*"), regex=True)}, 400, "matchers"),  # silences everything
    # times: starts_at at most a day back (then it is now) and 90 days ahead; ends_at in the future,
    # after starts_at, at most 90 days after it; both RFC 3339 or epoch seconds before the year 3000
    ("silence", {"matchers": _ONE, "starts_at": "+91d"}, 400, "starts_at"),
    ("silence", {"matchers": _ONE, "starts_at": "-2d"}, 400, "starts_at"),
    ("silence", {"matchers": _ONE, "starts_at": 1e13}, 400, "starts_at"),          # milliseconds
    ("silence", {"matchers": _ONE, "starts_at": "2900-01-01T00:00:00Z"}, 400, "starts_at"),
    ("silence", {"matchers": _ONE, "ends_at": "-1h"}, 400, "ends_at"),
    ("silence", {"matchers": _ONE, "starts_at": "+2h", "ends_at": "+1h"}, 400, "ends_at"),
    ("silence", {"matchers": _ONE, "ends_at": "+91d"}, 400, "ends_at"),
    ("silence", {"matchers": _ONE, "starts_at": "+10d", "ends_at": "+101d"}, 400, "ends_at"),
    ("silence", {"matchers": _ONE, "ends_at": "NaN"}, 400, "ends_at"),
    # list filters
    ("GET /api/v1/alerts?state=open", None, 400, "state"),
    ("GET /api/v1/alerts?severity=" + ",".join(["critical"] * 50 + ["page"]), None, 400, "severity"),
    ("GET /api/v1/alerts?partner=" + ",".join(f"p{i}" for i in range(101)), None, 400, "partner"),
    ("GET /api/v1/silences?state=firing", None, 400, "state"),
    ("GET /api/v1/silences?partner=*", None, 400, "partner"),
    ("GET /api/v1/alert-rules?partner=" + "a" * 65, None, 400, "partner"),
]


def _relative(body: dict, now: float) -> dict:
    """"+2h", "-1d", "+91d" → epoch seconds from now; ends_at defaults to an hour from now."""
    units = {"h": 3600, "d": DAY}
    out = {"ends_at": now + 3600, **body}
    for name in ("starts_at", "ends_at"):
        value = out.get(name)
        if isinstance(value, str) and value[:1] in "+-" and value[-1] in units:
            out[name] = now + float(value[:-1]) * units[value[-1]]
    return out


@pytest.mark.parametrize("what, body, status, field", ALERT_LIMITS,
                         ids=[f"{w[:40]}-{f}-{i}" for i, (w, _, _, f) in enumerate(ALERT_LIMITS)])
def test_alert_api_parameters_are_bounded(admin, what, body, status, field):
    alert_id = admin.alerts[0].id
    now = time.time()
    started = time.monotonic()
    if what == "ack":
        answer = requests.post(f"{admin.url}/api/v1/alerts/{alert_id}/ack", json=body, headers=admin.headers,
                               timeout=10)
    elif what == "silence":
        answer = requests.post(f"{admin.url}/api/v1/silences", json=_relative(body, now), headers=admin.headers,
                               timeout=10)
    else:
        answer = requests.get(admin.url + what.split(" ", 1)[1], headers=admin.headers, timeout=10)
    assert (answer.status_code, answer.json().get("field")) == (status, field), answer.text[:300]
    assert field in answer.json()["error"] or answer.json()["error"].startswith("matcher")
    assert time.monotonic() - started < 1.0
    assert admin.services.alert_store.silences() == []
    assert not admin.services.alert_store.alert(alert_id).acknowledged


def test_a_start_in_the_recent_past_is_now(admin):
    now = time.time()
    answer = requests.post(f"{admin.url}/api/v1/silences", headers=admin.headers, timeout=10,
                           json={"matchers": _ONE, "starts_at": now - 12 * 3600, "ends_at": now + 3600})
    assert answer.status_code == 201, answer.text
    [silence] = admin.services.alert_store.silences()
    assert now - 5 <= silence.starts_at <= time.time() and answer.json()["state"] == "active"


def test_regex_silences_cost_time_linear_in_the_label_values(admin):
    """Regexes that make Python's `re` backtrack for minutes against a long label value, in a
    silence of 32 such matchers: the alert list (which matches every alert against every silence)
    answers at once, and right."""
    now = time.time()
    long_label = alert_state("PartnerFailures", "critical", "firing", partner="zenith", started_at=now - 60,
                             team="a" * 1000)
    seed(admin.services, [long_label])
    slow = [".*" * 12 + "!", "(a|a)*!", "(a|aa)*b", "[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*!"]
    matchers = _matchers(*[(name, slow[i % 4]) for i, name in enumerate(["team", "alertname", "partner_id",
                                                                         "severity"] * 8)], regex=True)
    started = time.monotonic()
    made = requests.post(f"{admin.url}/api/v1/silences", headers=admin.headers, timeout=10,
                         json={"matchers": matchers, "ends_at": now + 3600})
    listed = requests.get(f"{admin.url}/api/v1/alerts?state=all", headers=admin.headers, timeout=10)
    assert made.status_code == 201 and listed.status_code == 200, (made.text[:200], listed.text[:200])
    assert time.monotonic() - started < 1.0
    assert all(a["silenced_by"] == [] for a in listed.json()["alerts"])
    # and a regex that does match silences the long-labelled alert
    hit = requests.post(f"{admin.url}/api/v1/silences", headers=admin.headers, timeout=10, json={
        "matchers": _matchers(("team", "(a|aa)*"), ("partner_id", "zen.*"), regex=True), "ends_at": now + 3600})
    rows = {a["id"]: a for a in requests.get(f"{admin.url}/api/v1/alerts", headers=admin.headers, timeout=10)
            .json()["alerts"]}
    assert rows[long_label.id]["silenced_by"] == [hit.json()["id"]] and rows[admin.alerts[0].id]["silenced_by"] == []


def test_silences_kept_are_bounded(admin):
    """At most MAX_SILENCES_KEPT silences (expired ones included, kept a retention window): then 409."""
    now = time.time()
    ended = {f"{i:032x}": orjson.dumps(Silence(id=f"{i:032x}", matchers=(Matcher("alertname", "X"),),
                                               starts_at=now - 7200, ends_at=now - 3600, author="ada").to_dict())
             for i in range(MAX_SILENCES_KEPT)}
    admin.services.store.client.hset(admin.services.store.keys.alert_silences(), mapping=ended)
    started = time.monotonic()
    answer = requests.post(f"{admin.url}/api/v1/silences", headers=admin.headers, timeout=30,
                           json={"matchers": _ONE, "ends_at": now + 3600})
    assert (answer.status_code, answer.json()["field"]) == (409, "matchers"), answer.text
    assert "10000 silences are kept" in answer.json()["error"]
    assert time.monotonic() - started < 2.0
    assert len(admin.services.alert_store.silences()) == MAX_SILENCES_KEPT
