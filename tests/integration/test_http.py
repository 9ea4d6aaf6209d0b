"""The HTTP contract end to end, through a real server process and a real Valkey."""
import json
import random
import time

import pytest
import requests

from tests.conftest import ServerProcess, free_port, server_env, stored_keys
from tests.reference import assert_summary_matches, random_events, reference_summary

pytestmark = pytest.mark.integration

PARTNERS = ["acme-bank", "zenith-pay", "orbit-wallet"]


def post(server, body, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.url + "/api/v1/events", data=data, timeout=30,
                         headers={"Content-Type": "application/json", **kwargs.pop("headers", {})}, **kwargs)


def test_batch_accepted_then_replayed_as_duplicates(live_server, redis_client):
    now = time.time()
    events = random_events(random.Random(11), 40, now - 7200, now - 60, PARTNERS)
    first = post(live_server, {"events": events})
    assert first.status_code == 202 and first.json() == {"accepted": len(events), "duplicates": 0}
    again = post(live_server, {"events": events[::-1]})
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": len(events)}


def test_single_event_object_is_accepted(live_server, redis_client):
    event = random_events(random.Random(12), 1, time.time() - 600, time.time() - 60, PARTNERS)[-1]
    response = post(live_server, event)
    assert response.status_code == 202 and response.json()["accepted"] == 1


def test_summary_equals_hand_computed_figures_after_replays_and_a_bad_batch(live_server, redis_client):
    now = time.time()
    rng = random.Random(13)
    events = random_events(rng, 300, now - 3 * 86400, now - 60, PARTNERS)
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert post(live_server, {"events": shuffled[:700]}).status_code == 202
    bad = shuffled[700:] + [dict(shuffled[0], id="new-but-bad", partner_id="NOT VALID")]
    rejected = post(live_server, {"events": bad})
    assert rejected.status_code == 422
    assert rejected.json()["details"] == [{"index": len(bad) - 1, "field": "partner_id",
                                           "message": rejected.json()["details"][0]["message"]}]
    assert post(live_server, {"events": shuffled}).json() == {"accepted": len(events) - 700, "duplicates": 700}
    start, end = int(now - 2 * 86400) // 3600 * 3600, int(now) // 60 * 60 + 60
    for partner_args in ([], ["acme-bank"], ["acme-bank", "orbit-wallet"]):
        params = [("from", str(start)), ("to", str(end))] + [("partner", p) for p in partner_args]
        response = requests.get(live_server.url + "/api/v1/summary", params=params, timeout=30)
        assert response.status_code == 200
        assert_summary_matches(response.json(), reference_summary(events, start, end, set(partner_args) or None))


