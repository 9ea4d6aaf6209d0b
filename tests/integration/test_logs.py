"""Logs for real: the Procfile's gunicorn and the collector command with LULUPAY_LOG_FORMAT=json
write one JSON object per line (request lines with request id, route, method, status, duration);
request ids are taken from a sane X-Request-ID or made, and echoed; text request lines cannot be
forged through the URL."""
import json
import re
import signal
import subprocess
import sys
from datetime import datetime

import pytest
import requests

from tests.conftest import ROOT, GunicornProcess, server_env, wait_until

pytestmark = pytest.mark.integration

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def json_lines(text: str) -> list[dict]:
    """Every complete line of `text` as a JSON object (a line that is not one fails the test)."""
    complete = text[:text.rfind("\n") + 1]
    records = [json.loads(line) for line in complete.splitlines() if line.strip()]
    assert all(isinstance(record, dict) for record in records)
    return records


def test_gunicorn_writes_json_lines_with_the_request_fields(valkey_url, redis_client, tmp_path):
    server = GunicornProcess(valkey_url, tmp_path, LULUPAY_LOG_FORMAT="json")
    try:
        ok = requests.get(server.url + "/api/v1/summary", headers={"X-Request-ID": "trace-42.a:b"}, timeout=30)
        bad = requests.get(server.url + "/api/v1/summary", params={"from": "yesterday"}, timeout=30)
        assert ok.status_code == 200 and ok.headers["X-Request-ID"] == "trace-42.a:b"
        assert bad.status_code == 400 and GENERATED_ID.fullmatch(bad.headers["X-Request-ID"])
        wanted = {"trace-42.a:b", bad.headers["X-Request-ID"]}
        wait_until(lambda: wanted <= {r.get("request_id") for r in json_lines(server.output())},
                   message="both request lines")
    finally:
        server.stop()
    records = json_lines(server.output())  # every line, gunicorn's shutdown included
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(datetime.fromisoformat(r["time"]).utcoffset().total_seconds() == 0 for r in records)
    by_id = {r["request_id"]: r for r in records if r["logger"] == "lulupay.request"}
    line = by_id["trace-42.a:b"]
    assert (line["level"], line["method"], line["route"], line["path"], line["status"]) == \
        ("INFO", "GET", "/api/v1/summary", "/api/v1/summary", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    refused = by_id[bad.headers["X-Request-ID"]]
    assert refused["status"] == 400 and refused["route"] == "/api/v1/summary"
    assert any(r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker") for r in records)


def test_text_request_lines_when_asked_cannot_be_forged(valkey_url, redis_client, tmp_path):
    server = GunicornProcess(valkey_url, tmp_path, LULUPAY_ACCESS_LOG="true")
    try:
        ok = requests.get(server.url + "/api/v1/summary", timeout=30)
        requests.get(server.url + "/api/v1/partners/x%0A2026-01-01 00:00:00,000 ERROR forged: line", timeout=30)
        request_id = ok.headers["X-Request-ID"]
        wait_until(lambda: "\\x0a2026" in server.output() and request_id in server.output(),
                   message="the two request lines")
    finally:
        server.stop()
    lines = server.output().splitlines()
    assert any(re.search(rf"INFO lulupay\.request: GET /api/v1/summary 200 [\d.]+ ms route=/api/v1/summary "
                         rf"request_id={request_id}$", line) for line in lines)
    assert not any(line.startswith("2026-01-01") for line in lines)  # the newline was escaped, not written


@pytest.mark.parametrize("incoming", ["0af7651916cd43dd8448eb211c80319c", "req-1", "Root:1-67891233.abc", "a" * 128])
def test_a_sane_request_id_is_echoed(live_server, incoming):
    response = requests.get(live_server.url + "/healthz", headers={"X-Request-ID": incoming}, timeout=10)
    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["a" * 129, "bad id", "<script>", "-starts-with-a-dash", "ünïcode", "a/b", ""])
def test_an_unsafe_request_id_is_replaced(live_server, incoming):
    response = requests.get(live_server.url + "/healthz", headers={"X-Request-ID": incoming}, timeout=10)
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


def test_every_response_has_its_own_request_id(live_server):
    answers = [requests.get(live_server.url + "/healthz", timeout=10),
               requests.get(live_server.url + "/api/v1/partners/nobody", timeout=10),
               requests.get(live_server.url + "/api/v1/summary", params={"partner": "Bad Partner"}, timeout=10)]
    assert [a.status_code for a in answers] == [200, 404, 400]
    ids = [a.headers["X-Request-ID"] for a in answers]
    assert all(GENERATED_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3


def test_collector_command_writes_json_lines(valkey_url, redis_client, tmp_path):
    log_path = tmp_path / "collector.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "app", "collector", "--interval", "0.5", "--metrics-port", "0"],
                                cwd=ROOT,
                                env=server_env(REDIS_URL=valkey_url, LULUPAY_LOG_FORMAT="json",
                                               LULUPAY_DATA_DIR=str(tmp_path)),
                                stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: any("running every 0.5 s" in r["message"] for r in json_lines(log_path.read_text())),
                       timeout=60, message="the collector's start line")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    records = json_lines(log_path.read_text())
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records if r["logger"] == "lulupay"]
    assert any(re.fullmatch(r"collector metrics on http://127\.0\.0\.1:\d+/metrics", m) for m in messages)
