"""The monitoring/ configuration, checked by the real tools: promtool (config, rules, rule unit
tests), amtool (config, routing), and the Grafana dashboard, provisioning and compose files
against docs/metrics.md and each other."""
from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT
from tests.monitoring.conftest import (ALERTMANAGER, COMPOSE, DASHBOARD, MONITORING, PROMETHEUS_DIR, RULE_FILES,
                                       RULE_TESTS, load_yaml, require, run)

pytestmark = pytest.mark.monitoring

OPERATIONS_PANELS = ["kpi-overview", "success-rate-gauge", "build-time-gauge", "cpu-gauge", "memory-gauge",
                     "disk-gauge", "build-rate", "duration-heatmap", "stage-durations", "asset-table", "http-latency",
                     "http-errors"]
SEVERITIES = {"info", "warning", "critical"}


def documented_families() -> dict[str, tuple[str, list[str]]]:
    """docs/metrics.md's table: family name → (type, labels)."""
    families = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        m = re.match(r"\|\s*`(lulupay_\w+)`[^|]*\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|", line)
        if m:
            families[m.group(1)] = (m.group(2).split()[0], re.findall(r"`(\w+)`", m.group(3)))
    return families


def metric_names(expr: str) -> set[str]:
    """The lulupay_* series names an expression selects (histogram suffixes stripped)."""
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"(?<![\w:])(lulupay_[a-z0-9_]+)(?![\w:])", expr)}


def alert_rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in load_yaml(path)["groups"] for rule in group["rules"]
            if "alert" in rule]


def recording_rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in load_yaml(path)["groups"] for rule in group["rules"]
            if "record" in rule]


def dashboard_targets():
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel, target) for panel in dashboard["panels"] for target in panel["targets"]]


