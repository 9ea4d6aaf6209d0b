"""The command line for real: `seed` through the ingest path, and `serve --demo` (what `make run`
runs) with the embedded store — served by gunicorn with gunicorn.conf.py, seeding once, reusing the
data on restart, stopping every process on Ctrl-C."""
import signal
import subprocess
import sys
import time
from services.scope import system_scope

import psutil
import pytest
import requests

from services.demo.generator import generate_history
from tests.conftest import ROOT, free_port, server_env, wait_until
from tests.reference import assert_summary_matches, reference_summary

pytestmark = pytest.mark.integration


def test_seed_command_writes_consistent_history(valkey_url, redis_client):
    result = subprocess.run([sys.executable, "-m", "app", "seed", "--days", "3", "--partners", "40",
                             "--builds-per-day", "300"], cwd=ROOT, env=server_env(REDIS_URL=valkey_url),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "seeded" in result.stdout
    from app.settings import Settings
    from services.container import build_services
    services = build_services(Settings(_env_file=None, redis_url=valkey_url))
    now = time.time()
    summary = services.queries.summary(system_scope(now - 4 * 86400, now))
    # The seed's timeline is recorded: regenerate the same events and compute the figures by hand.
    seed_now = float(redis_client.get(services.store.keys.meta("seed_now")))
    events = [e for batch in generate_history(days=3, partners=40, builds_per_day=300, now=seed_now) for e in batch]
    assert_summary_matches(summary, reference_summary(events, summary["from"], summary["to"]))
    assert 0 < summary["success_rate"] < 1  # realism is tests/unit/test_demo.py's job; this window may hold an incident
    assert len(services.queries.partners(system_scope())) == 40
    again = subprocess.run([sys.executable, "-m", "app", "seed", "--days", "3", "--builds-per-day", "300"],
                           cwd=ROOT, env=server_env(REDIS_URL=valkey_url), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "seeded 0 events" in again.stdout  # same timeline: all duplicates
    assert services.queries.summary(system_scope(now - 4 * 86400, now))["builds_total"] == summary["builds_total"]


def _serve_demo(data_dir, port, *extra, metrics_dir=None):
    env = server_env(LULUPAY_DATA_DIR=str(data_dir), **({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)} if metrics_dir else {}))
    return subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port), "--demo", "--demo-days", "2",
                             "--demo-builds-per-day", "200", "--sim-rate", "2", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc) -> str:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphan processes: {alive}"
    return output


def _gunicorn_workers(serve) -> list[psutil.Process]:
    """The workers of the gunicorn master `serve` runs (its offload children are no gunicorn)."""
    masters = [p for p in psutil.Process(serve.pid).children() if "gunicorn" in " ".join(p.cmdline())]
    assert len(masters) == 1, masters
    return [p for p in masters[0].children() if "gunicorn" in " ".join(p.cmdline())]


def _metric_pids(metrics_dir) -> set[int]:
    """The processes that wrote prometheus-client multiprocess files (`counter_<pid>.db`, …)."""
    return {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("*.db")}


def test_make_run_is_serve_demo():
    dry_run = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    # under `make test` the parent make's flags add "make[1]: Entering/Leaving directory" lines
    commands = [line for line in dry_run.stdout.strip().splitlines() if not line.startswith("make")]
    assert commands[-1].endswith("lulupay-analytics serve --demo")


