"""Read-only views of the alert engine for the API and the /alerts page, scoped like every read:
the rules in force with their last evaluation, the firing counts (the banner, the Executive KPI)
and the notification deliveries. A principal who does not see every partner gets only the values,
counts and deliveries of their partners — never a deployment-wide value."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from services.alerting.actions import alert_visible
from services.alerting.store import rule_key
from services.scope import Scope

__all__ = ["rule_rows", "firing_counts", "delivery_view", "MAX_VALUES"]

MAX_VALUES = 50  # per rule: what the engine keeps, worst first
_HIDDEN_ERROR = "the last evaluation failed"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _evaluation(doc: object, rule, scope: Scope) -> dict[str, Any] | None:
    """The engine's last evaluation of `rule` as `scope` may see it (read defensively: the engine
    may add fields, or an older engine may have fewer)."""
    if not isinstance(doc, Mapping):
        return None
    values = []
    for item in doc.get("values") or []:
        if not isinstance(item, Mapping):
            continue
        pid = item.get("partner_id") or rule.partner
        pid = pid if isinstance(pid, str) else None
        if alert_visible(scope, pid):
            values.append({"partner_id": pid, "value": _number(item.get("value")),
                           "condition": bool(item.get("condition"))})
    error = doc.get("error")
    if error and scope.partners is not None:
        error = _HIDDEN_ERROR  # the engine's text may name the deployment's internals or other partners
    total, meeting = len(values), sum(v["condition"] for v in values)
    if scope.partners is None:  # the engine keeps the worst 50 values; its counts are of all of them
        total = _count(doc.get("values_total"), total)
        meeting = _count(doc.get("conditions_true"), meeting)
    return {"evaluated_at": _number(doc.get("evaluated_at")), "values": values[:MAX_VALUES],
            "values_total": total, "conditions_true": meeting, "error": str(error)[:500] if error else None}


def _count(value: object, default: int) -> int:
    return value if type(value) is int and value >= 0 else default


def rule_rows(rules_file, alert_store, scope: Scope) -> dict[str, Any]:
    """`{"enabled", "rules"}`: every rule of the file in force (a rule about one partner only for a
    scope holding it), with its last evaluation and the pending/firing alerts of it that `scope`
    sees. `enabled` is False when no rules file is loaded (LULUPAY_ALERT_RULES=off)."""
    if rules_file is None:
        return {"enabled": False, "rules": []}
    evaluations = alert_store.evaluations()
    counts: dict[str, dict[str, int]] = {}
    for alert in alert_store.alerts().values():
        if alert.state in ("pending", "firing") and alert_visible(scope, alert.partner_id):
            key = rule_key(alert.rule, alert.labels.get("severity", alert.severity))
            counts.setdefault(key, {"pending": 0, "firing": 0})[alert.state] += 1
    rows = []
    for rule in rules_file.rules:
        if rule.partner and not alert_visible(scope, rule.partner):
            continue
        key = rule_key(rule.name, rule.severity)
        rows.append({"name": rule.name, "severity": rule.severity, "metric": rule.metric, "op": rule.op,
                     "threshold": rule.threshold, "window_s": rule.window_s, "for_s": rule.for_s,
                     "keep_firing_for_s": rule.keep_firing_for_s, "per_partner": rule.per_partner,
                     "partner": rule.partner, "min_builds": rule.min_builds, "labels": dict(rule.labels),
                     "summary": rule.summary,
                     "escalate": [{"after_s": s.after_s, "severity": s.severity, "receiver": s.receiver}
                                  for s in rule.escalate],
                     "alerts": counts.get(key, {"pending": 0, "firing": 0}),
                     "evaluation": _evaluation(evaluations.get(key), rule, scope)})
    return {"enabled": True, "rules": rows}


def firing_counts(alert_store, scope: Scope) -> dict[str, int]:
    """Firing alerts `scope` sees (one read): `firing`, of them `critical` and `acknowledged`, and `pending`."""
    out = {"firing": 0, "critical": 0, "acknowledged": 0, "pending": 0}
    for alert in alert_store.alerts().values():
        if not alert_visible(scope, alert.partner_id):
            continue
        if alert.state == "pending":
            out["pending"] += 1
        elif alert.state == "firing":
            out["firing"] += 1
            out["critical"] += alert.severity == "critical"
            out["acknowledged"] += alert.acknowledged
    return out


def _delivery_visible(scope: Scope, partner_ids) -> bool:
    """Every delivery for a scope over every partner; otherwise only notifications about its
    partners alone (one that also concerns another partner, or none, is left out)."""
    if scope.partners is None:
        return True
    ids = [p for p in partner_ids or () if isinstance(p, str)]
    return bool(ids) and all(p in scope.partners for p in ids)


def delivery_view(queue, scope: Scope, since: float, until: float, *, limit: int = 200) -> dict[str, Any]:
    """`{"attempts", "pending", "stats"}`: delivery attempts in [since, until) newest first, the
    queued notifications soonest due first, and the queue's counts (deployment-wide: only for a
    scope over every partner, else None)."""
    partners = scope.partner_list()
    attempts = [a for a in queue.attempts(since, until, limit=limit, partners=partners)
                if _delivery_visible(scope, a.get("partner_ids"))]
    pending = [p for p in queue.pending(partners=partners, limit=limit)
               if _delivery_visible(scope, p.get("partner_ids"))]
    return {"attempts": attempts, "pending": pending, "stats": queue.stats() if scope.partners is None else None}
