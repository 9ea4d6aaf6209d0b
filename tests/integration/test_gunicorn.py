"""The Procfile's web line, run as written: gunicorn with several gthread workers on one store."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT, GunicornProcess, free_port, server_env, wait_until
from tests.reference import random_events

pytestmark = pytest.mark.integration


def test_procfile_web_line_serves_ingest_and_reads(valkey_url, redis_client):
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    port = free_port()
    env = server_env(REDIS_URL=valkey_url, PORT=str(port), WEB_CONCURRENCY="2", GUNICORN_THREADS="4",
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.Popen(["bash", "-c", "exec " + web.split(":", 1)[1].strip()], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/readyz", timeout=2).ok, timeout=60, message="gunicorn start")
        now = time.time()
        events = random_events(random.Random(31), 50, now - 3000, now - 60, ["acme-bank"])
        for i in range(0, len(events), 40):  # several requests, spread over both workers
            assert requests.post(url + "/api/v1/events", json={"events": events[i:i + 40]}, timeout=30).status_code == 202
        summary = requests.get(url + "/api/v1/summary", timeout=30).json()
        assert summary["builds_total"] == sum(1 for e in events if e["type"] == "build.finished")
        assert requests.get(url + "/operations", timeout=30).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert "Booting worker" in output and output.count("Booting worker") >= 2


def _versions() -> dict[str, str]:
    """The versions a response must not spell: the app's stack, as installed here."""
    import platform
    from importlib.metadata import version

    packages = ("dash", "plotly", "dash-bootstrap-components", "dash-ag-grid", "flask", "werkzeug", "gunicorn")
    return {"python": platform.python_version(), **{name: version(name) for name in packages}}


def _spelled_versions(text: str) -> list[str]:
    return [f"{name} {version}" for name, version in _versions().items()
            if version in text or version.replace(".", "_") in text]


def test_no_versions_in_headers_page_or_dash_endpoints(valkey_url, redis_client, tmp_path):
    import re

    server = GunicornProcess(valkey_url, tmp_path)
    try:
        page = requests.get(server.url + "/operations", timeout=30)
        config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>',
                                      page.text, re.S).group(1))
        dash_answers = [requests.get(server.url + path, headers={"Referer": server.url + "/operations"}, timeout=30)
                        for path in ("/_dash-layout", "/_dash-dependencies")]
        # the page still loads: every script, stylesheet and icon it names is served
        linked = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
        assert linked and all(requests.get(server.url + url, timeout=30).status_code == 200 for url in linked)
    finally:
        server.stop()
    for answer in [page, *dash_answers]:
        assert answer.status_code == 200
        assert answer.headers["Server"] == "gunicorn"  # the product, never its version
        assert not any(name.lower() in ("x-powered-by", "x-runtime", "x-version") for name in answer.headers)
        assert _spelled_versions(answer.text) == [] and _spelled_versions(str(answer.headers)) == []
    assert not {"dash_version", "python_version", "dash_version_url", "ddk_version", "plotly_version"} & set(config)
    assert config["disable_version_check"] is True and config["serve_locally"] is True
    assert any("/_dash-component-suites/dash/dash-renderer/" in url for url in linked)


def test_production_refuses_a_weak_secret_once_without_printing_it(tmp_path):
    import secrets

    weak = "LuluPay-Production-Secret-2026!!"  # 32 characters, guessable
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    env = server_env(REDIS_URL="redis://127.0.0.1:1/0", PORT=str(free_port()), LULUPAY_ENV="production",
                     LULUPAY_SECRET_KEY=weak, LULUPAY_INGEST_TOKENS=secrets.token_urlsafe(32),
                     PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(["bash", "-c", "exec " + web.split(":", 1)[1].strip()], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "settings refused: production mode refuses to start: LULUPAY_SECRET_KEY is too weak" in output
    assert weak not in output and "Booting worker" not in output


def test_graceful_stop_closes_open_websockets_at_once(valkey_url, redis_client, tmp_path):
    """SIGTERM: gunicorn would wait graceful_timeout (30 s) for a /ws socket its page keeps open;
    each worker closes them with 1001 instead, and the stop takes about a second."""
    import websocket

    server = GunicornProcess(valkey_url, tmp_path)
    sockets = [websocket.create_connection(server.url.replace("http://", "ws://") + "/ws", timeout=20)
               for _ in range(4)]  # on both workers, most likely
    try:
        for ws in sockets:
            ws.send(json.dumps({"subscribe": ["builds"]}))
            assert json.loads(ws.recv())["stream"] == "subscribed"
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGTERM)
        codes = []
        for ws in sockets:
            opcode, frame = ws.recv_data_frame(True)
            while opcode != websocket.ABNF.OPCODE_CLOSE:
                opcode, frame = ws.recv_data_frame(True)
            codes.append(int.from_bytes(frame.data[:2], "big"))
        assert server.proc.wait(timeout=25) == 0
        assert time.monotonic() - started < 10, "the stop waited for the sockets (graceful_timeout is 30 s)"
        assert codes == [1001] * len(sockets)
    finally:
        for ws in sockets:
            ws.close()
        server.stop()


def test_graceful_stop_flushes_the_buffered_statistics_and_finishes_the_request_in_flight(valkey_url, redis_client,
                                                                                          tmp_path):
    """SIGTERM while each worker holds request statistics it has not written yet (it flushes every
    LULUPAY_COLLECTOR_INTERVAL_S, here 300 s) and while a worker is reading an ingest request (half
    of its body sent): the rest of the body is read, the batch stored and answered 202, and every
    counted request reaches the store before the workers exit 0."""
    import socket

    from services.store.keys import RESOLUTIONS, Keys

    keys = Keys("flush")
    server = GunicornProcess(valkey_url, tmp_path, LULUPAY_KEY_PREFIX="flush", LULUPAY_COLLECTOR_INTERVAL_S="300")
    client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        for _ in range(25):  # 404s: nothing else this server answers is a 4xx
            assert requests.get(server.url + "/no-such-page", timeout=10).status_code == 404
        assert not list(redis_client.scan_iter(match=f"{keys.tag}:http:*"))  # still in the workers
        now = time.time()
        batch = random_events(random.Random(5), 400, now - 3600, now - 60, ["acme-bank"])
        body = json.dumps({"events": batch}).encode()
        client.sendall(f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                       f"Connection: close\r\n\r\n".encode() + body[:len(body) // 2])
        wait_until(lambda: _accepted_by_a_worker(server, client.getsockname()[1]), timeout=10,
                   message="a worker accepted the ingest connection")
        os.killpg(server.proc.pid, signal.SIGTERM)
        client.sendall(body[len(body) // 2:])
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
        assert server.proc.wait(timeout=30) == 0
        counted = sum(int(redis_client.hget(key, "n:4xx") or 0)
                      for key in redis_client.scan_iter(match=keys.http(RESOLUTIONS[0].name, 0)[:-1] + "*"))
        assert counted == 25
        reply = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert reply["accepted"] == len({e["id"] for e in batch})
    finally:
        client.close()
        server.stop()
        for key in redis_client.scan_iter(match="{flush}*"):
            redis_client.delete(key)


def _accepted_by_a_worker(server: GunicornProcess, client_port: int) -> bool:
    """Whether a gunicorn worker holds the server side of the connection from `client_port`."""
    import psutil

    workers = {child.pid for child in psutil.Process(server.proc.pid).children()}
    return any(c.pid in workers and c.raddr and c.raddr.port == client_port
               for c in psutil.net_connections("tcp"))