# -- Prometheus ---------------------------------------------------------------------------------
def test_promtool_check_config_and_scrape_jobs():
    tools = require("promtool")
    result = run([tools["promtool"], "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"lulupay-app", "lulupay-collector", "node", "redis"} <= set(jobs)
    assert jobs["lulupay-app"]["metrics_path"] == "/metrics"
    expected_ports = {"lulupay-app": 8050, "lulupay-collector": 9101, "node": 9100, "redis": 9121}
    for job, port in expected_ports.items():
        files = [f for sd in jobs[job]["file_sd_configs"] for f in sd["files"]]
        targets = [t for f in files for group in load_yaml(PROMETHEUS_DIR / f) for t in group["targets"]]
        assert targets and all(t.endswith(f":{port}") for t in targets), (job, targets)
    # every rule file is loaded by the rule_files globs
    loaded = {p for pattern in config["rule_files"] for p in PROMETHEUS_DIR.glob(pattern)}
    assert set(RULE_FILES) <= loaded and RULE_FILES
    am_files = [f for am in config["alerting"]["alertmanagers"] for sd in am["file_sd_configs"] for f in sd["files"]]
    assert all((PROMETHEUS_DIR / f).exists() for f in am_files) and am_files


def test_promtool_check_rules_and_rule_conventions():
    tools = require("promtool")
    result = run([tools["promtool"], "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in alert_rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]
    for rule in recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    # the thresholds of the app: success gauge red < 90 %, amber < 95 %; build-time target 600 s
    exprs = {(r["alert"], r["labels"]["severity"]): r["expr"] for r in alert_rules()}
    assert "< 0.95" in exprs[("LuluPayBuildSuccessRateLow", "warning")]
    assert "< 0.90" in exprs[("LuluPayBuildSuccessRateLow", "critical")]
    assert "> 600" in exprs[("LuluPayBuildsSlow", "warning")]


def test_rules_use_documented_metric_names_and_labels():
    families = documented_families()
    assert len(families) >= 30, "docs/metrics.md table not parsed"
    exprs = [r["expr"] for r in alert_rules() + recording_rules()] + [t["expr"] for _, t in dashboard_targets()]
    for expr in exprs:
        for name in metric_names(expr):
            assert name in families, f"{name} (in {expr!r}) is not in docs/metrics.md"
            # label matchers inside {...} right after this family name use its documented labels
            for selector in re.findall(rf"\b{name}(?:_bucket|_sum|_count)?\{{([^}}]*)\}}", expr):
                for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                    assert label in families[name][1] + ["le", "instance", "job"], (name, label, expr)


def test_promtool_rule_unit_tests_pass():
    tools = require("promtool")
    result = run([tools["promtool"], "test", "rules", *map(str, RULE_TESTS)], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS) >= 2


def test_every_alert_is_unit_tested_firing_and_not_firing():
    fired, quiet = set(), set()
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired |= {(check["alertname"], a["exp_labels"]["severity"]) for a in check["exp_alerts"]}
                else:
                    quiet.add(check["alertname"])
    rules = {(r["alert"], r["labels"]["severity"]) for r in alert_rules()}
    assert rules - fired == set(), "alerts never tested firing"
    assert {name for name, _ in rules} - quiet == set(), "alerts never tested not firing"


def test_every_recording_rule_is_unit_tested():
    tested = " ".join(check["expr"] for path in RULE_TESTS for case in load_yaml(path)["tests"]
                      for check in case.get("promql_expr_test", []))
    untested = [r["record"] for r in recording_rules() if not re.search(rf"(?<![\w:]){re.escape(r['record'])}(?![\w:])", tested)]
    assert untested == []


# -- Alertmanager -------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, receiver", [
    (["alertname=LuluPayBuildSuccessRateLow", "severity=critical"], "pager-webhook"),
    (["alertname=LuluPayPartnerBuildSuccessRateLow", "severity=warning", "partner_id=acme"], "team-webhook"),
    (["alertname=LuluPayHttpLatencyAboveObjective", "severity=info"], "null"),
])
def test_amtool_config_and_routing_by_severity(labels, receiver):
    tools = require("amtool")
    result = run([tools["amtool"], "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([tools["amtool"], "config", "routes", "test", "--config.file", str(ALERTMANAGER), *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_grouping_inhibition_and_no_secret_urls():
    config = load_yaml(ALERTMANAGER)
    assert config["route"]["group_by"] == ["alertname", "partner_id"]
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"'] and inhibit["target_matchers"] == ['severity="warning"']
    assert "alertname" in inhibit["equal"]
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert len(urls) == 2
    # placeholders on the reserved .invalid domain: the real URLs come from the deployment
    assert all(re.match(r"https://[a-z-]+\.invalid/REPLACE_WITH_\w+$", url) for url in urls), urls


# -- Grafana ------------------------------------------------------------------------------------
def test_grafana_dashboard_panels_variable_and_thresholds():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "LuluPay Operations"
    panels = dashboard["panels"]
    assert len(panels) == 12
    names = [re.search(r"Operations page panel `([a-z-]+)`", p["description"]).group(1) for p in panels]
    assert names == OPERATIONS_PANELS
    assert len({p["id"] for p in panels}) == 12 and all(p["targets"] for p in panels)
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "partner"]
    assert variable["query"]["query"] == "label_values(lulupay_builds_total, partner_id)"
    assert variable["multi"] is True and variable["includeAll"] is True and variable["allValue"] == ".*"
    by_name = dict(zip(names, panels))
    steps = by_name["success-rate-gauge"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps][0] == ("red", None)
    assert [s["value"] for s in steps[1:]] == [90, 95] and steps[-1]["color"] == "green"
    time_steps = by_name["build-time-gauge"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert time_steps[-1] == {"color": "red", "value": 600}


def test_partner_variable_on_every_partner_labelled_family():
    partner_families = {name for name, (_, labels) in documented_families().items() if "partner_id" in labels}
    assert "lulupay_builds_total" in partner_families
    for panel, target in dashboard_targets():
        expr = target["expr"]
        for name in metric_names(expr):
            occurrences = re.findall(rf"\b{name}(?:_bucket|_sum|_count)?\b(\{{[^}}]*\}})?", expr)
            if name in partner_families:
                assert all('partner_id=~"$partner"' in sel for sel in occurrences), (panel["title"], expr)
            elif "$partner" not in expr:
                assert "partner" in panel["description"], f"{panel['title']}: say why the partner filter does not apply"


def test_grafana_provisioning_matches_dashboard_and_compose():
    datasources = load_yaml(MONITORING / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    uids = {ds["uid"] for ds in datasources if ds["type"] == "prometheus"}
    used = {t["datasource"]["uid"] for _, t in dashboard_targets()}
    assert used <= uids
    providers = load_yaml(MONITORING / "grafana/provisioning/dashboards/dashboards.yml")["providers"]
    compose = load_yaml(COMPOSE)
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# -- compose ------------------------------------------------------------------------------------
def test_compose_services_targets_and_no_default_secrets():
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert {"prometheus", "alertmanager", "grafana", "valkey", "node-exporter", "redis-exporter", "app",
            "collector"} <= set(services)
    # every Prometheus target (file_sd) and the Alertmanager target is a compose service
    for path in (PROMETHEUS_DIR / "targets").glob("*.yml"):
        for group in load_yaml(path):
            for target in group["targets"]:
                assert target.split(":")[0] in services, (path.name, target)
    # secrets only from the environment, with no default: ${VAR:?message}
    for name, service in services.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}.{key} = {value!r}"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    # the app is the Procfile's web line, the collector its worker line
    assert services["app"]["command"] == ["gunicorn", "--config", "gunicorn.conf.py"]
    assert "collector" in services["collector"]["command"] and "9101" in services["collector"]["command"]
    # bind mounts exist
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (MONITORING / source).exists(), volume
    assert (MONITORING / "compose" / "lulupay-entrypoint.sh").exists()


def test_every_dashboard_query_parses(tmp_path):
    """promtool parses each panel query (Grafana's macros expanded); the live test runs them."""
    tools = require("promtool")
    from tests.monitoring.test_live import MACROS

    rules = []
    for i, (panel, target) in enumerate(dashboard_targets()):
        expr = target["expr"]
        for macro, value in MACROS.items():
            expr = expr.replace(macro, value)
        rules.append({"record": f"grafana:panel_{panel['id']}_{target['refId']}:check", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}))
    result = run([tools["promtool"], "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
