"""The alert engine (docs/alerting.md#engine): every LULUPAY_ALERT_INTERVAL_S the collector's leader
runs one round — evaluate each rule from the store (services/alerting/evaluate.py), move each alert
through the state machine (services/alerting/state.py: pending → firing → resolved, escalation),
store the states, record every change in the alert history, publish it on the live channel's
`alerts` stream, count it in the metrics, and queue the notifications that are due
(services/alerting/notifier.py). Everything an engine knows lives in the store, so a new leader
takes over where the last one stopped; changes carry deterministic ids, so a round replayed after
a crash records and notifies nothing twice."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from services.alerting.evaluate import Evaluation, Reading, finite
from services.alerting.notifier import Notifier
from services.alerting.rules import Rule, RulesFile, compare
from services.alerting.state import AlertState, Change, escalate, fingerprint, step
from services.alerting.store import RESOLVED_KEEP_S, rule_key
from services.metrics import ALERT_CHANGES, ALERT_EVALUATIONS
from services.realtime import publish_many
from services.store import StoreUnavailable

__all__ = ["AlertEngine", "RoundReport", "MAX_VALUES_SHOWN"]

log = logging.getLogger(__name__)

MAX_VALUES_SHOWN = 50  # values of a per-partner rule kept with its evaluation (the worst first)


@dataclass
class RoundReport:
    """What one round did (tests and logs)."""

    at: float
    evaluated: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    notifications: int = 0


def _condition(rule: Rule, reading: Reading) -> bool:
    if rule.min_builds and (reading.builds or 0) < rule.min_builds:
        return False
    return compare(rule.op, finite(reading.value), rule.threshold)


def _message(change: Change) -> dict:
    """The `alerts` stream message of a change (what the toasts show)."""
    a = change.alert
    data = {"id": a.id, "name": a.rule, "severity": a.severity, "state": change.history_state, "change": change.kind,
            "summary": a.summary, "value": a.value, "threshold": a.threshold}
    if a.partner_id:
        data["partner_id"] = a.partner_id
    return {"stream": "alerts", "ts": change.ts, "data": data}


class AlertEngine:
    """One deployment's engine: `run_once()` is a round (the collector's leader calls it)."""

    def __init__(self, services, rules: RulesFile, *, clock: Callable[[], float] | None = None):
        self.services = services
        self.rules = rules
        self.clock = clock or services.clock
        self.store = services.alert_store
        self.history = services.alerts
        self.notifier = Notifier(services, rules)
        self.last_round: RoundReport | None = None

    def _last_ingest_at(self) -> float | None:
        value = self.services.store.run(lambda c: c.get(self.services.store.keys.meta("last_ingest_at")))
        return float(value) if value else None

    def run_once(self) -> RoundReport:
        """Evaluate every rule now, store and publish the changes, queue due notifications. Raises
        StoreUnavailable when the store fails (nothing half-done is published: the next round
        evaluates again; changes already recorded keep their ids)."""
        now = self.clock()
        report = RoundReport(at=now)
        evaluation = Evaluation(self.services.queries, self.services.partners, now=now,
                                last_ingest_at=self._last_ingest_at)
        alerts = self.store.alerts()
        by_rule: dict[str, list[AlertState]] = {}
        for a in alerts.values():
            by_rule.setdefault(rule_key(a.rule, a.labels.get("severity", a.severity)), []).append(a)
        changed: dict[str, AlertState] = {}
        evaluations: dict[str, dict] = {}
        for rule in self.rules.rules:
            key = rule_key(rule.name, rule.severity)
            try:
                readings = evaluation.readings(rule)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one rule's failure leaves its alerts as they are
                log.exception("alert rule %s: evaluation failed", key)
                report.errors[key] = f"{type(exc).__name__}: {exc}"
                evaluations[key] = self._evaluation(rule, now, [], error=report.errors[key])
                ALERT_EVALUATIONS.labels(result="error").inc()
                continue
            ALERT_EVALUATIONS.labels(result="ok").inc()
            report.evaluated += 1
            seen = set()
            values = []
            for reading in readings:
                condition = _condition(rule, reading)
                values.append({"partner_id": reading.partner_id, "value": finite(reading.value),
                               "builds": reading.builds, "condition": condition})
                alert_id = fingerprint(rule.alert_labels(reading.partner_id))
                seen.add(alert_id)
                self._advance(rule, alerts.get(alert_id), condition, finite(reading.value), now,
                              reading.partner_id, changed, report)
            # alerts of this rule no evaluation spoke of (a partner gone): their condition is false
            for prev in by_rule.get(key, []):
                if prev.id not in seen:
                    self._advance(rule, prev, False, prev.value, now, prev.partner_id, changed, report)
            evaluations[key] = self._evaluation(rule, now, values)
        in_file = {rule_key(r.name, r.severity) for r in self.rules.rules}
        for key, states in by_rule.items():
            if key not in in_file:  # its rule left the file: it resolves now
                for prev in states:
                    self._retire(prev, now, changed, report)
        current = {**alerts, **changed}
        dropped = [a.id for a in current.values()
                   if a.state == "inactive" or (a.state == "resolved" and now - (a.resolved_at or now) > RESOLVED_KEEP_S)]
        self.store.save_alerts([a for a in changed.values() if a.id not in dropped], dropped)
        for change in report.changes:
            self.history.record(**change.history_record())
            ALERT_CHANGES.labels(change=change.kind, severity=change.alert.severity).inc()
        if report.changes:
            publish_many(self.services.store, [_message(c) for c in report.changes])
        self.store.save_evaluations(evaluations, keep=in_file)
        live = {k: v for k, v in current.items() if k not in dropped}
        report.notifications = self.notifier.run(live, now)
        self.store.forget_old_silences(now)
        self.last_round = report
        return report

    def _advance(self, rule: Rule, prev: AlertState | None, condition: bool, value: float | None, now: float,
                 partner_id: str | None, changed: dict, report: RoundReport) -> None:
        state, changes = step(rule, prev, condition, value, now, partner_id=partner_id)
        if state is not None:
            state, escalations = escalate(rule, state, now)
            changes += escalations
        if state is not None and (changes or state is not prev):
            changed[state.id] = state
        report.changes += changes

    @staticmethod
    def _retire(prev: AlertState, now: float, changed: dict, report: RoundReport) -> None:
        if prev.state == "pending":
            state = replace(prev, state="inactive", changed_at=now)
            report.changes.append(Change("cleared", now, state))
        elif prev.state == "firing":
            state = replace(prev, state="resolved", resolved_at=now, changed_at=now, acknowledged=False,
                            ack_by=None, ack_at=None, ack_comment=None)
            report.changes.append(Change("resolved", now, state))
        else:
            return
        changed[state.id] = state

    def _evaluation(self, rule: Rule, now: float, values: list[dict], error: str | None = None) -> dict:
        """What /alert-rules shows of the rule's last evaluation: the worst values first."""
        worst_first = sorted(values, key=lambda v: (not v["condition"], v["value"] is None,
                                                    -(v["value"] or 0) if rule.op in (">", ">=") else (v["value"] or 0)))
        return {"rule": rule.name, "severity": rule.severity, "metric": rule.metric, "op": rule.op,
                "threshold": rule.threshold, "window_s": rule.window_s, "for_s": rule.for_s,
                "keep_firing_for_s": rule.keep_firing_for_s, "per_partner": rule.per_partner,
                "partner": rule.partner, "evaluated_at": now, "error": error,
                "values": worst_first[:MAX_VALUES_SHOWN], "values_total": len(values),
                "conditions_true": sum(1 for v in values if v["condition"])}

