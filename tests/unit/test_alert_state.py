"""The alert state machine (pending → firing → resolved, `for`, `keep_firing_for`), escalation and
acknowledgement, silences, routing and group timing: all pure functions of the `now` passed in."""
import inspect
import json

import pytest

from services.alerting.history import AlertHistory
from services.alerting.routes import Route
from services.alerting.rules import parse_rules
from services.alerting.state import (AlertState, GroupSchedule, Matcher, Silence, acknowledge, escalate,
                                     escalation_receivers, fingerprint, group_key, group_labels, matches,
                                     routes_for, silenced_by, step)

T0 = 1_796_117_400.0  # 2026-12-01T09:30:00Z
EVERY_S = 15  # the engine's default interval


def make_rule(**fields):
    base = {"name": "LowSuccessRate", "metric": "success_rate", "window": "30m", "op": "<", "threshold": 0.9,
            "summary": "Success rate {{ value }} ({{ severity }})"}
    receivers = [{"name": "ops", "webhook_url": "http://127.0.0.1:9/a"},
                 {"name": "oncall", "webhook_url": "http://127.0.0.1:9/b"},
                 {"name": "pager", "webhook_url": "http://127.0.0.1:9/c"}]
    return parse_rules({"receivers": receivers, "route": {"receiver": "ops"},
                        "rules": [{**base, **fields}]}).rules[0]


def run(rule, conditions, *, start=T0, prev=None, partner_id=None):
    """Feed one condition per evaluation interval; return the last state and every change."""
    state, changes = prev, []
    for i, true in enumerate(conditions):
        state, new = step(rule, state, true, 0.8 if true else 0.97, start + i * EVERY_S, partner_id=partner_id)
        changes += new
    return state, changes


def test_pending_for_the_for_duration_then_firing():
    rule = make_rule(**{"for": "5m"})
    state, changes = run(rule, [True] * 20)  # 0 … 285 s: not yet
    assert state.state == "pending" and [c.kind for c in changes] == ["pending"]
    state, more = step(rule, state, True, 0.8, T0 + 300)
    assert state.state == "firing" and [c.kind for c in more] == ["firing"]
    assert (state.started_at, state.firing_at, state.resolved_at) == (T0, T0 + 300, None)
    assert state.summary == "Success rate 80 % (warning)"
    assert [c.notifies for c in changes + more] == [False, True]


def test_for_zero_fires_in_the_same_step():
    state, changes = run(make_rule(**{"for": "0s"}), [True])
    assert state.state == "firing" and [c.kind for c in changes] == ["firing"]
    assert state.started_at == state.firing_at == T0


def test_pending_that_clears_before_for_is_not_notified():
    state, changes = run(make_rule(**{"for": "5m"}), [True, True, False, False])
    assert state.state == "inactive" and [c.kind for c in changes] == ["pending", "cleared"]
    cleared = changes[-1]
    assert not cleared.notifies and cleared.history_state == "resolved"
    record = cleared.history_record()
    assert record["firing_at"] is None and record["resolved_at"] == T0 + 2 * EVERY_S


def test_nothing_is_tracked_while_the_condition_is_false():
    assert step(make_rule(), None, False, 0.99, T0) == (None, [])


FLAPPING = [True, False] * 20 + [True, True, False, True] * 5  # 15 minutes of a noisy condition


def test_keep_firing_for_stops_resolve_refire_flapping():
    flappy, flappy_changes = run(make_rule(), FLAPPING)
    assert [c.kind for c in flappy_changes].count("resolved") >= 20  # without keep_firing_for: a storm

    rule = make_rule(keep_firing_for="10m")
    state, changes = run(rule, FLAPPING)
    assert [c.kind for c in changes] == ["firing"] and state.state == "firing"
    last_true = state.last_true_at
    quiet_start = T0 + len(FLAPPING) * EVERY_S
    state, changes = run(rule, [False] * 40, start=quiet_start, prev=state)  # 10 quiet minutes
    assert [c.kind for c in changes] == ["resolved"]
    assert state.resolved_at == last_true + 600  # exactly keep_firing_for after the last true
    assert state.value == 0.8  # the last value that met the condition


