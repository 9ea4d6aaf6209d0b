"""The Procfile's web line, run as written: gunicorn with several gthread workers on one store."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, server_env, wait_until
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