def test_rfc3339_range_arguments(live_server, redis_client):
    response = requests.get(live_server.url + "/api/v1/summary",
                            params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00+00:00"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["builds_total"] == 0 and response.json()["success_rate"] is None


@pytest.mark.parametrize("body, field", [
    ({"events": "nope"}, "events"),
    ([1, 2], "body"),
])
def test_wrong_shapes_are_422_naming_the_field(live_server, redis_client, body, field):
    response = post(live_server, body)
    assert response.status_code == 422 and response.json()["field"] == field


def test_malformed_json_is_400(live_server):
    response = post(live_server, b'{"events": [')
    assert response.status_code == 400 and "malformed JSON" in response.json()["error"]


def test_too_many_events_is_413(live_server, redis_client):
    event = random_events(random.Random(14), 1, time.time() - 600, time.time() - 60, PARTNERS)[-1]
    response = post(live_server, {"events": [dict(event, id=str(i)) for i in range(5001)]})
    assert response.status_code == 413 and "5000" in response.json()["error"]
    assert stored_keys(redis_client) == []


def test_body_over_5_mib_is_413(live_server, redis_client):
    response = post(live_server, b'{"events": [' + b" " * (5 * 1024 * 1024 + 10) + b"]}")
    assert response.status_code == 413


@pytest.mark.parametrize("params, field", [
    ({"from": "yesterday"}, "from"), ({"to": "soon"}, "to"), ({"from": "200", "to": "100"}, "from"),
    ({"partner": "Bad Partner"}, "partner"),
])
def test_bad_query_arguments_are_400(live_server, params, field):
    response = requests.get(live_server.url + "/api/v1/summary", params=params, timeout=10)
    assert response.status_code == 400 and response.json()["field"] == field


def test_series_contract(live_server, redis_client):
    now = time.time()
    events = random_events(random.Random(15), 100, now - 6 * 3600, now - 60, PARTNERS)
    post(live_server, {"events": events})
    start = int(now - 6 * 3600) // 3600 * 3600
    response = requests.get(live_server.url + "/api/v1/series/builds", params={"from": start, "to": start + 6 * 3600, "step": "1h"}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["metric"] == "builds" and body["step_s"] == 3600
    assert [p[0] for p in body["points"]] == [start + i * 3600 for i in range(6)]
    assert sum(p[1] for p in body["points"]) == reference_summary(events, start, start + 6 * 3600)["builds_total"]
    auto = requests.get(live_server.url + "/api/v1/series/success_rate", params={"from": start}, timeout=10).json()
    assert auto["step_s"] >= 60 and all(v is None or 0 <= v <= 1 for _, v in auto["points"])
    assert requests.get(live_server.url + "/api/v1/series/nonsense", timeout=10).status_code == 404
    assert requests.get(live_server.url + "/api/v1/series/builds", params={"step": "7s"}, timeout=10).status_code == 400


def test_partners_endpoint(live_server, redis_client):
    now = time.time()
    post(live_server, {"id": "p1", "type": "partner.upserted", "ts": now - 100, "partner_id": "acme-bank",
                       "name": "Acme Bank", "tier": "pro", "monthly_build_quota": 10, "status": "active"})
    post(live_server, {"events": [e for e in random_events(random.Random(16), 5, now - 600, now - 60, ["acme-bank"])]})
    body = requests.get(live_server.url + "/api/v1/partners", timeout=10).json()
    assert [p["partner_id"] for p in body["partners"]] == ["acme-bank"]
    assert body["partners"][0]["builds_this_month"] == 5 and body["partners"][0]["quota_used_ratio"] == 0.5
    one = requests.get(live_server.url + "/api/v1/partners/acme-bank", timeout=10).json()
    assert one["history"][0]["change"] == "created"
    assert requests.get(live_server.url + "/api/v1/partners/nobody", timeout=10).status_code == 404


def test_health_ready_and_openapi(live_server):
    assert requests.get(live_server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    assert requests.get(live_server.url + "/readyz", timeout=10).status_code == 200
    spec = requests.get(live_server.url + "/openapi.json", timeout=10).json()
    assert "/api/v1/events" in spec["paths"]
    assert set(spec["components"]["schemas"]["BuildFinished"]["properties"]) >= {"build_id", "duration_s", "failed_stage"}


@pytest.fixture(scope="module")
def token_server(valkey_url, tmp_path_factory):
    server = ServerProcess(server_env(REDIS_URL=valkey_url, LULUPAY_INGEST_TOKENS="tok-one, tok-two",
                                      LULUPAY_DATA_DIR=str(tmp_path_factory.mktemp("tok"))), free_port())
    yield server
    server.stop()


@pytest.mark.parametrize("header, status", [
    (None, 401), ("Bearer wrong", 401), ("Basic tok-one", 401), ("Bearer tok-two", 202),
])
def test_ingest_token(token_server, redis_client, header, status):
    event = random_events(random.Random(17), 1, time.time() - 600, time.time() - 60, PARTNERS)[-1]
    response = post(token_server, event, headers={"Authorization": header} if header else {})
    assert response.status_code == status
    if status == 401:
        assert response.json()["field"] == "Authorization"


def test_store_unreachable_is_503_with_retry_after(tmp_path):
    server = ServerProcess(server_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                                      LULUPAY_DATA_DIR=str(tmp_path)), free_port())
    try:
        event = random_events(random.Random(18), 1, time.time() - 600, time.time() - 60, PARTNERS)[-1]
        response = post(server, event)
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert requests.get(server.url + "/readyz", timeout=30).status_code == 503
        assert requests.get(server.url + "/api/v1/summary", timeout=30).status_code == 503
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