def test_a_resolved_alert_that_comes_back_is_a_new_alert():
    rule = make_rule(**{"for": "1m"})
    state, _ = run(rule, [True] * 5 + [False])
    assert state.state == "resolved"
    first_id, first_start = state.id, state.started_at
    later = T0 + 3600
    state, changes = step(rule, state, True, 0.5, later)
    assert state.state == "pending" and [c.kind for c in changes] == ["pending"]
    assert state.id == first_id and state.started_at == later != first_start
    assert (state.firing_at, state.resolved_at, state.escalation_level) == (None, None, 0)


def test_per_partner_alerts_carry_the_partner():
    rule = make_rule(per_partner=True)
    with pytest.raises(ValueError, match="needs the partner_id"):
        step(rule, None, True, 0.5, T0)
    state, _ = step(rule, None, True, 0.5, T0, partner_id="acme-bank")
    assert state.labels == {"alertname": "LowSuccessRate", "severity": "warning", "partner_id": "acme-bank"}
    assert state.partner_id == "acme-bank" and state.id == fingerprint(state.labels)
    other, _ = step(rule, None, True, 0.5, T0, partner_id="ivory-remit")
    assert other.id != state.id
    with pytest.raises(ValueError, match="not a per-partner rule"):
        step(make_rule(), None, True, 0.5, T0, partner_id="acme-bank")


STEPS = [{"after": "5m", "severity": "critical"}, {"after": "15m", "receiver": "oncall"},
         {"after": "30m", "receiver": "pager"}]


def firing(rule, at=T0):
    state, _ = step(rule, None, True, 0.5, at)
    assert state.state == "firing"
    return state


def test_escalation_steps_in_order_each_once():
    rule = make_rule(escalate=STEPS)
    state, seen = firing(rule), []
    for i in range(0, 45 * 60, EVERY_S):  # every evaluation for 45 minutes
        state, changes = escalate(rule, state, T0 + i)
        seen += [(c.ts - T0, c.alert.escalation_level, c.alert.severity) for c in changes]
    assert seen == [(300, 1, "critical"), (900, 2, "critical"), (1800, 3, "critical")]
    assert escalation_receivers(rule, state) == ("oncall", "pager")
    assert state.current_labels["severity"] == "critical" and state.labels["severity"] == "warning"
    assert state.summary == "Success rate 50 % (critical)"


def test_escalation_after_a_gap_applies_every_due_step_in_order():
    rule = make_rule(escalate=STEPS)
    state, changes = escalate(rule, firing(rule), T0 + 20 * 60)
    assert [(c.step.after_s, c.alert.escalation_level) for c in changes] == [(300, 1), (900, 2)]
    assert escalate(rule, state, T0 + 20 * 60) == (state, [])


def test_only_firing_alerts_escalate():
    rule = make_rule(escalate=STEPS, **{"for": "1h"})
    pending, _ = step(rule, None, True, 0.5, T0)
    assert escalate(rule, pending, T0 + 3000) == (pending, [])


def test_acknowledging_stops_escalation_until_the_alert_resolves():
    rule = make_rule(escalate=STEPS)
    state = firing(rule)
    state, changes = acknowledge(state, "ada", "looking at the upload stage", T0 + 120)
    assert state.acknowledged and (state.ack_by, state.ack_at) == ("ada", T0 + 120)
    assert [c.kind for c in changes] == ["acknowledged"] and changes[0].history_record()["acknowledged"] is True
    assert acknowledge(state, "bob", "", T0 + 130) == (state, [])  # the first acknowledgement stays
    for i in range(0, 3600, 60):
        assert escalate(rule, state, T0 + i)[1] == []
    state, changes = step(rule, state, False, 0.99, T0 + 3600)
    assert [c.kind for c in changes] == ["resolved"]
    assert not state.acknowledged and state.ack_by is None
    with pytest.raises(ValueError, match="only a pending or firing alert"):
        acknowledge(state, "ada", "", T0 + 3601)
    again = step(rule, state, True, 0.5, T0 + 7200)[0]
    assert not again.acknowledged
    assert [c.alert.escalation_level for c in escalate(rule, again, T0 + 7200 + 300)[1]] == [1]


