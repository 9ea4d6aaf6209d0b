"""The alert rules file: durations, the shipped default, every validation error naming the file,
the rule (or receiver, or route) and the field, every limit — and the regex matchers of routes and
silences: Python's answers, in time linear in the label value."""
import copy
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alerting.catalogue import METRICS, format_duration, format_value
from services.alerting.linear_regex import LinearRegex
from services.alerting.rules import (LIMITS, RulesError, compare, load_rules, parse_duration, parse_rules,
                                     render_description, render_summary)
from services.alerting.silences import Matcher

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "monitoring" / "lulupay-alert-rules.yml"

BASE = {
    "receivers": [{"name": "ops", "webhook_url": "http://alert-receiver.example/hook"},
                  {"name": "oncall", "slack_url": "https://hooks.slack.example/T000/B000"},
                  {"name": "team-am", "alertmanager_url": "http://alertmanager.example:9093"}],
    "route": {"receiver": "ops", "group_by": ["rule"], "group_wait": "10s", "group_interval": "1m",
              "repeat_interval": "4h"},
    "rules": [{"name": "LowSuccessRate", "metric": "success_rate", "window": "30m", "op": "<", "threshold": 0.9,
               "for": "5m", "keep_firing_for": "10m", "severity": "warning", "per_partner": False,
               "summary": "Success rate {{ value }} below {{ threshold }} over {{ window }}",
               "escalate": [{"after": "15m", "severity": "critical", "receiver": "oncall"}]}],
}


def with_change(path, value, base=BASE):
    """A deep copy of `base` with the item at `path` (keys / indexes) set, or deleted if value is ...."""
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize("text, seconds", [("0s", 0), ("10s", 10), ("30m", 1800), ("4h", 14400), ("1d", 86400),
                                           ("1h30m", 5400), ("1d2h3m4s", 93784), (" 5m ", 300)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "-5m", "5 m", "1.5h", "5x", "m5", "1m1h", "9999999s", "367d", "1w",
                                  5, 5.0, None, True, ["5m"]])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_contract_example_loads_with_its_values(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(BASE))
    rules = load_rules(path)
    rule = rules.rules[0]
    assert (rule.window_s, rule.for_s, rule.keep_firing_for_s, rule.threshold) == (1800, 300, 600, 0.9)
    assert rule.escalate[0].after_s == 900 and rule.escalate[0].receiver == "oncall"
    assert rules.route.group_by == ["alertname"]  # `rule` is the alertname label
    assert (rules.route.group_wait_s, rules.route.group_interval_s, rules.route.repeat_interval_s) == (10, 60, 14400)
    assert [r.kind for r in rules.receivers] == ["webhook", "slack", "alertmanager"]
    assert rules.receiver("team-am").url == "http://alertmanager.example:9093"


def test_the_shipped_default_loads_and_covers_the_catalogue():
    rules = load_rules(DEFAULT)
    assert rules.receivers == [] and rules.route is None  # recorded, not notified
    used = {r.metric for r in rules.rules}
    text = DEFAULT.read_text()
    commented = set(re.findall(r"#\s+metric: (\w+)", text))
    assert used | commented == set(METRICS)


def test_the_default_s_example_receivers_are_valid_when_uncommented(tmp_path):
    text = DEFAULT.read_text()
    block = text.split("# --- example receivers begin\n")[1].split("# --- example receivers end")[0]
    uncommented = "\n".join(line[2:] for line in block.splitlines())
    path = tmp_path / "rules.yml"
    path.write_text(text.replace(block, uncommented + "\n"))
    rules = load_rules(path)
    assert [r.name for r in rules.receivers] == ["ops", "oncall", "alertmanager"]
    assert rules.route.routes[0].receiver == "oncall"
    assert all("127.0.0.1:9" in r.url for r in rules.receivers)  # the discard port: nowhere real


