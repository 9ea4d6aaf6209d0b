"""The live test: the Procfile's web line (gunicorn, two workers) and the standalone collector on the
test Valkey, scraped every second by a real Prometheus that loads the repository's rules. After
real traffic, every Grafana panel query and every recording rule returns data, every rule
evaluates without error, and the HTTP counter equals exactly the requests sent (over both
workers). `promtool check metrics` passes on the raw expositions."""
from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, server_env, wait_until
from tests.monitoring.conftest import DASHBOARD, PROMETHEUS_DIR, RULE_FILES, load_yaml, require, run
from tests.reference import random_events

pytestmark = [pytest.mark.monitoring, pytest.mark.integration]

PARTNERS = ["acme-bank", "globex", "initech"]
HEALTHZ_REQUESTS = 120  # per round, two rounds (then more until both workers served some)
# Grafana's macros, as the dashboard would expand them over a short time range with "All" partners
MACROS = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "1m", "$partner": ".*"}


class Process:
    """A child in its own process group, output to a file; `stop()` ends the whole group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass


def prometheus_config(app_port: int, collector_port: int) -> dict:
    """The repository's prometheus.yml, scraping the test processes every second with the repo's rules."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in RULE_FILES]
    config.pop("alerting", None)
    targets = {"lulupay-app": app_port, "lulupay-collector": collector_port}
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job.pop("file_sd_configs", None)
            job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


class PromAPI:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        body = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def latest(self, selector: str) -> float | None:
        """Sum of the last scraped values (robust to one failed scrape on a loaded machine)."""
        return self.value(f"sum(last_over_time({selector}[1m]))")


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for macro, value in MACROS.items():
                expr = expr.replace(macro, value)
            assert "$" not in expr.replace('"$1"', ""), f"unexpanded macro in {expr}"
            queries.append((f"{panel['title']} / {target['refId']}", expr))
    return queries