def test_state_round_trips_through_json():
    rule = make_rule(per_partner=True, escalate=STEPS, labels={"team": "builds"})
    state, _ = step(rule, None, True, 0.5, T0, partner_id="acme-bank")
    state, _ = escalate(rule, state, T0 + 400)
    state, _ = acknowledge(state, "ada", "on it", T0 + 500)
    assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert AlertState.from_dict({**state.to_dict(), "added_later": 1}) == state
    with pytest.raises(ValueError, match="state"):
        AlertState.from_dict({**state.to_dict(), "state": "exploded"})


def test_fingerprint_is_alertmanagers():
    labels = {"alertname": "LowSuccessRate", "partner_id": "acme-bank", "severity": "critical", "team": "builds"}
    assert fingerprint(labels) == "c43a48fa0f36167a"  # what Alertmanager 0.25 answered for these labels
    assert fingerprint(dict(reversed(labels.items()))) == "c43a48fa0f36167a"
    assert fingerprint({**labels, "team": "build"}) != "c43a48fa0f36167a"
    assert len(fingerprint({})) == 16


def test_change_ids_are_deterministic_and_fit_the_history():
    rule = make_rule()
    _, first = step(rule, None, True, 0.5, T0)
    _, again = step(rule, None, True, 0.5, T0)
    _, later = step(rule, None, True, 0.5, T0 + 15)
    assert first[0].change_id == again[0].change_id != later[0].change_id
    accepted = set(inspect.signature(AlertHistory.record).parameters)
    assert set(first[0].history_record()) <= accepted


# ---- silences --------------------------------------------------------------------------------
LABELS = {"alertname": "LuluPayBuildSuccessRateLow", "severity": "critical", "partner_id": "acme-bank"}


def silence(*matchers, starts=T0, ends=T0 + 3600):
    return Silence("s1", tuple(matchers), starts, ends, author="ada", comment="deploy")


def test_a_silence_is_active_between_starts_and_ends_and_then_expires():
    quiet = silence(Matcher("alertname", "LuluPayBuildSuccessRateLow"))
    assert [matches(quiet, LABELS, T0 + dt) for dt in (-1, 0, 1800, 3599, 3600, 86400)] == \
        [False, True, True, True, False, False]
    assert [quiet.state(T0 - 1), quiet.state(T0), quiet.state(T0 + 3600)] == ["pending", "active", "expired"]


def test_every_matcher_must_match():
    both = silence(Matcher("alertname", "LuluPayBuildSuccessRateLow"), Matcher("partner_id", "ivory-remit"))
    assert not matches(both, LABELS, T0 + 1)
    assert matches(both, {**LABELS, "partner_id": "ivory-remit"}, T0 + 1)


@pytest.mark.parametrize("matcher, expected", [
    (Matcher("alertname", "LuluPay.*", is_regex=True), True),
    (Matcher("alertname", "BuildSuccess", is_regex=True), False),  # anchored: a full match
    (Matcher("alertname", ".*Success.*", is_regex=True), True),
    (Matcher("severity", "warning|critical", is_regex=True), True),
    (Matcher("severity", "critical", is_equal=False), False),
    (Matcher("partner_id", "ivory-.*", is_regex=True, is_equal=False), True),
    (Matcher("team", "", is_regex=False), True),  # a missing label is the empty string
    (Matcher("team", "builds"), False),
])
def test_matchers(matcher, expected):
    assert matcher.matches(LABELS) is expected
    assert Matcher.parse(str(matcher)) == matcher


def test_bad_matchers_and_silences_are_refused_naming_the_matcher():
    with pytest.raises(ValueError, match="matcher 'alertname': invalid regex"):
        Matcher("alertname", "LuluPay(", is_regex=True)
    with pytest.raises(ValueError, match="matcher 'alertname': a regex has at most 256"):
        Matcher("alertname", "a" * 257, is_regex=True)
    with pytest.raises(ValueError, match="matcher 'alertname': nested quantifiers"):
        Matcher("alertname", "(a+)+$", is_regex=True)
    with pytest.raises(ValueError, match="label name"):
        Matcher("team-x", "a")
    with pytest.raises(ValueError, match="silence everything"):
        silence(Matcher("alertname", ".*", is_regex=True))
    with pytest.raises(ValueError, match="ends_at"):
        silence(Matcher("alertname", "x"), ends=T0)
    with pytest.raises(ValueError, match="at most 90 days"):
        silence(Matcher("alertname", "x"), ends=T0 + 91 * 86400)


