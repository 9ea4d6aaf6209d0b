"""What the alerts API and the /alerts page do with alerts and silences, shared by both: list the
alerts a scope may see (with the silences suppressing them now), acknowledge one, create, list and
expire silences. Every function takes the scope or principal it acts for; an alert or silence the
principal may not see does not exist for it (the same 404 as an unknown id). Errors are
`ActionError(status, message, field)`: the API answers them as they are, the page shows the text."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


from services.alerting.silences import MAX_MATCHERS, MAX_SILENCE_S, Matcher, Silence, silenced_by
from services.alerting.state import AlertState, acknowledge
from services.alerting.store import AlertStatesBusy
from services.ingest.events import parse_ts
from services.realtime import publish
from services.scope import Principal, Scope, scope_for
from services.vocabulary import ALERT_SEVERITIES

__all__ = ["ActionError", "STATE_FILTERS", "SILENCE_STATES", "SEVERITY_RANK", "MAX_SILENCES_IN_FORCE",
           "MAX_SILENCES_KEPT", "MAX_COMMENT_CHARS", "MAX_START_AHEAD_S", "MAX_START_BEHIND_S",
           "alert_rows", "alert_row", "acknowledge_alert", "create_silence", "expire_silence", "visible_silences",
           "silence_row", "silence_visible", "alert_visible"]

# `state=` of the alert list → the engine states it takes (active: what is going on now).
STATE_FILTERS = {"active": ("pending", "firing"), "pending": ("pending",), "firing": ("firing",),
                 "resolved": ("resolved",), "all": ("pending", "firing", "resolved")}
SILENCE_STATES = ("active", "pending", "expired")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
MAX_SILENCES_IN_FORCE = 1000  # active + pending: the engine matches every alert against each, every round
MAX_SILENCES_KEPT = 10_000  # with the expired ones (kept a retention window): every list reads them all
MAX_COMMENT_CHARS = 1024  # an acknowledgement's or a silence's comment
MAX_START_AHEAD_S = MAX_SILENCE_S  # a silence starts at most 90 days from now
MAX_START_BEHIND_S = 86400  # a start in the past means now, up to a day back (older: a mistake, refused)
_SILENCE_KEYS = {"matchers", "starts_at", "ends_at", "comment"}


class ActionError(Exception):
    """A refused action or read: the HTTP status, a message and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def _comment(value: object) -> str:
    """A comment: text of at most MAX_COMMENT_CHARS characters without NUL (None is "")."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_COMMENT_CHARS:
        raise ActionError(400, f"comment: a text of at most {MAX_COMMENT_CHARS} characters", "comment")
    if "\x00" in value:
        raise ActionError(400, "comment: must not contain NUL characters", "comment")
    return value


def alert_visible(scope: Scope, partner_id: str | None) -> bool:
    """An alert about a partner: for a scope holding it; about no partner (the deployment's own):
    only for a scope over every partner (fail closed)."""
    if scope.partners is None:
        return True
    return partner_id is not None and partner_id in scope.partners


def silence_visible(silence: Silence, principal: Principal, partners: Collection[str] | None = None) -> bool:
    """Every silence for a principal who sees every partner; otherwise (and when `partners` narrows
    it) only those with an equality matcher `partner_id="<one of the partners>"`."""
    allowed = principal.visible_partners()
    if partners is not None:
        allowed = set(partners) if allowed is None else set(partners) & set(allowed)
    if allowed is None:
        return True
    return any(m.name == "partner_id" and m.is_equal and not m.is_regex and m.value in allowed
               for m in silence.matchers)


def alert_row(alert: AlertState, silences: list[Silence], visible: list[Silence], now: float) -> dict[str, Any]:
    """One alert as the API and the page show it (times in epoch seconds)."""
    labels = alert.current_labels
    return {"id": alert.id, "rule": alert.rule, "severity": alert.severity, "state": alert.state,
            "partner_id": alert.partner_id, "labels": labels, "value": alert.value, "threshold": alert.threshold,
            "summary": alert.summary, "description": alert.annotations.get("description", ""),
            "started_at": alert.started_at, "firing_at": alert.firing_at, "resolved_at": alert.resolved_at,
            "acknowledged": alert.acknowledged, "ack_by": alert.ack_by, "ack_at": alert.ack_at,
            "ack_comment": alert.ack_comment, "silenced": bool(silenced_by(silences, labels, now)),
            "silenced_by": silenced_by(visible, labels, now), "escalation_level": alert.escalation_level}


def alert_rows(alert_store, scope: Scope, *, state: str = "active", severities: Collection[str] = (),
               now: float) -> list[dict]:
    """The alerts of `scope` in `state` (STATE_FILTERS) and `severities` (none: all), critical first,
    then oldest first; `silenced_by` names the silences (that the principal may see) suppressing each now."""
    if state not in STATE_FILTERS:
        raise ActionError(400, f"state: one of {', '.join(STATE_FILTERS)}", "state")
    bad = [s for s in severities if s not in ALERT_SEVERITIES]
    if bad:
        raise ActionError(400, f"severity: one of {', '.join(ALERT_SEVERITIES)}", "severity")
    wanted = STATE_FILTERS[state]
    alerts = [a for a in alert_store.alerts().values()
              if a.state in wanted and (not severities or a.severity in severities)
              and alert_visible(scope, a.partner_id)]
    silences = alert_store.silences() if alerts else []
    visible = [s for s in silences if silence_visible(s, scope.principal)]
    alerts.sort(key=lambda a: (SEVERITY_RANK.get(a.severity, 9), a.started_at or 0.0, a.rule, a.id))
    return [alert_row(a, silences, visible, now) for a in alerts]


def acknowledge_alert(services, principal: Principal, alert_id: str, comment: str, now: float) -> dict:
    """Acknowledge a pending or firing alert the principal may see (404 otherwise, 409 when it is not
    pending or firing); record the change in the history (source "ack") and publish it on the
    `alerts` stream. Acknowledging an acknowledged alert changes nothing. Returns its row."""
    comment = _comment(comment)
    who = principal.name[:128]
    scope = scope_for(principal)

    def change(current: AlertState | None):
        if current is None or not alert_visible(scope, current.partner_id):
            raise ActionError(404, "no such alert", "alert_id")
        if current.state not in ("pending", "firing"):
            raise ActionError(409, f"only a pending or firing alert can be acknowledged (this one is "
                                   f"{current.state})", "state")
        return acknowledge(current, who, comment, now)

    try:
        alert, changes = services.alert_store.update_alert(alert_id, change)
    except AlertStatesBusy:
        raise ActionError(503, "the alert kept changing; retry", "alert_id") from None
    for step in changes:
        services.alerts.record(**{**step.history_record(), "source": "ack"})
    if changes:
        # the engine's message shape (services/alerting/engine.py), with the change "acknowledged"
        data = {"id": alert.id, "name": alert.rule, "severity": alert.severity, "state": alert.state,
                "change": "acknowledged", "summary": f"Acknowledged by {who}: {alert.summary}",
                "value": alert.value, "threshold": alert.threshold, "ack_by": who}
        if alert.partner_id:
            data["partner_id"] = alert.partner_id
        publish(services.store, "alerts", data, now)
    silences = services.alert_store.silences()
    visible = [s for s in silences if silence_visible(s, principal)]
    return alert_row(alert, silences, visible, now)


def _time(doc: Mapping, name: str, default: float | None) -> float | None:
    value = doc.get(name)
    if value is None:
        return default
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise ActionError(400, f"{name}: {exc}", name) from None


def _matchers(value: object) -> tuple[Matcher, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MATCHERS:
        raise ActionError(400, f"matchers: a list of 1 to {MAX_MATCHERS} {{name, value, is_regex, is_equal}}",
                          "matchers")
    try:
        return tuple(Matcher.from_dict(m) for m in value)
    except (ValueError, TypeError) as exc:
        raise ActionError(400, f"matchers: {exc}", "matchers") from None


def create_silence(alert_store, principal: Principal, doc: object, now: float) -> dict:
    """A new silence from `{matchers, starts_at?, ends_at, comment?}` (times as epoch seconds or
    RFC 3339; starts_at default now, a start up to a day in the past is now, at most 90 days ahead),
    authored by the principal. A principal who does not see every partner must include
    `partner_id="<one of theirs>"` (403)."""
    if not isinstance(doc, Mapping):
        raise ActionError(400, "body: a JSON object {matchers, starts_at, ends_at, comment}", "body")
    unknown = sorted(str(k)[:64] for k in doc if k not in _SILENCE_KEYS)
    if unknown:
        raise ActionError(400, f"{unknown[0]}: unknown field (known: {', '.join(sorted(_SILENCE_KEYS))})", unknown[0])
    matchers = _matchers(doc.get("matchers"))
    starts_at = _time(doc, "starts_at", now)
    if starts_at < now - MAX_START_BEHIND_S:
        raise ActionError(400, "starts_at: at most a day in the past (a start in the past means now)", "starts_at")
    if starts_at > now + MAX_START_AHEAD_S:
        raise ActionError(400, f"starts_at: at most {MAX_START_AHEAD_S // 86400} days from now", "starts_at")
    starts_at = max(starts_at, now)
    ends_at = _time(doc, "ends_at", None)
    if ends_at is None:
        raise ActionError(400, "ends_at: required (epoch seconds or RFC 3339)", "ends_at")
    if ends_at <= now:
        raise ActionError(400, "ends_at: must be in the future", "ends_at")
    comment = _comment(doc.get("comment"))
    try:
        silence = Silence(id=alert_store.new_silence_id(), matchers=matchers, starts_at=starts_at, ends_at=ends_at,
                          author=principal.name[:128], comment=comment, created_at=now)
    except ValueError as exc:
        text = str(exc)
        field = next((f for f in ("ends_at", "starts_at", "comment", "author") if text.startswith(f)), "matchers")
        raise ActionError(400, text if text.startswith(field) else f"{field}: {text}", field) from None
    if not silence_visible(silence, principal):
        raise ActionError(403, "matchers: a silence must include partner_id=\"<one of your partners>\" "
                               "(an equality matcher)", "matchers")
    existing = alert_store.silences()
    if sum(1 for s in existing if s.state(now) != "expired") >= MAX_SILENCES_IN_FORCE:
        raise ActionError(409, f"matchers: {MAX_SILENCES_IN_FORCE} silences are in force; expire some first",
                          "matchers")
    if len(existing) >= MAX_SILENCES_KEPT:
        raise ActionError(409, f"matchers: {MAX_SILENCES_KEPT} silences are kept (expired ones for the retention "
                               "window); try again once old ones are dropped", "matchers")
    alert_store.add_silence(silence)
    return silence_row(silence, now)


def expire_silence(alert_store, principal: Principal, silence_id: str, now: float) -> dict:
    """End a silence the principal may see now (kept, expired); 404 for an unknown or invisible one."""
    current = alert_store.silence(silence_id) if isinstance(silence_id, str) and 0 < len(silence_id) <= 64 else None
    if current is None or not silence_visible(current, principal):
        raise ActionError(404, "no such silence", "silence_id")
    ended = alert_store.expire_silence(silence_id, now)
    if ended is None:
        raise ActionError(404, "no such silence", "silence_id")
    return silence_row(ended, now)


def silence_row(silence: Silence, now: float) -> dict[str, Any]:
    """One silence as the API and the page show it (times in epoch seconds), with its state now."""
    return {**silence.to_dict(), "state": silence.state(now)}


def visible_silences(alert_store, principal: Principal, now: float, *, states: Collection[str] = SILENCE_STATES,
                     partners: Collection[str] | None = None) -> list[dict]:
    """The silences the principal may see (narrowed to `partners` when given) in `states`: active
    first, then pending, then expired; the newest end first within each."""
    rows = [silence_row(s, now) for s in alert_store.silences()
            if silence_visible(s, principal, partners) and s.state(now) in states]
    rank = {"active": 0, "pending": 1, "expired": 2}
    rows.sort(key=lambda r: (rank[r["state"]], -r["ends_at"], r["id"]))
    return rows