def worker_counts(multiproc_dir: Path, route: str) -> dict[str, float]:
    """GET requests of `route` counted by each worker, from the multiprocess files (pid → count)."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in multiproc_dir.glob("counter_*.db"):
        total = 0.0
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            metric, sample, labels, _help = json.loads(key)
            if sample == "lulupay_http_requests_total" and labels.get("route") == route:
                total += value
        counts[path.stem.split("_", 1)[1]] = total
    return counts


def test_live_prometheus_scrapes_gunicorn_and_evaluates_every_rule_and_panel(valkey_url, redis_client, tmp_path):
    tools = require("prometheus", "promtool")
    app_port, collector_port, prom_port = free_port(), free_port(), free_port()
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = server_env(REDIS_URL=valkey_url, PORT=str(app_port), WEB_CONCURRENCY="2", GUNICORN_THREADS="8",
                     LULUPAY_COLLECTOR_INTERVAL_S="1", PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                     LULUPAY_DATA_DIR=str(tmp_path / "data"),
                     # own key prefix: no other test's collector may take this deployment's lock
                     LULUPAY_KEY_PREFIX="monitoring",
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    collector_env = {k: v for k, v in env.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "PORT")}
    (tmp_path / "prometheus.yml").write_text(json.dumps(prometheus_config(app_port, collector_port)))
    app_url, prom_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{prom_port}"
    processes = []
    try:
        app = Process("gunicorn", ["bash", "-c", "exec " + web.split(":", 1)[1].strip()], env, tmp_path)
        processes.append(app)
        collector = Process("collector", [sys.executable, "-m", "app", "--log-level", "WARNING", "collector",
                                          "--metrics-port", str(collector_port), "--interval", "1"],
                            collector_env, tmp_path)
        processes.append(collector)
        prometheus = Process("prometheus", [tools["prometheus"], f"--config.file={tmp_path / 'prometheus.yml'}",
                                            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                            f"--web.listen-address=127.0.0.1:{prom_port}",
                                            "--storage.tsdb.retention.time=1d", "--log.level=warn"],
                             os.environ.copy(), tmp_path)
        processes.append(prometheus)
        for proc, url in ((app, app_url + "/readyz"), (collector, f"http://127.0.0.1:{collector_port}/metrics"),
                          (prometheus, prom_url + "/-/ready")):
            try:
                wait_until(lambda: proc.alive() and requests.get(url, timeout=2).ok, timeout=60,
                           message=f"{proc.name} start")
            except AssertionError:
                raise AssertionError(f"{proc.name} did not start:\n{proc.output()}") from None
        prom = PromAPI(prom_url)

        # -- traffic, in two rounds with a scrape in between, so that every counter moves ----------
        now = time.time()
        events = random_events(random.Random(4), 80, now - 3000, now - 60, PARTNERS)
        finished = sum(1 for e in events if e["type"] == "build.finished")
        halves = [events[: len(events) // 2], events[len(events) // 2:]]
        sent = {"healthz": 0, "events": 0, "builds": 0}

        def healthz(_):
            # a new connection each time: the two workers share the accept queue
            return requests.get(app_url + "/healthz", headers={"Connection": "close"}, timeout=10).status_code

        def healthz_batch(pool, n: int) -> None:
            statuses = list(pool.map(healthz, range(n)))
            assert statuses == [200] * n
            sent["healthz"] += n

        def spread() -> bool:  # both workers have served /healthz; if not, another batch
            if sum(1 for count in worker_counts(multiproc, "/healthz").values() if count > 0) >= 2:
                return True
            healthz_batch(pool, 20)
            return False

        with ThreadPoolExecutor(8) as pool:
            for round_events in halves:
                healthz_batch(pool, HEALTHZ_REQUESTS)
                if round_events is halves[1]:
                    wait_until(spread, timeout=30, message="requests served by both workers")
                for i in range(0, len(round_events), 50):
                    response = requests.post(app_url + "/api/v1/events", json={"events": round_events[i:i + 50]},
                                             timeout=30)
                    assert response.status_code == 202, response.text
                    sent["events"] += 1
                # a bad batch (4xx for the error panel) and the read API
                assert requests.post(app_url + "/api/v1/events", data=b"{not json", timeout=10,
                                     headers={"Content-Type": "application/json"}).status_code == 400
                assert requests.get(app_url + "/api/v1/summary", timeout=30).ok
                sent["builds"] += sum(1 for e in round_events if e["type"] == "build.finished")
                # a scrape after the whole round (the next round's increments then show as rates)
                expected = (sent["healthz"], sent["events"], sent["builds"])
                wait_until(lambda: (prom.latest('lulupay_http_requests_total{route="/healthz"}'),
                                    prom.latest('lulupay_http_requests_total{route="/api/v1/events",status="202"}'),
                                    prom.latest("lulupay_builds_total")) == expected,
                           timeout=30, message=f"Prometheus to count (/healthz, ingest, builds) = {expected}")

        # -- exact counts across both workers -------------------------------------------------
        per_worker = worker_counts(multiproc, "/healthz")
        assert sum(per_worker.values()) == sent["healthz"] >= 2 * HEALTHZ_REQUESTS
        assert sum(1 for c in per_worker.values() if c > 0) >= 2, f"requests not spread over workers: {per_worker}"
        assert prom.latest('lulupay_http_requests_total{route="/healthz",method="GET",status="200"}') == sent["healthz"]
        assert prom.latest('lulupay_http_requests_total{route="/api/v1/events",status="202"}') == sent["events"]
        assert prom.latest("lulupay_builds_total") == sent["builds"] == finished
        assert prom.value('max_over_time(up{job="lulupay-collector"}[1m])') == 1
        # one collector leader over every worker and the standalone collector
        wait_until(lambda: prom.value("sum(lulupay_collector_leader)") == 1, timeout=20, message="one collector leader")

        # -- the Grafana partner variable: label_values(lulupay_builds_total, partner_id) ---------
        labels = requests.get(prom_url + "/api/v1/label/partner_id/values",
                              params={"match[]": "lulupay_builds_total"}, timeout=5).json()["data"]
        assert set(labels) == set(PARTNERS)

        # -- every panel query and every recording rule returns data ------------------------------
        queries = panel_queries()
        assert len({name.split(" / ")[0] for name, _ in queries}) == 12
        records = sorted({r["record"] for p in RULE_FILES for g in load_yaml(p)["groups"] for r in g["rules"]
                          if "record" in r})

        def empty() -> list[str]:
            missing = [name for name, expr in queries if not prom.query(expr)]
            return missing + [record for record in records if not prom.query(record)]

        try:
            wait_until(lambda: not empty(), timeout=30, interval=0.5, message="data for every panel and rule")
        except AssertionError:
            raise AssertionError(f"no data for: {empty()}") from None
        # the main figures are real numbers, not NaN
        def finite(record: str) -> bool:
            return any(math.isfinite(float(s["value"][1])) for s in prom.query(record))

        for record in ("lulupay:builds:rate5m", "lulupay:build_success:ratio_rate5m",
                       "lulupay:build_duration_seconds:p95_5m", "lulupay:build_duration_seconds:avg5m",
                       "lulupay:http_requests:rate5m", "lulupay:http_errors:ratio_rate5m",
                       "route:lulupay_http_request_duration_seconds:p95_5m", "lulupay:system_cpu_usage:percent",
                       "lulupay:system_memory_used:ratio", "lulupay:system_disk_used:ratio"):
            wait_until(lambda: finite(record), timeout=10, message=f"a finite value of {record}")
        assert 0 < prom.value("max_over_time(lulupay:system_memory_used:ratio[1m])") < 1

        # -- every rule evaluates without error ---------------------------------------------------
        groups = requests.get(prom_url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert len(rules) == sum(len(g["rules"]) for p in RULE_FILES for g in load_yaml(p)["groups"])
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert bad == []

        # -- the raw expositions pass promtool check metrics --------------------------------------
        for name, url in (("app", app_url + "/metrics"), ("collector", f"http://127.0.0.1:{collector_port}/metrics")):
            text = requests.get(url, timeout=10).text
            if name == "app":
                assert re.search(r'^lulupay_http_requests_total\{[^}]*route="/healthz"', text, re.M)
            result = run([tools["promtool"], "check", "metrics"], input=text)
            assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
                f"{name}: {result.stdout}{result.stderr}"
    finally:
        for proc in reversed(processes):
            proc.stop()