RULE = "rule \"LowSuccessRate\" (rules[0])"
# (path in BASE, new value or ... to delete, the expected context, field and a fragment of the message)
ERRORS = [
    (("rules", 0, "threshold"), "0.9", RULE, "threshold", "must be a number"),
    (("rules", 0, "threshold"), True, RULE, "threshold", "must be a number"),
    (("rules", 0, "threshold"), float("nan"), RULE, "threshold", "finite"),
    (("rules", 0, "threshold"), 90, RULE, "threshold", "outside success_rate's range 0 to 1"),
    (("rules", 0, "threshold"), ..., RULE, "threshold", "required"),
    (("rules", 0, "metric"), "succes_rate", RULE, "metric", "unknown metric 'succes_rate'"),
    (("rules", 0, "op"), "=<", RULE, "op", "must be one of <, <=, >, >=, ==, !="),
    (("rules", 0, "severity"), "page", RULE, "severity", "must be one of info, warning, critical"),
    (("rules", 0, "window"), "30", RULE, "window", "is not a duration"),
    (("rules", 0, "window"), "36d", RULE, "window", "between 1m and 35d"),
    (("rules", 0, "window"), "90s", RULE, "window", "whole number of minutes"),
    (("rules", 0, "window"), ..., RULE, "window", "required for metric success_rate"),
    (("rules", 0, "for"), "-5m", RULE, "for", "must not be negative"),
    (("rules", 0, "for"), "8d", RULE, "for", "between 0s and 7d"),
    (("rules", 0, "keep_firing_for"), "10", RULE, "keep_firing_for", "is not a duration"),
    (("rules", 0, "partner"), "acme-bank", None, None, None),  # valid: only this partner
    (("rules", 0, "partner"), "Acme Bank", RULE, "partner", "not a partner id"),
    (("rules", 0, "name"), "low-success", 'rule "low-success" (rules[0])', "name", "must match"),
    (("rules", 0, "name"), 7, "rule rules[0]", "name", "must be a string"),
    (("rules", 0, "tresh"), 1, RULE, "tresh", "unknown field"),
    (("rules", 0, "labels"), {"team-x": "a"}, RULE, "labels", "is not a label name"),
    (("rules", 0, "labels"), {"severity": "page"}, RULE, "labels", "set by the engine"),
    (("rules", 0, "summary"), "rate {{ valu }}", RULE, "summary", "unknown placeholder {{ valu }}"),
    (("rules", 0, "summary"), "for {{ partner_id }}", RULE, "summary", "needs per_partner"),
    (("rules", 0, "summary"), "team {{ labels.team }}", RULE, "summary", "has no label 'team'"),
    (("rules", 0, "summary"), "rate {{ value }", RULE, "summary", "unbalanced"),
    (("rules", 0, "summary"), "x" * 1025, RULE, "summary", "at most 1024 characters"),
    (("rules", 0, "min_builds"), -1, RULE, "min_builds", "at least 0"),
    (("rules", 0, "escalate", 0, "after"), "31d", RULE, "escalate[0].after", "between"),
    (("rules", 0, "escalate", 0, "receiver"), "nobody", RULE, "escalate[0].receiver", "unknown receiver 'nobody'"),
    (("rules", 0, "escalate", 0, "severity"), "urgent", RULE, "escalate[0].severity", "must be one of"),
    (("rules", 0, "escalate"), [{"after": "5m"}], RULE, "escalate[0].severity", "needs a severity, a receiver"),
    (("rules", 0, "escalate"), [{"after": "15m", "severity": "critical"}, {"after": "5m", "receiver": "oncall"}],
     RULE, "escalate", "increasing order"),
    (("receivers", 1, "slack_url"), "ftp://hooks.example/x", 'receiver "oncall" (receivers[1])', "slack_url",
     "http:// or https://"),
    (("receivers", 1, "webhook_url"), "http://also.example/x", 'receiver "oncall" (receivers[1])', "webhook_url",
     "exactly one"),
    (("receivers", 2, "alertmanager_url"), "http://am.example:9093/api/v2/alerts", 'receiver "team-am" '
     "(receivers[2])", "alertmanager_url", "base URL"),
    (("receivers", 1, "name"), "ops", 'receiver "ops" (receivers[1])', "name", "duplicate of receivers[0]"),
    (("receivers", 0, "name"), "ops team", 'receiver "ops team" (receivers[0])', "name", "letters, digits"),
    (("route", "receiver"), "pager", "route", "receiver", "unknown receiver 'pager'"),
    (("route", "receiver"), ..., "route", "receiver", "required"),
    (("route", "group_wait"), "2h", "route", "group_wait", "between 0s and 1h"),
    (("route", "group_interval"), "0s", "route", "group_interval", "between 1s and 1d"),
    (("route", "group_by"), ["team-x"], "route", "group_by", "is not a label name"),
    (("route", "routes"), [{"matchers": ['severity=="critical"'], "receiver": "oncall"}], "route",
     "routes[0].matchers", "is not a matcher"),
    (("route", "routes"), [{"matchers": ["severity=~\"(a+)+\""]}], "route", "routes[0].matchers",
     "nested quantifiers"),
    (("route", "routes"), [{"matchers": ['severity="critical"'], "receiver": "pager"}], "route",
     "routes[0].receiver", "unknown receiver 'pager'"),
    (("route",), ..., "route", None, "required when receivers are given"),
    # the limits (docs/alerting.md#limits): every duration, count and length bounded, named
    (("rules", 0, "window"), "0m", RULE, "window", "between 1m and 35d"),
    (("rules", 0, "window"), "999999d", RULE, "window", "between 1m and 35d"),
    (("rules", 0, "keep_firing_for"), "8d", RULE, "keep_firing_for", "between 0s and 7d"),
    (("rules", 0, "for"), "7d", None, None, None),  # valid: the bound itself
    (("rules", 0, "min_builds"), 1_000_001, RULE, "min_builds", "at most 1000000"),
    (("rules", 0, "labels"), {f"l{i}": "v" for i in range(33)}, RULE, "labels", "at most 32 items"),
    (("rules", 0, "labels"), {"team": "x" * 1025}, RULE, "labels.team", "at most 1024 characters"),
    (("rules", 0, "description"), "x" * 4097, RULE, "description", "at most 4096 characters"),
    (("rules", 0, "escalate"), [{"after": f"{i + 1}m", "severity": "critical"} for i in range(11)], RULE,
     "escalate", "at most 10 items"),
    (("route", "group_wait"), "-1s", "route", "group_wait", "must not be negative"),
    (("route", "group_interval"), "2d", "route", "group_interval", "between 1s and 1d"),
    (("route", "repeat_interval"), "31d", "route", "repeat_interval", "between 1s and 30d"),
    (("route", "repeat_interval"), "0s", "route", "repeat_interval", "between 1s and 30d"),
    (("route", "group_by"), [f"l{i}" for i in range(33)], "route", "group_by", "at most 32 items"),
    (("route", "routes"), [{"receiver": "ops"}] * 101, "route", "routes", "at most 100 items"),
    (("route", "routes"), [{"routes": [{"routes": [{"routes": [{"routes": [{"receiver": "ops"}]}]}]}]}], "route",
     "routes[0].routes[0].routes[0].routes[0]", "at most 4 levels"),
    (("route", "routes"), [{"matchers": ['a="b"'] * 33, "receiver": "ops"}], "route", "routes[0].matchers",
     "at most 32 items"),
    (("route", "routes"), [{"matchers": ['a=~"' + "x" * 257 + '"'], "receiver": "ops"}], "route",
     "routes[0].matchers", "a regex has at most 256 characters"),
    (("route", "routes"), [{"matchers": ['a=~"x(?=y)"'], "receiver": "ops"}], "route", "routes[0].matchers",
     "look-arounds are not supported"),
    (("receivers", 0, "max_alerts"), 1001, 'receiver "ops" (receivers[0])', "max_alerts", "at most 1000"),
    (("receivers", 0, "webhook_url"), "http://x.example/" + "a" * 2048, 'receiver "ops" (receivers[0])',
     "webhook_url", "at most 2048 characters"),
]