def test_serve_demo_seeds_once_and_stops_cleanly(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    proc = _serve_demo(tmp_path / "data", port, metrics_dir=metrics_dir)
    try:
        since = {"from": time.time() - 3 * 86400}
        first = wait_until(lambda: (s := requests.get(url + "/api/v1/summary", params=since, timeout=10).json())
                           ["builds_total"] >= 300 and s, timeout=120, message="demo seed")
        # the simulator keeps producing live builds
        wait_until(lambda: requests.get(url + "/api/v1/summary", params=since, timeout=10).json()["builds_started"]
                   > first["builds_started"], timeout=60, message="live simulator")
        page = requests.get(url + "/", timeout=5)
        assert page.status_code == 200 and page.headers["Server"] == "gunicorn"
        # gunicorn.conf.py's multiprocess metrics: both workers and serve's demo write their files, and
        # /metrics (any worker) counts the builds the demo wrote
        workers = _gunicorn_workers(proc)
        assert len(workers) == 2
        wait_until(lambda: {proc.pid, *(w.pid for w in workers)} <= _metric_pids(metrics_dir), message="metric files")
        families = {f.name: f for f in text_string_to_metric_families(requests.get(url + "/metrics", timeout=10).text)}
        builds = sum(s.value for s in families["lulupay_builds"].samples if s.name == "lulupay_builds_total")
        assert builds >= first["builds_total"]
    finally:
        output = _stop(proc)
    assert "seeding 2 days" in output and "embedded Valkey stopped" in output
    assert "Booting worker" in output and f"serving on {url}/" in output
    assert "GET /api/v1/summary" not in output  # no access log unless asked for

    proc = _serve_demo(tmp_path / "data", port, "--access-log")
    try:
        wait_until(lambda: requests.get(url + "/readyz", timeout=5).ok, timeout=60, message="restart")
        total = requests.get(url + "/api/v1/summary", params={"from": time.time() - 3 * 86400}, timeout=5).json()
        assert total["builds_total"] >= first["builds_total"]  # the data survived the restart
    finally:
        output = _stop(proc)
    assert "no seeding" in output
    assert "GET /api/v1/summary" in output and "GET /readyz" in output


def test_commands_share_the_embedded_store_another_process_runs(tmp_path):
    """`publish-alert` (like `simulate`, `collector`, a second `serve`) next to `make run` on the
    same data directory connects to the running embedded Valkey: a second server appending to the
    same files would corrupt them."""
    import redis

    from services.store.embedded import EmbeddedValkey, StoreDirInUse, running_url

    data = tmp_path / "data"
    assert running_url(data) is None
    store = EmbeddedValkey(data, port=free_port(), persist=True).start()
    try:
        assert running_url(data) == store.url
        with pytest.raises(StoreDirInUse) as refused:
            EmbeddedValkey(data, port=free_port()).start()
        assert refused.value.url == store.url
        client = redis.Redis.from_url(store.url)
        pubsub = client.pubsub()
        from services.store.keys import Keys
        pubsub.subscribe(Keys("lp").realtime_channel())
        wait_until(lambda: pubsub.get_message(timeout=0.1), message="subscribed")
        result = subprocess.run([sys.executable, "-m", "app", "publish-alert", "--name", "DiskFilling",
                                 "--summary", "shared store"], cwd=ROOT, env=server_env(LULUPAY_DATA_DIR=str(data)),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"using the embedded Valkey another process runs on {store.url}" in result.stdout
        assert "published to 0" not in result.stdout
        message = wait_until(lambda: pubsub.get_message(timeout=0.2), message="the alert on the channel")
        assert b"DiskFilling" in message["data"]
        pubsub.close()
    finally:
        store.stop()
    assert running_url(data) is None  # lock released, URL file gone
    again = EmbeddedValkey(data, port=free_port()).start()  # the directory is free again
    again.stop()


def test_serve_whose_gunicorn_cannot_start_fails_and_stops_the_store(tmp_path):
    import socket

    from services.store.embedded import running_url

    with socket.socket() as taken:  # the port is someone else's: gunicorn gives up binding it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "app", "serve", "--port", str(port), "--no-demo"], cwd=ROOT,
                                env=server_env(LULUPAY_DATA_DIR=str(tmp_path / "data"),
                                               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics")),
                                capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Connection in use" in output and "serving on" not in output
    assert "embedded Valkey stopped" in output and running_url(tmp_path / "data") is None
