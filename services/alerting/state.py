"""The alert state machine (docs/alerting.md#states), pure: every function takes `now` and returns a
new `AlertState` with the `Change`s it made; nothing reads a clock or holds state.

    inactive ─true─▶ pending ─true for `for`─▶ firing ─false for `keep_firing_for`─▶ resolved
               └─ for: 0s: straight to firing    pending ─false─▶ inactive (cleared)
    resolved ──true──▶ a new alert (new started_at; acknowledgement and escalation start over)

Silences (services/alerting/silences.py) and routing/grouping (services/alerting/routes.py) are
re-exported here: the state machine's companions, pure like it."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from services.alerting.routes import GroupSchedule, MatchedRoute, group_key, group_labels, routes_for
from services.alerting.rules import EscalationStep, Rule, render_description, render_summary
from services.alerting.silences import Matcher, Silence, matches, silenced_by

__all__ = ["AlertState", "Change", "STATES", "CHANGE_KINDS", "fingerprint", "step", "escalate", "acknowledge",
           "escalation_receivers", "Silence", "Matcher", "matches", "silenced_by", "MatchedRoute", "routes_for",
           "group_labels", "group_key", "GroupSchedule"]

STATES = ("inactive", "pending", "firing", "resolved")
# pending, firing, resolved: state changes; cleared: pending → inactive (never fired, not notified);
# escalated: an escalation step applied; acknowledged: someone took the alert.
CHANGE_KINDS = ("pending", "firing", "resolved", "cleared", "escalated", "acknowledged")
_FNV_OFFSET, _FNV_PRIME, _MASK = 14695981039346656037, 1099511628211, (1 << 64) - 1


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits identifying a label set: FNV-1a 64 over the sorted name/value pairs, each
    followed by 0xff, as Prometheus/Alertmanager compute an alert's fingerprint."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8") + b"\xff":
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


@dataclass(frozen=True)
class AlertState:
    """One alert (a rule, and its partner for per-partner rules) as the engine keeps it.

    `labels` are the identity labels (alertname, the rule's severity, partner_id, the rule's
    labels) and `id` their fingerprint; `severity` is the current one (after escalation) and
    `current_labels` the labels notifications carry. `value` is the last value that met the
    condition (what the summary says while keep_firing_for holds the alert)."""

    id: str
    rule: str
    labels: dict[str, str]
    state: str
    severity: str
    threshold: float
    partner_id: str | None = None
    value: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None  # pending start (= firing_at with for: 0s)
    firing_at: float | None = None
    resolved_at: float | None = None
    last_true_at: float | None = None  # last evaluation that met the condition
    changed_at: float | None = None  # last change of state or severity (grouping: group_interval)
    acknowledged: bool = False
    ack_by: str | None = None
    ack_at: float | None = None
    ack_comment: str | None = None
    escalation_level: int = 0  # escalation steps applied

    def __post_init__(self):
        if self.state not in STATES:
            raise ValueError(f"state: one of {', '.join(STATES)}")

    @property
    def fingerprint(self) -> str:
        """The same as `id`."""
        return self.id

    @property
    def summary(self) -> str:
        """The rendered summary annotation."""
        return self.annotations.get("summary", "")

    @property
    def current_labels(self) -> dict[str, str]:
        """The labels with the current severity: what notifications carry and silences match."""
        return {**self.labels, "severity": self.severity}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (storage)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AlertState":
        """The inverse of to_dict (unknown keys ignored, so older/newer records still load)."""
        names = cls.__dataclass_fields__
        values = {k: v for k, v in data.items() if k in names}
        values["labels"] = dict(values.get("labels") or {})
        values["annotations"] = dict(values.get("annotations") or {})
        try:
            return cls(**values)
        except TypeError as err:  # a required field missing
            raise ValueError(f"not an alert state: {err}") from None


@dataclass(frozen=True)
class Change:
    """One thing that happened to an alert at `ts`; `alert` is its state right after."""

    kind: str
    ts: float
    alert: AlertState
    step: EscalationStep | None = None  # escalated: the step applied (alert.escalation_level is its number)

    @property
    def history_state(self) -> str:
        """The state the alert history records: cleared → resolved (with firing_at None)."""
        if self.kind in ("pending", "firing", "resolved"):
            return self.kind
        return "resolved" if self.kind == "cleared" else self.alert.state

    @property
    def notifies(self) -> bool:
        """Whether this change is one a group notification reports (firing, resolved, escalated)."""
        return self.kind in ("firing", "resolved", "escalated")

    @property
    def change_id(self) -> str:
        """Deterministic: the same change replayed (e.g. after a restart) gets the same id."""
        a = self.alert
        text = f"{a.id}|{self.kind}|{a.started_at!r}|{self.ts!r}|{a.escalation_level}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def history_record(self) -> dict[str, Any]:
        """Keyword arguments of AlertHistory.record for this change."""
        a = self.alert
        return {"rule": a.rule, "state": self.history_state, "severity": a.severity, "partner_id": a.partner_id,
                "summary": a.summary, "value": a.value, "threshold": a.threshold, "labels": a.current_labels,
                "alert_id": a.id, "ts": self.ts, "started_at": a.started_at, "firing_at": a.firing_at,
                "resolved_at": a.resolved_at if self.kind != "cleared" else self.ts,
                "acknowledged": a.acknowledged, "source": "engine", "change_id": self.change_id}


def _annotations(rule: Rule, value: float | None, partner_id: str | None, labels: dict[str, str]) -> dict[str, str]:
    notes = {"summary": render_summary(rule, value, partner_id, labels)}
    if rule.description:
        notes["description"] = render_description(rule, value, partner_id, labels)
    return notes


def _new_alert(rule: Rule, partner_id: str | None, value: float | None, now: float) -> AlertState:
    if rule.per_partner and not partner_id:
        raise ValueError(f"rule {rule.name}: per_partner needs the partner_id of the alert")
    if rule.partner and partner_id not in (None, rule.partner):
        raise ValueError(f"rule {rule.name}: only about partner {rule.partner}")
    if not rule.per_partner and not rule.partner and partner_id:
        raise ValueError(f"rule {rule.name}: not a per-partner rule")
    labels = rule.alert_labels(partner_id)
    pid = labels.get("partner_id")
    return AlertState(id=fingerprint(labels), rule=rule.name, labels=labels, state="pending", severity=rule.severity,
                      threshold=rule.threshold, partner_id=pid, value=value,
                      annotations=_annotations(rule, value, pid, labels), started_at=now, last_true_at=now,
                      changed_at=now)


def step(rule: Rule, prev: AlertState | None, condition_true: bool, value: float | None, now: float, *,
         partner_id: str | None = None) -> tuple[AlertState | None, list[Change]]:
    """One evaluation of `rule` for one alert at `now`: the next state and its changes. `prev` None
    (or inactive/resolved) and false: nothing to track (None/`prev` back, no change). `partner_id`
    is needed only to start an alert of a per-partner rule."""
    if prev is not None and prev.rule != rule.name:
        raise ValueError(f"alert {prev.id} is of rule {prev.rule}, not {rule.name}")
    if prev is None or prev.state in ("inactive", "resolved"):
        if not condition_true:
            return prev, []
        alert = _new_alert(rule, partner_id or (prev.partner_id if prev else None), value, now)
        if rule.for_s == 0:
            alert = replace(alert, state="firing", firing_at=now)
            return alert, [Change("firing", now, alert)]
        return alert, [Change("pending", now, alert)]

    if condition_true:
        alert = replace(prev, value=value, last_true_at=now, threshold=rule.threshold,
                        annotations=_annotations(rule, value, prev.partner_id, prev.current_labels))
        if prev.state == "pending" and now - prev.started_at >= rule.for_s:
            alert = replace(alert, state="firing", firing_at=now, changed_at=now)
            return alert, [Change("firing", now, alert)]
        return alert, []

    if prev.state == "pending":
        alert = replace(prev, state="inactive", changed_at=now)
        return alert, [Change("cleared", now, alert)]
    last_true = prev.last_true_at if prev.last_true_at is not None else prev.firing_at
    if now - last_true < rule.keep_firing_for_s:
        return prev, []
    alert = replace(prev, state="resolved", resolved_at=now, changed_at=now, acknowledged=False, ack_by=None,
                    ack_at=None, ack_comment=None)
    return alert, [Change("resolved", now, alert)]


def escalate(rule: Rule, state: AlertState, now: float) -> tuple[AlertState, list[Change]]:
    """Apply the escalation steps now due: the alert is firing and unacknowledged and has fired
    for at least each step's `after`; each step once, in order (several at once after a gap)."""
    if state.state != "firing" or state.acknowledged or state.firing_at is None:
        return state, []
    changes = []
    while state.escalation_level < len(rule.escalate):
        due = rule.escalate[state.escalation_level]
        if now - state.firing_at < due.after_s:
            break
        severity = due.severity or state.severity
        labels = {**state.current_labels, "severity": severity}
        state = replace(state, escalation_level=state.escalation_level + 1, severity=severity, changed_at=now,
                        annotations=_annotations(rule, state.value, state.partner_id, labels))
        changes.append(Change("escalated", now, state, step=due))
    return state, changes


def escalation_receivers(rule: Rule, state: AlertState) -> tuple[str, ...]:
    """The extra receivers the alert's applied escalation steps named (in order, each once)."""
    names = [s.receiver for s in rule.escalate[:state.escalation_level] if s.receiver]
    return tuple(dict.fromkeys(names))


def acknowledge(state: AlertState, who: str, comment: str, now: float) -> tuple[AlertState, list[Change]]:
    """Take a pending or firing alert: its escalation stops until it resolves (which ends the
    acknowledgement). Acknowledging an acknowledged alert changes nothing (the first one stays)."""
    if state.state not in ("pending", "firing"):
        raise ValueError(f"only a pending or firing alert can be acknowledged (this one is {state.state})")
    if not isinstance(who, str) or not who.strip() or len(who) > 128:
        raise ValueError("who: 1 to 128 characters")
    if not isinstance(comment, str) or len(comment) > 1024:
        raise ValueError("comment: at most 1024 characters")
    if state.acknowledged:
        return state, []
    alert = replace(state, acknowledged=True, ack_by=who, ack_at=now, ack_comment=comment)
    return alert, [Change("acknowledged", now, alert)]