@pytest.mark.parametrize("path, value, context, field, fragment", ERRORS,
                         ids=[f"{'.'.join(map(str, e[0]))}={str(e[1])[:20]}" for e in ERRORS])
def test_each_error_names_the_file_the_rule_and_the_field(tmp_path, path, value, context, field, fragment):
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(yaml.safe_dump(with_change(path, value)))
    if fragment is None:
        assert load_rules(rules_path).rules
        return
    with pytest.raises(RulesError) as err:
        load_rules(rules_path)
    prefix = f"alert rules {rules_path}: {context}: " + (f"{field}: " if field else "")
    assert any(line.startswith(prefix) and fragment in line for line in err.value.problems), err.value.problems


@pytest.mark.parametrize("change, field, fragment", [
    ({"metric": "cpu_percent", "per_partner": True, "threshold": 90}, "per_partner", "about the deployment"),
    ({"metric": "quota_use", "per_partner": True}, "window", "takes no window"),
    ({"metric": "quota_use", "window": ...}, "per_partner", "needs per_partner: true or a partner"),
    ({"per_partner": True, "partner": "acme"}, "partner", "either per_partner: true or partner"),
    ({"metric": "failed_builds", "threshold": 5, "min_builds": 3}, "min_builds", "only for build metrics"),
    ({"metric": "active_builds", "window": ..., "threshold": 5, "summary": "over {{ window }}"}, "summary",
     "has no window"),
])
def test_cross_field_errors_name_the_field(change, field, fragment):
    rule = dict(BASE["rules"][0])
    for key, value in change.items():
        if value is ...:
            rule.pop(key, None)
        else:
            rule[key] = value
    with pytest.raises(RulesError) as err:
        parse_rules({**BASE, "rules": [rule]}, "x.yml")
    assert f"alert rules x.yml: {RULE}: {field}: " in str(err.value) and fragment in str(err.value)