def test_silenced_by_and_storage_round_trip():
    first = silence(Matcher.parse('alertname=~"LuluPay.*"'))
    second = Silence("s2", (Matcher.parse('partner_id="acme-bank"'),), T0, T0 + 60, author="bob")
    expired = Silence("s0", (Matcher.parse('severity="critical"'),), T0 - 120, T0 - 60, author="bob")
    assert silenced_by([second, expired, first], LABELS, T0 + 30) == ["s1", "s2"]
    assert silenced_by([second, expired, first], LABELS, T0 + 90) == ["s1"]
    assert Silence.from_dict(json.loads(json.dumps(first.to_dict()))) == first


# ---- routing and grouping --------------------------------------------------------------------
ROUTE = Route.model_validate({
    "receiver": "ops", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall", "group_wait": "10s", "continue": True},
               {"matchers": [{"name": "partner_id", "value": "acme-.*", "is_regex": True}], "receiver": "acme",
                "group_by": ["alertname", "partner_id"]},
               {"matchers": ['severity="critical"'], "receiver": "never"}]})


def test_routes_follow_alertmanager_first_match_and_continue():
    taken = routes_for(ROUTE, LABELS)
    assert [(r.receiver, r.group_wait_s, r.group_interval_s, r.group_by) for r in taken] == [
        ("oncall", 10, 300, ("alertname",)), ("acme", 30, 300, ("alertname", "partner_id"))]
    assert [r.receiver for r in routes_for(ROUTE, {**LABELS, "severity": "info"})] == ["acme"]
    assert [r.receiver for r in routes_for(ROUTE, {**LABELS, "severity": "info", "partner_id": "ivory"})] == ["ops"]
    assert routes_for(None, LABELS) == []


def test_group_key_is_alertmanagers():
    oncall, acme = routes_for(ROUTE, LABELS)
    # Alertmanager 0.25 sent this groupKey for the same route and labels.
    assert group_key(oncall, LABELS) == '{}/{severity="critical"}:{alertname="LuluPayBuildSuccessRateLow"}'
    assert group_labels(acme, LABELS) == {"alertname": "LuluPayBuildSuccessRateLow", "partner_id": "acme-bank"}
    assert group_key(acme, LABELS) != group_key(acme, {**LABELS, "partner_id": "acme-two"})
    assert group_key(oncall.with_receiver("pager"), LABELS).startswith('{}/{severity="critical"}/{receiver="pager"}:')
    every = Route.model_validate({"receiver": "ops", "group_by": ["..."]})
    assert group_labels(routes_for(every, LABELS)[0], LABELS) == dict(sorted(LABELS.items()))


SCHEDULE = GroupSchedule(group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)


def due_times(**group):
    """The seconds after T0, in 15-s steps over 5 hours, at which the group is due."""
    return [t for t in range(0, 5 * 3600, EVERY_S) if SCHEDULE.due(T0 + t, **group)]


def test_a_new_group_waits_group_wait():
    assert due_times(created_at=T0, last_notified_at=None, last_change_at=T0, firing=True)[0] == 30
    assert SCHEDULE.next_at(created_at=T0, last_notified_at=None, last_change_at=T0, firing=False) is None


def test_a_changed_group_waits_group_interval_after_its_last_notification():
    group = dict(created_at=T0, last_notified_at=T0 + 30, last_change_at=T0 + 60, firing=True)
    assert due_times(**group)[0] == 330
    assert SCHEDULE.due(T0 + 329, **group) is False


def test_an_unchanged_firing_group_repeats_after_repeat_interval():
    group = dict(created_at=T0, last_notified_at=T0 + 30, last_change_at=T0, firing=True)
    assert due_times(**group)[0] == 30 + 4 * 3600
    done = dict(group, firing=False)  # resolved and its resolution already sent
    assert SCHEDULE.next_at(**done) is None
    resolved_unsent = dict(group, last_change_at=T0 + 100, firing=False)
    assert SCHEDULE.next_at(**resolved_unsent) == T0 + 330  # the resolution goes out after group_interval
