"""Alert states as the engine stores them, for tests of the alerts API and page: built with the
state module's own fingerprint, written through AlertStore.save_alerts (and, for their history,
AlertHistory.record) like the engine does."""
from __future__ import annotations

from services.alerting.state import AlertState, fingerprint

__all__ = ["alert_state", "seed"]


def alert_state(rule: str, severity: str, state: str, *, partner: str | None = None, value: float | None = None,
                threshold: float = 0.9, started_at: float, firing_after_s: float = 60.0, summary: str = "",
                acknowledged: bool = False, ack_by: str | None = None, **labels: str) -> AlertState:
    """One alert of `rule` at `severity` (its identity labels: alertname, severity, partner_id, `labels`)."""
    identity = {"alertname": rule, "severity": severity, **({"partner_id": partner} if partner else {}), **labels}
    firing_at = started_at + firing_after_s if state in ("firing", "resolved") else None
    return AlertState(id=fingerprint(identity), rule=rule, labels=identity, state=state, severity=severity,
                      threshold=threshold, partner_id=partner, value=value,
                      annotations={"summary": summary or f"{rule} {value} (threshold {threshold})"},
                      started_at=started_at, firing_at=firing_at, last_true_at=started_at,
                      resolved_at=firing_at + 600 if state == "resolved" else None, changed_at=started_at,
                      acknowledged=acknowledged, ack_by=ack_by, ack_at=started_at if acknowledged else None,
                      ack_comment="" if acknowledged else None)


def seed(services, alerts: list[AlertState], *, history: bool = True) -> dict[str, AlertState]:
    """Write `alerts` to the engine's state and (with `history`) one history change of each."""
    services.alert_store.save_alerts(alerts)
    if history:
        for a in alerts:
            ts = a.resolved_at or a.firing_at or a.started_at
            services.alerts.record(rule=a.rule, state=a.state, severity=a.severity, partner_id=a.partner_id,
                                   summary=a.summary, value=a.value, threshold=a.threshold, labels=a.current_labels,
                                   alert_id=a.id, ts=ts, started_at=a.started_at, firing_at=a.firing_at,
                                   resolved_at=a.resolved_at, acknowledged=a.acknowledged)
    return {a.id: a for a in alerts}