def test_rules_share_a_name_only_as_levels_of_different_severity():
    critical = {**BASE["rules"][0], "threshold": 0.8, "severity": "critical"}
    assert len(parse_rules({**BASE, "rules": [BASE["rules"][0], critical]}).rules) == 2
    with pytest.raises(RulesError) as err:
        parse_rules({**BASE, "rules": [BASE["rules"][0], {**critical, "severity": "warning"}]}, "x.yml")
    assert 'alert rules x.yml: rule "LowSuccessRate" (rules[1]): name: rules[0] has the same name' in str(err.value)


def test_file_level_errors(tmp_path):
    cases = {"list.yml": "- a\n- b\n", "bad.yml": "rules: [\n", "dup.yml": "rules: []\nrules: []\n",
             "big.yml": "#" * (LIMITS["file_bytes"] + 1)}
    expected = {"list.yml": "must be a mapping", "bad.yml": "not valid YAML",
                "dup.yml": "not valid YAML: duplicate key 'rules' (line 2",
                "big.yml": "larger than 1024 KiB"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(RulesError, match=re.escape(f"alert rules {tmp_path / name}: {expected[name]}")):
            load_rules(tmp_path / name)
    with pytest.raises(RulesError, match="cannot read it"):
        load_rules(tmp_path / "missing.yml")
    (tmp_path / "empty.yml").write_text("# nothing yet\n")
    assert load_rules(tmp_path / "empty.yml").rules == []


def test_anchor_bombs_and_deep_nesting_are_refused_before_validation(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]  # 10^8 values
    (tmp_path / "bomb.yml").write_text("\n".join(lines) + "\nrules: []\n")
    with pytest.raises(RulesError, match="more than 200000 values once its anchors are expanded"):
        load_rules(tmp_path / "bomb.yml")
    (tmp_path / "deep.yml").write_text("rules: " + "[" * 400 + "]" * 400 + "\n")
    with pytest.raises(RulesError, match="nested too deeply"):
        load_rules(tmp_path / "deep.yml")


def test_yaml_merge_keys_still_work_and_are_not_duplicates(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text("base: &b {metric: cpu_percent, window: 5m, op: '>', threshold: 80}\n"
                    "rules:\n  - <<: *b\n    name: CpuHigh\n    threshold: 90\n")
    with pytest.raises(RulesError, match="base: unknown field"):  # the anchor's own key is not a field …
        load_rules(path)
    path.write_text("rules:\n  - &b {name: CpuHigh, metric: cpu_percent, window: 5m, op: '>', threshold: 80}\n"
                    "  - <<: *b\n    name: CpuVeryHigh\n    threshold: 90\n")
    rules = load_rules(path)  # … but a merge with an override is fine
    assert [(r.name, r.threshold) for r in rules.rules] == [("CpuHigh", 80), ("CpuVeryHigh", 90)]


def test_too_many_rules_and_problems_are_bounded():
    rules = [{**BASE["rules"][0], "name": f"R{i}"} for i in range(LIMITS["rules"] + 1)]
    with pytest.raises(RulesError, match="rules: at most 500 items"):
        parse_rules({**BASE, "rules": rules})
    broken = [{**BASE["rules"][0], "name": f"R{i}", "threshold": "x"} for i in range(50)]
    with pytest.raises(RulesError) as err:
        parse_rules({**BASE, "rules": broken})
    assert len(err.value.problems) == 21 and err.value.problems[-1].endswith("… and 30 more problems")


def test_summary_rendering_writes_values_in_their_units():
    rules = parse_rules({"rules": [
        {"name": "Slow", "metric": "build_p95_s", "window": "1h", "op": ">", "threshold": 600, "per_partner": True,
         "labels": {"team": "builds"}, "summary": "{{ rule }}/{{ severity }} {{ partner_id }} {{ labels.team }}: "
                                                 "{{ value }} > {{ threshold }} over {{ window }}",
         "description": "p95 {{ value }}"}]})
    rule = rules.rules[0]
    assert render_summary(rule, 612.34, "acme") == "Slow/warning acme builds: 612.3 s > 600 s over 1h"
    assert render_summary(rule, None, "acme").endswith(": n/a > 600 s over 1h")
    assert render_description(rule, 700, "acme") == "p95 700 s"
    assert rule.alert_labels("acme") == {"alertname": "Slow", "severity": "warning", "partner_id": "acme",
                                         "team": "builds"}


@pytest.mark.parametrize("metric, value, text", [
    ("success_rate", 0.875, "87.5 %"), ("success_rate", 0.9, "90 %"), ("cpu_percent", 91.04, "91 %"),
    ("http_p95_ms", 140.0, "140 ms"), ("failed_builds", 12.0, "12"), ("ingest_rate", 3.254, "3.25 events/s"),
    ("no_events_minutes", 42.0, "42 min"), ("quota_days_left", 6.54, "6.5 days"), ("quota_use", None, "n/a")])
def test_value_formats(metric, value, text):
    assert format_value(metric, value) == text


@pytest.mark.parametrize("op, value, expected", [("<", 0.8, True), ("<", 0.9, False), ("<=", 0.9, True),
                                                 (">", 0.95, True), (">=", 0.9, True), ("==", 0.9, True),
                                                 ("!=", 0.9, False), ("<", None, False), ("<", float("nan"), False)])
def test_compare(op, value, expected):
    assert compare(op, value, 0.9) is expected


# -- regex matchers: RE2's linear time, Python's `re` answers --------------------------------------
_ATOMS = ["a", "b", ".", "[ab]", "[^a]", "[a-c]", "\\d", "\\w", "\\s", "\\W", "x", "(a|b)", "(ab|a)", "(?:a*)", "-",
          "\\.", "(|a)"]
_QUANTIFIERS = ["", "*", "+", "?", "{2}", "{1,3}", "*?", "{0,2}", "+?", "{2,}"]


@st.composite
def _patterns(draw):
    pattern = "".join(draw(st.sampled_from(_ATOMS)) + draw(st.sampled_from(_QUANTIFIERS))
                      for _ in range(draw(st.integers(0, 6))))
    shape = draw(st.sampled_from(["{}", "^{}$", "({})*", "{}|ab", "(?:{})+x", "\\A{}\\Z"]))
    return shape.format(pattern)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_patterns(), st.text(alphabet="ab1 x.-\n\u00e9", max_size=10))
def test_regex_matchers_answer_what_re_answers(pattern, text):
    try:
        expected = re.fullmatch(pattern, text) is not None
    except re.error:
        return
    try:
        regex = LinearRegex(pattern)
    except ValueError as err:  # only what RE2 has no linear-time match for is refused
        assert "possessive" in str(err), (pattern, err)
        return
    assert regex.fullmatch(text) is expected, (pattern, text)


@pytest.mark.parametrize("pattern", [".*" * 12 + "!", "(a|a)*!", "(a|aa)*b", "(?:a?){40}a{40}!",
                                     "[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*!", ".*a.*a.*a.*a.*a.*!"])
def test_regex_matchers_take_linear_time(pattern):
    matcher = Matcher("team", pattern, is_regex=True)
    for length in (64, 1024):  # re.fullmatch takes minutes (or longer) on most of these
        started = time.perf_counter()
        assert not matcher.matches({"team": "a" * length})
        assert time.perf_counter() - started < 0.2, (pattern, length)


@pytest.mark.parametrize("pattern, fragment", [
    ("(a)\\1", "back-references"), ("x(?=y)", "look-arounds"), ("(?<!y)x", "look-arounds"), ("(?i)x", "inline flags"),
    ("a*+", "possessive"), ("(?>a)", "atomic groups"), ("\\bx", "word boundaries"), ("a{5000}", "too complex"),
    ("(a+)+", "nested quantifiers"), ("x(", "invalid regex"), ("x" * 257, "at most 256 characters"),
])
def test_regex_matchers_outside_re2s_linear_subset_are_refused(pattern, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Matcher("team", pattern, is_regex=True)
