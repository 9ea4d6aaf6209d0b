"""Notification bodies, pure (docs/alerting.md#notification-formats): Alertmanager's webhook format
version 4, a Slack incoming-webhook message, and the Alertmanager API v2 `POST /api/v2/alerts` body
as Prometheus sends it; plus `notification_id`, the idempotency key of one state change of a
group for one receiver (the same on every retry and after a restart).

Only firing and resolved alerts are notified: pending and inactive ones are left out. Alerts are
ordered firing first, then by when they fired, then by fingerprint."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from services.alerting.routes import Receiver
from services.alerting.state import AlertState

__all__ = ["webhook_body", "slack_body", "alertmanager_alerts", "notification_id", "rfc3339", "generator_url",
           "group_status", "ZERO_TIME", "SLACK_MAX_LINES"]

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert in webhooks
SLACK_MAX_LINES = 20
_SLACK_COLORS = {"critical": "danger", "warning": "warning", "info": "#439FE0"}


def rfc3339(ts: float | None) -> str:
    """`ts` as RFC 3339 UTC with Z ("2026-12-01T09:30:00Z", milliseconds when it has them)."""
    if ts is None:
        return ZERO_TIME
    seconds, millis = divmod(round(ts * 1000), 1000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def generator_url(external_url: str, alert: AlertState) -> str:
    """Where the alert is shown in the app: the /alerts page, that alert selected."""
    return f"{external_url.rstrip('/')}/alerts?alert={alert.id}"


def _notified(alerts: Iterable[AlertState]) -> list[AlertState]:
    chosen = [a for a in alerts if a.state in ("firing", "resolved")]
    return sorted(chosen, key=lambda a: (a.state != "firing", a.firing_at or a.started_at or 0.0, a.id))


def group_status(alerts: Iterable[AlertState]) -> str:
    """firing when any alert fires, else resolved."""
    return "firing" if any(a.state == "firing" for a in alerts) else "resolved"


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in maps[1:])}


def _alert_item(alert: AlertState, external_url: str) -> dict:
    return {"status": alert.state, "labels": dict(sorted(alert.current_labels.items())),
            "annotations": dict(sorted(alert.annotations.items())),
            "startsAt": rfc3339(alert.firing_at or alert.started_at),
            "endsAt": rfc3339(alert.resolved_at) if alert.state == "resolved" else ZERO_TIME,
            "generatorURL": generator_url(external_url, alert), "fingerprint": alert.id}


def _name(receiver: Receiver | str) -> str:
    return receiver if isinstance(receiver, str) else receiver.name


def webhook_body(receiver: Receiver | str, group_key: str, group_labels: Mapping[str, str],
                 alerts: Iterable[AlertState], external_url: str) -> dict:
    """Alertmanager's webhook body, version 4; a receiver's `max_alerts` truncates `alerts`
    (counted in truncatedAlerts; status and common labels are of the alerts sent)."""
    chosen = _notified(alerts)
    limit = 0 if isinstance(receiver, str) else receiver.max_alerts
    sent = chosen[:limit] if limit else chosen
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": len(chosen) - len(sent),
            "status": group_status(sent), "receiver": _name(receiver),
            "groupLabels": dict(sorted(group_labels.items())),
            "commonLabels": _common([a.current_labels for a in sent]),
            "commonAnnotations": _common([a.annotations for a in sent]), "externalURL": external_url,
            "alerts": [_alert_item(a, external_url) for a in sent]}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_line(alert: AlertState) -> str:
    who = f" · partner {alert.partner_id}" if alert.partner_id else ""
    if alert.state == "firing":
        since = f"firing since {rfc3339(alert.firing_at)}"
    else:
        since = f"resolved at {rfc3339(alert.resolved_at)}"
    return _slack_escape(f"• *{alert.severity}*{who}: {alert.summary or alert.rule} ({since})")


def slack_body(receiver: Receiver | str, group_key: str, group_labels: Mapping[str, str],
               alerts: Iterable[AlertState], external_url: str) -> dict:
    """A Slack incoming-webhook message: `text` ("[FIRING:2] LowSuccessRate") and one attachment
    coloured by the worst firing severity (green when resolved), one line per alert (at most 20)."""
    chosen = _notified(alerts)
    status = group_status(chosen)
    firing = [a for a in chosen if a.state == "firing"]
    names = " ".join(v for _, v in sorted(group_labels.items())) or "alerts"
    title = _slack_escape(f"[{status.upper()}{f':{len(firing)}' if firing else ''}] {names}")
    worst = max((a.severity for a in firing), key=("info", "warning", "critical").index, default=None)
    lines = [_slack_line(a) for a in chosen[:SLACK_MAX_LINES]]
    if len(chosen) > SLACK_MAX_LINES:
        lines.append(f"… and {len(chosen) - SLACK_MAX_LINES} more")
    link = f"{external_url.rstrip('/')}/alerts"
    return {"text": title, "attachments": [{
        "color": _SLACK_COLORS.get(worst, "good") if worst else "good", "title": title, "title_link": link,
        "fallback": title, "text": "\n".join(lines), "mrkdwn_in": ["text"],
        "footer": f"LuluPay Analytics · {_slack_escape(_name(receiver))}"}]}


def alertmanager_alerts(alerts: Iterable[AlertState], external_url: str, *, now: float | None = None,
                        valid_for_s: float | None = None) -> list[dict]:
    """The body of Alertmanager's POST /api/v2/alerts: `{labels, annotations, startsAt, endsAt,
    generatorURL}` per alert. A resolved alert ends at its resolved_at; a firing one has no endsAt
    (Alertmanager resolves it after its resolve_timeout unless re-sent) or, given `now` and
    `valid_for_s`, ends then (as Prometheus sends: re-send before it passes)."""
    body = []
    for alert in _notified(alerts):
        item = {"labels": dict(sorted(alert.current_labels.items())),
                "annotations": dict(sorted(alert.annotations.items())),
                "startsAt": rfc3339(alert.firing_at or alert.started_at),
                "generatorURL": generator_url(external_url, alert)}
        if alert.state == "resolved":
            item["endsAt"] = rfc3339(alert.resolved_at)
        elif now is not None and valid_for_s is not None:
            item["endsAt"] = rfc3339(now + valid_for_s)
        body.append(item)
    return body


def notification_id(receiver: Receiver | str, group_key: str, status: str, alerts: Sequence[AlertState], *,
                    repeat: int = 0) -> str:
    """The idempotency key of one notification: the receiver, the group, its status, and each
    notified alert's fingerprint, state, started/firing/resolved times and escalation level —
    so a retry or a restarted process builds the same key, and any state change a different one.
    `repeat`: the n-th re-send of an unchanged group (repeat_interval), 0 for the change itself."""
    items = sorted([a.id, a.state, a.started_at, a.firing_at, a.resolved_at, a.escalation_level]
                   for a in _notified(alerts))
    text = json.dumps({"receiver": _name(receiver), "group": group_key, "status": status, "alerts": items,
                       "repeat": repeat}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
