"""Honest HTTP: strict ingest, 404 for unknown routes, malformed callbacks and over-long URLs are
4xx naming the field, and nothing of a refused request is stored."""
from __future__ import annotations

import time

import orjson
import pytest
import requests

from tests.conftest import InProcessServer, stored_keys

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
