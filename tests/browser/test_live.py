"""The Live page in a real browser against a real `serve` process: a build progresses stage by stage
as its events are posted, alerts become toasts, and the live badge follows the server."""
from __future__ import annotations

import time

import pytest
import requests

from app.settings import Settings
from services.vocabulary import STAGES
from services.realtime import publish
from services.container import build_services
from tests.conftest import ServerProcess, free_port, server_env

pytestmark = pytest.mark.browser

BADGE = "#badge-live"


def post(server, event) -> None:
    assert requests.post(server.url + "/api/v1/events", json=event, timeout=10).status_code == 202


def test_live_page_follows_a_build_and_the_server(dash_duo, valkey_url, redis_client, tmp_path):
    port = free_port()
    env = server_env(REDIS_URL=valkey_url, LULUPAY_DATA_DIR=str(tmp_path), LULUPAY_COLLECTOR_INTERVAL_S="1")
    server = ServerProcess(env, port)
    try:
        dash_duo.driver.get(server.url + "/live")
        try:
            dash_duo.wait_for_text_to_equal(BADGE, "live: connected", timeout=30)
        except Exception as exc:  # what the browser and the server saw, to tell a slow start from a bug
            raise AssertionError(f"{exc}\nbrowser log: {dash_duo.get_logs()}\npage: {dash_duo.driver.page_source[:3000]}"
                                 f"\nserver: {server.output()[-4000:]}") from exc
        now = time.time()
        base = {"partner_id": "acme-bank", "build_id": "live-test-1"}
        post(server, {**base, "type": "build.started", "id": "lt-s", "ts": now, "build_type": "release",
                      "app_version": "7.1.0"})
        card = '#live-running [data-build-id="live-test-1"]'
        dash_duo.wait_for_contains_text(card, "0/6 stages", timeout=20)
        for i, stage in enumerate(STAGES[:3]):
            post(server, {**base, "type": "build.stage", "id": f"lt-{i}", "ts": now + i + 1, "stage": stage,
                          "status": "success", "duration_s": 1.5})
            dash_duo.wait_for_contains_text(card, f"{i + 1}/6 stages", timeout=20)
        assert len(dash_duo.find_elements(card + " .live-stage-success")) == 3
        assert len(dash_duo.find_elements(card + " .live-stage-running")) == 1
        post(server, {**base, "type": "build.finished", "id": "lt-f", "ts": now + 9, "build_type": "release",
                      "status": "success", "duration_s": 9.0})
        dash_duo.wait_for_element('#live-recent [data-build-id="live-test-1"][data-status="success"]', timeout=20)
        assert not dash_duo.find_elements(card)
        dash_duo.wait_for_contains_text("#live-feed", "live-test-1 finished: success", timeout=20)

        services = build_services(Settings(_env_file=None, redis_url=valkey_url))
        publish(services.store, "alerts", {"name": "LowBuildSuccessRate", "severity": "critical", "state": "firing",
                                           "summary": "success rate 82 % over 30 min"})
        dash_duo.wait_for_contains_text("#rt-toasts", "success rate 82 %", timeout=20)

        server.stop()
        dash_duo.wait_for_text_to_equal(BADGE, "live: reconnecting", timeout=30)
        server = ServerProcess(env, port)
        dash_duo.wait_for_text_to_equal(BADGE, "live: connected", timeout=60)
        # the only console errors: the refused connections while the server was down
        assert all("/ws" in entry["message"] for entry in dash_duo.get_logs() or [])
    finally:
        server.stop()
