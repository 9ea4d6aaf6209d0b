"""The app's default alert rules and the Prometheus alerting rules agree where they watch the same
condition: the same alert name, severity, comparison, threshold (in each one's unit), `for`, window
and partner use — so a silence, a runbook or an inhibition written for one fits the other."""
import re
from pathlib import Path

import pytest
import yaml

from services.alerting.rules import load_rules, parse_duration

ROOT = Path(__file__).resolve().parents[2]
APP_RULES = load_rules(ROOT / "monitoring" / "lulupay-alert-rules.yml").rules
PROM_RULES = [r for g in yaml.safe_load((ROOT / "monitoring" / "prometheus" / "rules" / "lulupay-alerts.yml")
                                        .read_text())["groups"] for r in g["rules"] if "alert" in r]

# (Prometheus alert, severity) → (the app's metric, app threshold ÷ Prometheus threshold). Prometheus
# has memory/disk as 0–1 ratios and latency in seconds; the app has percents and milliseconds.
SHARED = {
    ("LuluPayBuildSuccessRateLow", "warning"): ("success_rate", 1),
    ("LuluPayBuildSuccessRateLow", "critical"): ("success_rate", 1),
    ("LuluPayPartnerBuildSuccessRateLow", "warning"): ("success_rate", 1),
    ("LuluPayBuildsSlow", "warning"): ("build_p95_s", 1),
    ("LuluPayHttpErrorRatioHigh", "warning"): ("http_error_rate", 1),
    ("LuluPayHttpErrorRatioHigh", "critical"): ("http_error_rate", 1),
    ("LuluPayHttpLatencyAboveObjective", "info"): ("http_p95_ms", 1000),
    ("LuluPayCpuSaturated", "warning"): ("cpu_percent", 1),
    ("LuluPayMemorySaturated", "warning"): ("memory_percent", 100),
    ("LuluPayMemorySaturated", "critical"): ("memory_percent", 100),
    ("LuluPayDiskAlmostFull", "warning"): ("disk_percent", 100),
    ("LuluPayDiskAlmostFull", "critical"): ("disk_percent", 100),
    ("LuluPayPartnerQuotaNearlyExhausted", "info"): ("quota_use", 1),
}
_COMPARISON = re.compile(r"(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)?)")
_WINDOW = re.compile(r"[:_](?:rate|p\d+_|increase)?(\d+[mh])\b")


def prom(name, severity):
    found = [r for r in PROM_RULES if r["alert"] == name and r["labels"]["severity"] == severity]
    assert len(found) == 1, (name, severity)
    return found[0]


def app(name, severity):
    found = [r for r in APP_RULES if r.name == name and r.severity == severity]
    assert len(found) == 1, (name, severity)
    return found[0]


@pytest.mark.parametrize("name, severity", sorted(SHARED))
def test_shared_conditions_agree(name, severity):
    metric, scale = SHARED[(name, severity)]
    prom_rule, app_rule = prom(name, severity), app(name, severity)
    first_line = prom_rule["expr"].strip().splitlines()[0]
    op, threshold = _COMPARISON.search(first_line).groups()
    assert app_rule.metric == metric
    assert app_rule.op == op
    assert app_rule.threshold == pytest.approx(float(threshold) * scale)
    assert app_rule.for_s == parse_duration(prom_rule.get("for", "0s"))
    assert app_rule.per_partner is ("partner_id" in prom_rule["expr"])
    window = _WINDOW.search(first_line)
    if window:  # Prometheus names the window in the recording rule (ratio_rate5m, p95_5m); gauges have none
        assert app_rule.window_s == parse_duration(window.group(1))


def test_the_partner_success_rate_needs_ten_builds_in_both():
    expr = prom("LuluPayPartnerBuildSuccessRateLow", "warning")["expr"]
    assert re.search(r"increase30m >= 10\b", expr)
    assert app("LuluPayPartnerBuildSuccessRateLow", "warning").min_builds == 10


def test_every_shared_name_is_in_the_mapping_and_nothing_is_left_out():
    prom_keys = {(r["alert"], r["labels"]["severity"]) for r in PROM_RULES}
    app_keys = {(r.name, r.severity) for r in APP_RULES}
    assert set(SHARED) <= prom_keys and set(SHARED) <= app_keys
    # A name used by both files is a shared condition at the same levels (no accidental reuse).
    shared_names = {n for n, _ in prom_keys} & {n for n, _ in app_keys}
    assert {k for k in prom_keys | app_keys if k[0] in shared_names} == set(SHARED)
