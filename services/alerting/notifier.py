"""Which notifications are due, built and queued (docs/alerting.md#delivery): every alert that is
firing or resolved joins a group per route it takes (services/alerting/routes.py) and per extra
receiver its escalation named; a group is notified group_wait after it appears, group_interval
after a change, repeat_interval while nothing changes and something fires. Silenced firing alerts
are left out; a resolved alert is notified once after every firing notification that named it,
silenced or not. The groups' bookkeeping lives in the store (`alert:groups`), and a notification's
id — its Idempotency-Key — is a function of what it reports, so a round replayed after a crash
queues nothing twice (services/alerting/delivery.py drops a known id)."""
from __future__ import annotations

import logging

from services.alerting.notification import Notification
from services.alerting.notify import alertmanager_alerts, notification_id, slack_body, webhook_body
from services.alerting.rules import RulesFile
from services.alerting.state import (AlertState, GroupSchedule, escalation_receivers, group_key, group_labels,
                                     routes_for, silenced_by)
from services.alerting.store import rule_key
from services.metrics import ALERT_NOTIFICATIONS

__all__ = ["Notifier", "ALERTMANAGER_RESEND_S"]

log = logging.getLogger(__name__)

# An Alertmanager forgets a firing alert it is not sent again (resolve_timeout): like Prometheus,
# the firing ones are re-posted every minute, valid for four.
ALERTMANAGER_RESEND_S = 60


class Notifier:
    """`run(alerts, now)` queues what is due; returns how many notifications it queued."""

    def __init__(self, services, rules: RulesFile):
        self.services = services
        self.rules = rules
        self.store = services.alert_store
        self.external_url = services.settings.external_url
        self.by_key = {rule_key(r.name, r.severity): r for r in rules.rules}
        self._delivery = None

    @property
    def delivery(self):
        if self._delivery is None:
            self._delivery = self.services.delivery()
        return self._delivery

    def _members(self, alerts: dict[str, AlertState]) -> dict[str, tuple]:
        """group id → (route, group key, group labels, [alerts]) of the firing and resolved alerts."""
        groups: dict[str, tuple] = {}
        for alert in alerts.values():
            if alert.state not in ("firing", "resolved"):
                continue
            labels = alert.current_labels
            routes = routes_for(self.rules.route, labels)
            rule = self.by_key.get(rule_key(alert.rule, alert.labels.get("severity", alert.severity)))
            if routes and rule is not None:
                taken = {r.receiver for r in routes}
                routes += [routes[0].with_receiver(name) for name in escalation_receivers(rule, alert)
                           if name not in taken]
            for route in routes:
                key = group_key(route, labels)
                entry = groups.setdefault(f"{route.receiver}\x1f{key}", (route, key, group_labels(route, labels), []))
                entry[3].append(alert)
        return groups

    def run(self, alerts: dict[str, AlertState], now: float) -> int:
        if self.rules.route is None or not self.rules.receivers:
            return 0
        silences = self.store.silences()
        docs = self.store.groups()
        members = self._members(alerts)
        changed: dict[str, dict] = {}
        dropped: list[str] = []
        queued = 0
        for gid in set(docs) | set(members):
            route, key, labels, group = members.get(gid, (None, None, None, []))
            doc = docs.get(gid)
            if route is None:  # no alert of it left: forget it
                dropped.append(gid)
                continue
            try:
                receiver = self.rules.receiver(route.receiver)
            except KeyError:
                dropped.append(gid)
                continue
            if doc is None:
                doc = {"receiver": route.receiver, "group_key": key, "group_labels": labels, "created_at": now,
                       "last_notified_at": None, "notified": {}, "repeat": 0}
                changed[gid] = doc
            doc, sent = self._group(doc, receiver, route, key, labels, group, silences, now)
            if sent is not None:
                changed[gid] = doc
                queued += sent
            if not doc["notified"] and not any(a.state == "firing" for a in group):
                dropped.append(gid)  # nothing firing, nothing left to tell (resolved ones were)
                changed.pop(gid, None)
        self.store.save_groups(changed, dropped)
        return queued

    def _group(self, doc: dict, receiver, route, key: str, labels: dict, group: list[AlertState], silences,
               now: float) -> tuple[dict, int | None]:
        """(the group's new doc, notifications queued — None when nothing changed in it)."""
        notified = doc["notified"]  # alert id → [state, escalation level, firing_at] as last told
        silenced = {a.id for a in group if a.state == "firing" and silenced_by(silences, a.current_labels, now)}
        firing = sorted((a for a in group if a.state == "firing" and a.id not in silenced), key=lambda a: a.id)
        resolved = sorted((a for a in group if a.state == "resolved" and notified.get(a.id, [None])[0] == "firing"),
                          key=lambda a: a.id)
        snapshot = {a.id: ["firing", a.escalation_level, a.firing_at] for a in firing}
        # told as firing and silenced since: not a change, but remembered (its resolved will follow)
        kept = {k: v for k, v in notified.items() if k in silenced}
        was = {k: v for k, v in notified.items() if v[0] == "firing" and k not in silenced}
        change = snapshot != was or bool(resolved)
        am_resend = (receiver.kind == "alertmanager" and firing and doc["last_notified_at"] is not None
                     and now - doc["last_notified_at"] >= ALERTMANAGER_RESEND_S)
        due = GroupSchedule.of(route).due(now, created_at=doc["created_at"], last_notified_at=doc["last_notified_at"],
                                          last_change_at=now if change else None, firing=bool(firing))
        if not (due or am_resend):
            return doc, None
        send = firing + (resolved if receiver.send_resolved else [])
        new = {**doc, "notified": {**kept, **snapshot}, "last_notified_at": now}
        if not send:  # e.g. everything silenced or resolved unannounced: just remember that
            return new, 0
        repeat = 0 if change else doc.get("repeat", 0) + 1
        status = "firing" if firing else "resolved"
        body = self._body(receiver, key, labels, send, now)
        created = max((a.changed_at or now) for a in send) if change else (doc["last_notified_at"] or now)
        nid = notification_id(receiver, key, status, send, repeat=repeat)
        notification = Notification(id=nid, receiver=receiver.name, kind=receiver.kind, url=receiver.url, body=body,
                                    group_key=key, status=status, created_at=min(created, now),
                                    partner_ids=tuple(sorted({a.partner_id for a in send if a.partner_id})))
        if self.delivery.enqueue(notification):
            ALERT_NOTIFICATIONS.labels(receiver_kind=receiver.kind, status=status).inc()
        new["repeat"] = repeat
        return new, 1

    def _body(self, receiver, key: str, labels: dict, alerts: list[AlertState], now: float):
        if receiver.kind == "webhook":
            return webhook_body(receiver, key, labels, alerts, self.external_url)
        if receiver.kind == "slack":
            return slack_body(receiver, key, labels, alerts, self.external_url)
        return alertmanager_alerts(alerts, self.external_url, now=now, valid_for_s=4 * ALERTMANAGER_RESEND_S)
